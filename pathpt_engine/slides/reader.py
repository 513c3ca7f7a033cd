"""OpenSlide-backed `SlideReader`, with a direct-decode fast path for JPEG-tiled TIFF pyramids.

`open_slide(path)` checks the path, opens it with OpenSlide and returns an `OpenSlideReader`. Every failure is a
`SlideError` naming the file and the reason. One reader may be shared by several reader threads: OpenSlide
handles are thread-safe, the fast path reads with `os.pread`, and a handle that hit a decode error (OpenSlide
handles are unusable after one) is replaced under a lock, so one bad tile never poisons the reader.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import openslide
from PIL import Image

from ..errors import SlideError
from .compose import compose_native, native_keys
from .tiff_tiles import TiffTileSource, open_tile_source

logger = logging.getLogger(__name__)
T = TypeVar("T")

_WHOLE_LEVEL_PIXELS = 64 * 2**20  # thumbnails read a level whole up to this size, in bands above it
_MM_PER_UNIT = {"centimeter": 10.0, "inch": 25.4, "millimeter": 1.0, "micrometer": 1e-3}
# A microscope scan's level-0 pixel size lies well inside this range; outside it the file's value is a default
# (e.g. 72 dpi = 352.78 µm/px) or nonsense, and the slide counts as having no known pixel size.
MPP_PLAUSIBLE = (0.05, 20.0)


def plausible_mpp(value: float) -> bool:
    """Whether a level-0 µm/px value is a plausible microscope pixel size (`MPP_PLAUSIBLE`, inclusive)."""
    return MPP_PLAUSIBLE[0] <= value <= MPP_PLAUSIBLE[1]


def open_slide(path: str | os.PathLike[str], fast_path: bool = True) -> OpenSlideReader:
    """Open a whole-slide image in any format OpenSlide reads.

    Args:
        path: the slide file (or the main file of a multi-file format).
        fast_path: decode JPEG tiles of TIFF/SVS pyramids directly (same pixels, several times faster).

    Raises:
        SlideError: the path is missing, a directory, empty, not a slide, unsupported or corrupt.
    """
    return OpenSlideReader(path, fast_path=fast_path)


def rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Composite OpenSlide's (non-premultiplied) RGBA over white and return RGB uint8."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha[..., None].astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise SlideError(f"{path}: no such file")
    if path.is_dir():
        raise SlideError(f"{path}: is a directory, not a slide file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SlideError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    if size == 0:
        raise SlideError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise SlideError(f"{path}: permission denied")


def _open_handle(path: Path) -> openslide.OpenSlide:
    try:
        fmt = openslide.OpenSlide.detect_format(str(path))
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"{path}: cannot read as a slide ({exc})") from exc
    if fmt is None:
        raise SlideError(f"{path}: {_describe_unopenable(path)}")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError as exc:
        raise SlideError(f"{path}: unsupported slide format ({exc})") from exc
    except (openslide.OpenSlideError, OSError, ValueError) as exc:
        raise SlideError(f"{path}: corrupt or unreadable {fmt} slide ({exc})") from exc


def _describe_unopenable(path: Path) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "a TIFF file OpenSlide cannot open as a slide (not tiled, truncated or corrupt)"
    return "not a slide format OpenSlide can open (not a recognised whole-slide image)"


def _float_prop(props: dict[str, str], key: str) -> float | None:
    value = props.get(key)
    if value is None:
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) and out > 0 else None


class OpenSlideReader:
    """A `SlideReader` over OpenSlide (see `pathpt_engine.slides.base.SlideReader` for units).

    Use as a context manager or call `close()`. Safe to share across threads.
    """

    def __init__(self, path: str | os.PathLike[str], fast_path: bool = True) -> None:
        self.path = Path(path)
        _check_path(self.path)
        self._lock = threading.Lock()
        self._osr = _open_handle(self.path)
        self._retired: list[openslide.OpenSlide] = []  # replaced after an error, still in use by some thread
        self._users: dict[int, int] = {}  # id(handle) -> threads inside a call on it
        self._closed = False
        props = dict(self._osr.properties)
        self._props = props
        self._level_dims = tuple((int(d[0]), int(d[1])) for d in self._osr.level_dimensions)
        self._downsamples = tuple(float(d) for d in self._osr.level_downsamples)
        self._assoc_names = tuple(self._osr.associated_images.keys())
        self._reported_mpp = self._read_mpp(props)
        self._mpp = self._reported_mpp
        if self._mpp is not None and not all(plausible_mpp(v) for v in self._mpp):
            logger.warning("%s: pixel size %.4g µm/px is outside the plausible %g-%g µm/px; treated as unknown",
                           self.path, self._mpp[0], *MPP_PLAUSIBLE)
            self._mpp = None
        self._tiles: TiffTileSource | None = None
        if fast_path:
            self._tiles = open_tile_source(self.path, self.format, self._level_dims, props)

    # ---- metadata -------------------------------------------------------------------------------------------
    @property
    def format(self) -> str:
        return self._props.get("openslide.vendor", "unknown")

    @property
    def dimensions(self) -> tuple[int, int]:
        return self._level_dims[0]

    @property
    def level_count(self) -> int:
        return len(self._level_dims)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return self._level_dims

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return self._downsamples

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Level-0 µm/px, or None when the file does not state a plausible one (see `reported_mpp`)."""
        return self._mpp

    @property
    def reported_mpp(self) -> tuple[float, float] | None:
        """The µm/px the file states, plausible or not (None when it states none)."""
        return self._reported_mpp

    @property
    def objective_power(self) -> float | None:
        return _float_prop(self._props, "openslide.objective-power")

    @property
    def properties(self) -> dict[str, str]:
        return dict(self._props)

    @property
    def associated_image_names(self) -> tuple[str, ...]:
        return self._assoc_names

    @property
    def quickhash(self) -> str:
        qh = self._props.get("openslide.quickhash-1")
        if qh:
            return qh
        st = self.path.stat()
        return f"size{st.st_size}-dims{self.dimensions[0]}x{self.dimensions[1]}"

    @property
    def has_fast_path(self) -> bool:
        """Whether some level's native tiles are decoded directly instead of through OpenSlide."""
        return self._tiles is not None

    def _read_mpp(self, props: dict[str, str]) -> tuple[float, float] | None:
        mx, my = _float_prop(props, "openslide.mpp-x"), _float_prop(props, "openslide.mpp-y")
        if mx and my:
            return mx, my
        unit = props.get("tiff.ResolutionUnit", "").lower()
        xres, yres = _float_prop(props, "tiff.XResolution"), _float_prop(props, "tiff.YResolution")
        if unit in _MM_PER_UNIT and xres and yres:
            scale = _MM_PER_UNIT[unit] * 1000.0
            return scale / xres, scale / yres
        logger.warning("%s: no microns-per-pixel in the file (no openslide.mpp or TIFF resolution tags)", self.path)
        return None

    def best_level_for_downsample(self, downsample: float) -> int:
        best = 0
        for i, ds in enumerate(self._downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    # ---- pixels ---------------------------------------------------------------------------------------------
    def associated_image(self, name: str) -> np.ndarray:
        if name not in self._assoc_names:
            raise SlideError(f"{self.path}: no associated image {name!r} (has: {', '.join(self._assoc_names) or 'none'})")
        img = self._call(lambda osr: osr.associated_images[name], f"associated image {name!r}")
        return rgba_to_rgb(np.asarray(img.convert("RGBA")))

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        self._check_level(level)
        x, y = int(location[0]), int(location[1])
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0:
            raise SlideError(f"{self.path}: read_region size must be positive, got {w}x{h}")
        if self._tiles is not None and self._tiles.can_compose(level, x, y, self._downsamples[level]):
            return self._compose(self._tiles, level, x, y, w, h)
        return self._openslide_region((x, y), level, (w, h))

    def _openslide_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        where = f"region {size[0]}x{size[1]} at level {level}, level-0 ({location[0]}, {location[1]})"
        img = self._call(lambda osr: osr.read_region(location, level, size), where)
        return rgba_to_rgb(np.asarray(img))

    def native_tile_size(self, level: int) -> tuple[int, int] | None:
        self._check_level(level)
        return None if self._tiles is None else self._tiles.tile_size(level)

    def read_native_tile(self, level: int, col: int, row: int) -> np.ndarray:
        self._check_level(level)
        if self._tiles is not None and self._tiles.tile_size(level) is not None:
            return self._tiles.decode_tile(level, col, row, cache=False)
        tw, th = self._openslide_tile_size(level)
        lw, lh = self._level_dims[level]
        if not (0 <= col * tw < lw and 0 <= row * th < lh):
            raise SlideError(f"{self.path}: tile ({col}, {row}) is outside level {level}")
        ds = self._downsamples[level]
        size = (min(tw, lw - col * tw), min(th, lh - row * th))
        return self._openslide_region((round(col * tw * ds), round(row * th * ds)), level, size)

    def _openslide_tile_size(self, level: int) -> tuple[int, int]:
        tw = self._props.get(f"openslide.level[{level}].tile-width")
        th = self._props.get(f"openslide.level[{level}].tile-height")
        return (int(tw), int(th)) if tw and th else (256, 256)

    def _compose(self, tiles: TiffTileSource, level: int, x0: int, y0: int, w: int, h: int) -> np.ndarray:
        """Assemble a region at `level` from the native tiles it overlaps (white outside the level)."""
        ds = self._downsamples[level]
        lx, ly = round(x0 / ds), round(y0 / ds)
        tw, th = tiles.tile_size(level)  # type: ignore[misc]  # can_compose checked the level has tiles
        lw, lh = self._level_dims[level]
        if lx % tw == 0 and ly % th == 0 and (w, h) == (tw, th) and lx + w <= lw and ly + h <= lh:
            return tiles.decode_tile(level, lx // tw, ly // th, cache=False)  # exactly one whole native tile
        out = np.empty((h, w, 3), np.uint8)
        keys = native_keys(lx, ly, (w, h), (tw, th), (lw, lh))
        compose_native(out, lx, ly, keys, lambda key: tiles.decode_tile(level, *key), (tw, th))
        return out

    def thumbnail(self, max_size: int) -> np.ndarray:
        if max_size < 1:
            raise SlideError(f"{self.path}: thumbnail size must be >= 1, got {max_size}")
        # As openslide-python's get_thumbnail (best level, then Lanczos), but through read_region's fast path.
        width, height = self.dimensions
        level = self.best_level_for_downsample(max(width, height) / max_size)
        lw, lh = self._level_dims[level]
        if lw * lh <= _WHOLE_LEVEL_PIXELS:
            img = Image.fromarray(self.read_region((0, 0), level, (lw, lh)))
        else:  # e.g. a single-level slide: never hold the whole level in memory
            img = self._banded_reduce(level, max(1, max(lw, lh) // max_size))
        img.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        return np.asarray(img)

    def _banded_reduce(self, level: int, factor: int) -> Image.Image:
        """The whole level box-reduced by `factor`, read in horizontal bands."""
        lw, lh = self._level_dims[level]
        ds = self._downsamples[level]
        rows = max(factor, _WHOLE_LEVEL_PIXELS // 8 // lw // factor * factor)
        bands = []
        for y in range(0, lh, rows):
            band = self.read_region((0, round(y * ds)), level, (lw, min(rows, lh - y)))
            bands.append(np.asarray(Image.fromarray(band).reduce(factor)))
        return Image.fromarray(np.concatenate(bands, axis=0))

    def _check_level(self, level: int) -> None:
        if self._closed:
            raise SlideError(f"{self.path}: reader is closed")
        if not 0 <= level < len(self._level_dims):
            raise SlideError(f"{self.path}: level {level} out of range (slide has {len(self._level_dims)} levels)")

    # ---- handle management ----------------------------------------------------------------------------------
    def _call(self, fn: Callable[[openslide.OpenSlide], T], where: str) -> T:
        """Run `fn(handle)`; on an OpenSlide error, replace the shared handle and retry on a private one.

        A shared handle may have failed because another thread's bad tile broke it: the retry on a private, fresh
        handle tells those apart deterministically, so only a region that really fails raises SlideError.
        """
        osr = self._acquire()
        try:
            return fn(osr)
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            logger.debug("%s: %s failed on the shared handle (%s); retrying on a fresh one", self.path, where, exc)
            self._replace(osr)
        finally:
            self._release(osr)
        private = _open_handle(self.path)
        try:
            return fn(private)
        except (openslide.OpenSlideError, OSError, ValueError) as exc:
            raise SlideError(f"{self.path}: cannot decode {where}: {exc}") from exc
        finally:
            private.close()

    def _acquire(self) -> openslide.OpenSlide:
        with self._lock:
            if self._closed:
                raise SlideError(f"{self.path}: reader is closed")
            osr = self._osr
            self._users[id(osr)] = self._users.get(id(osr), 0) + 1
            return osr

    def _release(self, osr: openslide.OpenSlide) -> None:
        with self._lock:
            left = self._users.pop(id(osr)) - 1
            if left:
                self._users[id(osr)] = left
            elif any(r is osr for r in self._retired):  # replaced, and no thread inside it any more
                self._retired = [r for r in self._retired if r is not osr]
                osr.close()

    def _replace(self, broken: openslide.OpenSlide) -> None:
        with self._lock:
            if self._closed or self._osr is not broken:
                return  # another thread already replaced it
            logger.info("%s: reopening the OpenSlide handle after a read error", self.path)
            self._osr = _open_handle(self.path)
            self._retired.append(broken)  # closed by the last thread that leaves it (_release)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for osr in [self._osr, *self._retired]:
                osr.close()
            self._retired.clear()
            if self._tiles is not None:
                self._tiles.close()

    def __enter__(self) -> OpenSlideReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenSlideReader({str(self.path)!r}, format={self.format!r}, dims={self.dimensions})"
