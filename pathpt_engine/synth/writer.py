"""Write RGB arrays as pyramidal slides that OpenSlide opens: generic tiled TIFF and Aperio-style SVS.

Each pyramid level is its own page (reduced levels with subfiletype=1), JPEG-compressed tiles, resolution tags
(generic TIFF) or the Aperio ImageDescription (SVS) so OpenSlide reports all levels and the mpp.
Files are written to a temp name in the same folder and renamed (atomic).

Two entry points: `write_slide` takes the whole level-0 array (small slides); `write_slide_streamed` takes level 0
as an iterable of horizontal strips, writes its tiles as they come and keeps only a downsampled copy for the lower
levels in memory (large slides, e.g. 40k x 30k). SVS files may carry "label" and "macro" associated images.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tifffile

from ..atomic import atomic_path

FORMATS = ("tiff", "svs")


def downsample2(img: np.ndarray) -> np.ndarray:
    """2x box downsample of an RGB uint8 image (odd edges dropped)."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    x = img[:h, :w].astype(np.uint16)
    x = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2] + 2) // 4
    return x.astype(np.uint8)


def build_pyramid(image: np.ndarray, min_size: int = 512) -> list[np.ndarray]:
    """Level 0 plus successive 2x downsamples until the longer side is below `min_size`."""
    levels = [image]
    while max(levels[-1].shape[:2]) > min_size:
        levels.append(downsample2(levels[-1]))
    return levels


def write_slide(
    path: str | os.PathLike[str],
    image: np.ndarray,
    mpp: float = 0.25,
    fmt: str = "tiff",
    tile: int = 256,
    quality: int = 90,
    levels: Sequence[np.ndarray] | None = None,
    label: np.ndarray | None = None,
    macro: np.ndarray | None = None,
) -> Path:
    """Write `image` (H, W, 3 uint8, level 0) as a pyramidal slide.

    Args:
        path: output file (.tif/.tiff for generic TIFF, .svs for Aperio).
        image: level-0 RGB pixels.
        mpp: level-0 microns per pixel.
        fmt: "tiff" or "svs".
        tile: tile edge in pixels.
        quality: JPEG quality.
        levels: precomputed pyramid (level 0 first); built by 2x box filtering when omitted.
        label, macro: optional associated images (SVS only).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown slide format {fmt!r}; choose one of {FORMATS}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
    path = Path(path)
    pyramid = list(levels) if levels is not None else build_pyramid(image)
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        if fmt == "tiff":
            _write_generic(tw, pyramid, mpp, tile, quality)
        else:
            _write_aperio(tw, path.stem, pyramid, mpp, tile, quality, label, macro)
    return path


def _write_generic(tw: tifffile.TiffWriter, pyramid: list[np.ndarray], mpp: float, tile: int, quality: int) -> None:
    px_per_cm = 1e4 / mpp
    for i, level in enumerate(pyramid):
        ds = pyramid[0].shape[1] / level.shape[1]
        tw.write(
            level,
            photometric="rgb",
            tile=(tile, tile),
            compression="jpeg",
            compressionargs={"level": quality},
            subfiletype=1 if i else 0,
            resolution=(px_per_cm / ds, px_per_cm / ds),
            resolutionunit="CENTIMETER",
            metadata=None,
        )


def _aperio_head(w: int, h: int) -> str:
    return f"Aperio Image Library v12.0.0 \r\n{w}x{h} [0,0 {w}x{h}]"


def _write_aperio(
    tw: tifffile.TiffWriter,
    name: str,
    pyramid: list[np.ndarray],
    mpp: float,
    tile: int,
    quality: int,
    label: np.ndarray | None,
    macro: np.ndarray | None,
) -> None:
    h, w = pyramid[0].shape[:2]
    jpeg = _jpeg_args(quality)
    tw.write(pyramid[0], tile=(tile, tile), description=_aperio_desc0(name, w, h, tile, quality, mpp), **jpeg)
    _write_aperio_rest(tw, pyramid[1:], pyramid[-1], (w, h), tile, quality, label, macro)


def _jpeg_args(quality: int) -> dict:
    return {"compression": "jpeg", "compressionargs": {"level": quality}, "photometric": "rgb", "metadata": None}


def _aperio_desc0(stem: str, w: int, h: int, tile: int, quality: int, mpp: float) -> str:
    """Page 0's Aperio description; `Filename` is the slide's own name (not the temp file being written)."""
    mag = round(10.0 / mpp)
    # TIFF strings are 7-bit ASCII: a non-ASCII file name must not make the slide unwritable.
    name = stem.encode("ascii", "replace").decode("ascii")
    return (f"{_aperio_head(w, h)} ({tile}x{tile}) JPEG/RGB Q={quality}"
            f"|AppMag = {mag}|MPP = {mpp:.4f}|Filename = {name}")


def _write_aperio_rest(
    tw: tifffile.TiffWriter,
    levels: Sequence[np.ndarray],
    thumb: np.ndarray,
    size0: tuple[int, int],
    tile: int,
    quality: int,
    label: np.ndarray | None,
    macro: np.ndarray | None,
) -> None:
    """Thumbnail (2nd page, stripped), reduced levels (tiled), then label and macro (stripped, named on line 2)."""
    w, h = size0
    jpeg = _jpeg_args(quality)
    while max(thumb.shape[:2]) > 1024:
        thumb = downsample2(thumb)
    tw.write(thumb, description=f"{_aperio_head(w, h)} -> {thumb.shape[1]}x{thumb.shape[0]} JPEG/RGB Q={quality}",
             **jpeg)
    for level in levels:
        lw, lh = level.shape[1], level.shape[0]
        desc = f"{_aperio_head(w, h)} ({tile}x{tile}) -> {lw}x{lh} JPEG/RGB Q={quality}"
        tw.write(level, tile=(tile, tile), description=desc, subfiletype=0, **jpeg)
    # OpenSlide names an associated image by the first word of the description's second line; the line break
    # must be a single "\n" (with "\r\n" the second line is empty and the image is not listed).
    for name, img, subfile in (("label", label, 1), ("macro", macro, 9)):
        if img is None:
            continue
        _check_rgb(img, name)
        comp = {"compression": "lzw"} if name == "label" else {"compression": "jpeg", "compressionargs": {"level": 85}}
        tw.write(img, description=f"Aperio Image Library v12.0.0\n{name} {img.shape[1]}x{img.shape[0]}",
                 subfiletype=subfile, photometric="rgb", metadata=None, rowsperstrip=16, **comp)


def _check_rgb(img: np.ndarray, what: str) -> None:
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 (H, W, 3), got {img.dtype} {img.shape}")


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Box downsample of an RGB uint8 image by an integer factor (edges padded by replication)."""
    if factor == 1:
        return img
    h, w = img.shape[:2]
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        img = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
    if img.flags.c_contiguous:  # Pillow's box reduction: same rounding, about twice as fast
        from PIL import Image

        return np.asarray(Image.fromarray(img).reduce(factor))
    cols = img[:, 0::factor].astype(np.uint16)
    for i in range(1, factor):
        cols += img[:, i::factor]
    x = cols[0::factor].copy()
    for i in range(1, factor):
        x += cols[i::factor]
    x += factor * factor // 2
    x //= factor * factor
    return x.astype(np.uint8)


def _tiles(strips: Iterable[np.ndarray], width: int, height: int, tile: int, on_strip: Callable[[np.ndarray], None],
           ) -> Iterator[np.ndarray]:
    """Level-0 tiles in raster order from horizontal strips (heights multiples of `tile` except the last)."""
    y = 0
    for strip in strips:
        sh = strip.shape[0]
        if strip.shape[1:] != (width, 3) or strip.dtype != np.uint8 or sh <= 0:
            raise ValueError(f"strip must be uint8 (rows, {width}, 3), got {strip.dtype} {strip.shape}")
        if y + sh < height and sh % tile:
            raise ValueError(f"strip height {sh} must be a multiple of the tile size {tile} (except the last)")
        on_strip(strip)
        for r in range(0, sh, tile):
            rows = strip[r : r + tile]
            for c in range(0, width, tile):
                t = rows[:, c : c + tile]
                if t.shape[:2] != (tile, tile):
                    t = np.pad(t, ((0, tile - t.shape[0]), (0, tile - t.shape[1]), (0, 0)), constant_values=255)
                yield t
        y += sh
    if y != height:
        raise ValueError(f"strips cover {y} rows, expected {height}")


def write_slide_streamed(
    path: str | os.PathLike[str],
    width: int,
    height: int,
    strips: Iterable[np.ndarray],
    mpp: float = 0.25,
    fmt: str = "tiff",
    tile: int = 256,
    quality: int = 90,
    level_factor: int = 4,
    min_size: int = 1024,
    label: np.ndarray | None = None,
    macro: np.ndarray | None = None,
) -> Path:
    """Write a pyramidal slide whose level 0 arrives as horizontal strips (never held whole in memory).

    Args:
        path: output file.
        width, height: level-0 size in pixels.
        strips: level-0 RGB uint8 strips (rows, width, 3), top to bottom; heights multiples of
            lcm(tile, level_factor) except the last one.
        mpp: level-0 microns per pixel.
        fmt: "tiff" or "svs".
        tile: tile edge in pixels.
        quality: JPEG quality.
        level_factor: downsample between successive levels (4 like Aperio scanners, or 2).
        min_size: stop adding levels once the longer side is at most this.
        label, macro: optional associated images (SVS only).

    Returns:
        The written path.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown slide format {fmt!r}; choose one of {FORMATS}")
    if level_factor not in (2, 4) or width < 1 or height < 1:
        raise ValueError(f"need width, height >= 1 and level_factor 2 or 4, got {width}x{height}, {level_factor}")
    path = Path(path)
    parts: list[np.ndarray] = []
    tiles = _tiles(strips, width, height, tile, lambda s: parts.append(downsample(s, level_factor)))
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        common = {"shape": (height, width, 3), "dtype": np.uint8, "tile": (tile, tile), **_jpeg_args(quality)}
        if fmt == "tiff":
            px_per_cm = 1e4 / mpp
            tw.write(tiles, resolution=(px_per_cm, px_per_cm), resolutionunit="CENTIMETER", **common)
        else:
            tw.write(tiles, description=_aperio_desc0(path.stem, width, height, tile, quality, mpp), **common)
        levels = _lower_levels(parts, level_factor, min_size)
        thumb = levels[-1]
        if max(width, height) <= min_size:
            levels = []
        if fmt == "tiff":
            _write_generic_levels(tw, levels, width, mpp, tile, quality)
        else:
            _write_aperio_rest(tw, levels, thumb, (width, height), tile, quality, label, macro)
    return path


def _lower_levels(parts: list[np.ndarray], factor: int, min_size: int) -> list[np.ndarray]:
    level = np.concatenate(parts, axis=0)
    parts.clear()
    levels = [level]
    while max(levels[-1].shape[:2]) > min_size:
        levels.append(downsample(levels[-1], factor))
    return levels


def _write_generic_levels(tw: tifffile.TiffWriter, levels: list[np.ndarray], width: int, mpp: float, tile: int,
                          quality: int) -> None:
    px_per_cm = 1e4 / mpp
    for level in levels:
        ds = width / level.shape[1]
        tw.write(level, tile=(tile, tile), subfiletype=1, resolution=(px_per_cm / ds, px_per_cm / ds),
                 resolutionunit="CENTIMETER", **_jpeg_args(quality))
