"""Direct decoding of native JPEG tiles in TIFF pyramids (generic tiled TIFF, Aperio SVS).

OpenSlide's `read_region` pays for cairo compositing, ARGB conversion and a PIL round trip on every call. For
JPEG-tiled TIFF levels we read a tile's bytes at its file offset (`os.pread`, thread-safe, no shared file
position) and decode them with libjpeg-turbo (`simplejpeg`, strict) after the page's shared JPEG tables.

Damaged data: OpenSlide turns every libjpeg warning ("Corrupt JPEG data: premature end of data segment", "bad
Huffman code", "Premature end of JPEG file") into an error, so a damaged tile is refused instead of being returned
as partial garbage. The fast path does the same (`decode_jpeg_strict`): the decoder stops on its first warning.
OpenSlide never finishes the decompression (it stops after the last scanline), so the one warning only emitted
at that step ("N extraneous bytes before marker", junk between the scan and EOI) is not an error there; it is
not one here either (logged), so both paths refuse exactly the same tiles.

Level mapping: an OpenSlide level maps to the one tiled TIFF page of the same width and height (top-level IFDs
only, as OpenSlide uses). Colour space follows the TIFF Photometric tag, as tifffile does: YCbCr (6) decodes to RGB
with the JPEG's own conversion; RGB (2) without a JFIF marker (Aperio's usual RGB JPEG) is decoded with no colour
conversion. Levels that are not 8-bit, 3-sample, contiguous, JPEG-compressed RGB/YCbCr tiles are left to OpenSlide.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import simplejpeg
import tifffile

from ..errors import SlideError

logger = logging.getLogger(__name__)

FAST_VENDORS = ("generic-tiff", "aperio")
_JPEG, _RGB, _YCBCR = 7, 2, 6
_SOI, _EOI = b"\xff\xd8", b"\xff\xd9"
# Adobe APP14 segment with transform 0: tells libjpeg the three components are RGB, not YCbCr.
_ADOBE_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
_EXTRANEOUS = "extraneous bytes before marker"


def decode_jpeg_strict(data: bytes, tables: bytes | None = None, rgb_components: bool = False) -> np.ndarray:
    """Decode one JPEG tile to RGB uint8, refusing damaged data as OpenSlide does.

    Args:
        data: the tile's JPEG stream (possibly abbreviated: no tables).
        tables: the TIFF JPEGTables stream (SOI, DQT/DHT segments, EOI) the tile needs, if any.
        rgb_components: the components are R, G, B (TIFF Photometric RGB without JFIF), not YCbCr.

    Raises:
        ValueError: the stream is not a JPEG, or libjpeg reports corrupt data (any warning during decoding).
    """
    if not data.startswith(_SOI):
        raise ValueError(f"not a JPEG stream (starts with {data[:2].hex()})")
    head = _SOI
    if tables:
        if not (tables.startswith(_SOI) and tables.endswith(_EOI)):
            raise ValueError("JPEGTables is not an SOI ... EOI stream")
        head += tables[2:-2]
    if rgb_components:
        head += _ADOBE_RGB
    stream = head + data[2:]
    try:
        return simplejpeg.decode_jpeg(stream, colorspace="RGB", strict=True)
    except ValueError as exc:
        if _EXTRANEOUS not in str(exc):
            raise
        # Only emitted after the last scanline, where OpenSlide has stopped reading: same pixels as OpenSlide.
        logger.warning("JPEG tile with junk after its scan data (%s); decoded as OpenSlide does", exc)
        return simplejpeg.decode_jpeg(stream, colorspace="RGB", strict=False)


@dataclass(frozen=True)
class _LevelTiles:
    """Where one level's tiles live in the file and how to decode them."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    offsets: np.ndarray
    counts: np.ndarray
    tables: bytes | None
    colorspace: int | None

    @property
    def across(self) -> int:
        return -(-self.width // self.tile_w)

    @property
    def down(self) -> int:
        return -(-self.height // self.tile_h)


def open_tile_source(
    path: Path, vendor: str, level_dims: tuple[tuple[int, int], ...], props: dict[str, str], cache_tiles: int = 256
) -> TiffTileSource | None:
    """A `TiffTileSource` when at least one level can be decoded directly, else None (use OpenSlide)."""
    if vendor not in FAST_VENDORS:
        return None
    try:
        with tifffile.TiffFile(path) as tf:
            levels = [_map_level(tf, i, dims, props) for i, dims in enumerate(level_dims)]
    except (tifffile.TiffFileError, OSError, ValueError, KeyError, IndexError) as exc:
        logger.debug("%s: no fast path (%s)", path, exc)
        return None
    if not any(levels):
        return None
    return TiffTileSource(path, levels, cache_tiles)


def _map_level(
    tf: tifffile.TiffFile, level: int, dims: tuple[int, int], props: dict[str, str]
) -> _LevelTiles | None:
    width, height = dims
    pages = [p for p in tf.pages if isinstance(p, tifffile.TiffPage) and p.is_tiled
             and (p.imagewidth, p.imagelength) == (width, height)]
    if len(pages) != 1:
        return None
    page = pages[0]
    ok = (page.compression == _JPEG and page.photometric in (_RGB, _YCBCR) and page.planarconfig == 1
          and page.samplesperpixel == 3 and page.bitspersample == 8 and not page.extrasamples
          and page.imagedepth == 1)
    if not ok:
        return None
    tw, th = props.get(f"openslide.level[{level}].tile-width"), props.get(f"openslide.level[{level}].tile-height")
    if tw and th and (int(tw), int(th)) != (page.tilewidth, page.tilelength):
        return None
    # Aperio writes RGB components with no JFIF marker; libjpeg would otherwise assume YCbCr.
    colorspace = _RGB if page.photometric == _RGB and not page.is_jfif else None
    lv = _LevelTiles(width, height, page.tilewidth, page.tilelength, np.asarray(page.dataoffsets, np.int64),
                     np.asarray(page.databytecounts, np.int64), page.jpegtables, colorspace)
    if len(lv.offsets) != lv.across * lv.down or len(lv.counts) != len(lv.offsets):
        return None
    return lv


class TiffTileSource:
    """Reads and decodes native tiles of the mapped levels; thread-safe, with a small LRU cache."""

    def __init__(self, path: Path, levels: list[_LevelTiles | None], cache_tiles: int = 256) -> None:
        self.path = path
        self._levels = levels
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._io_lock = threading.Lock()
        self._cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._cache_tiles = cache_tiles

    def tile_size(self, level: int) -> tuple[int, int] | None:
        lv = self._levels[level] if 0 <= level < len(self._levels) else None
        return None if lv is None else (lv.tile_w, lv.tile_h)

    def can_compose(self, level: int, x0: int, y0: int, downsample: float) -> bool:
        """Whether a region at `level` with level-0 top-left (x0, y0) lies on the level's pixel grid."""
        if self.tile_size(level) is None:
            return False
        if level == 0:
            return True
        if not float(downsample).is_integer():
            return False
        ds = int(downsample)
        return x0 % ds == 0 and y0 % ds == 0

    def decode_tile(self, level: int, col: int, row: int, cache: bool = True) -> np.ndarray:
        """Decoded RGB tile, cropped at the level's right and bottom edges.

        With `cache` the tile goes through the LRU cache and the array is shared and read-only (for composing
        regions that overlap the same native tiles); without it the caller gets its own writable array.
        """
        key = (level, col, row)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit if cache else hit.copy()
        tile = self._decode(level, col, row)
        if not cache:
            return tile
        tile.setflags(write=False)
        if self._cache_tiles > 0:
            with self._cache_lock:
                self._cache[key] = tile
                while len(self._cache) > self._cache_tiles:
                    self._cache.popitem(last=False)
        return tile

    def _decode(self, level: int, col: int, row: int) -> np.ndarray:
        lv = self._levels[level]
        if lv is None:
            raise SlideError(f"{self.path}: level {level} has no directly decodable tiles")
        if not (0 <= col < lv.across and 0 <= row < lv.down):
            raise SlideError(f"{self.path}: tile ({col}, {row}) is outside level {level}")
        where = f"level {level} tile (col {col}, row {row})"
        w, h = min(lv.tile_w, lv.width - col * lv.tile_w), min(lv.tile_h, lv.height - row * lv.tile_h)
        index = row * lv.across + col
        offset, count = int(lv.offsets[index]), int(lv.counts[index])
        if count == 0:  # sparse tile: OpenSlide paints it transparent, i.e. white
            return np.full((h, w, 3), 255, np.uint8)
        data = self._pread(count, offset)
        if len(data) != count:
            raise SlideError(f"{self.path}: truncated file, {where} needs {count} bytes at offset {offset}")
        try:
            arr = decode_jpeg_strict(data, lv.tables, lv.colorspace == _RGB)
        except (RuntimeError, ValueError) as exc:
            raise SlideError(f"{self.path}: cannot decode {where}: {exc}") from exc
        if arr.shape != (lv.tile_h, lv.tile_w, 3):
            raise SlideError(f"{self.path}: {where} decoded to shape {arr.shape}, expected "
                             f"{(lv.tile_h, lv.tile_w, 3)}")
        return arr if (w, h) == (lv.tile_w, lv.tile_h) else np.ascontiguousarray(arr[:h, :w])

    def _pread(self, count: int, offset: int) -> bytes:
        try:
            if hasattr(os, "pread"):
                return os.pread(self._fd, count, offset)
            with self._io_lock:  # pragma: no cover - Windows
                os.lseek(self._fd, offset, os.SEEK_SET)
                return os.read(self._fd, count)
        except OSError as exc:
            raise SlideError(f"{self.path}: cannot read {count} bytes at offset {offset}: {exc}") from exc

    def close(self) -> None:
        with self._io_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        with self._cache_lock:
            self._cache.clear()
