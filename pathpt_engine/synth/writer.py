"""Write RGB arrays as pyramidal slides that OpenSlide opens: generic tiled TIFF and Aperio-style SVS.

Each pyramid level is its own page (reduced levels with subfiletype=1), JPEG-compressed tiles, resolution tags
(generic TIFF) or the Aperio ImageDescription (SVS) so OpenSlide reports all levels and the mpp.
Files are written to a temp name in the same folder and renamed (atomic).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
            if fmt == "tiff":
                _write_generic(tw, pyramid, mpp, tile, quality)
            else:
                _write_aperio(tw, pyramid, mpp, tile, quality, label, macro)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
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


def _write_aperio(
    tw: tifffile.TiffWriter,
    pyramid: list[np.ndarray],
    mpp: float,
    tile: int,
    quality: int,
    label: np.ndarray | None,
    macro: np.ndarray | None,
) -> None:
    h, w = pyramid[0].shape[:2]
    mag = round(10.0 / mpp)
    desc0 = (
        f"Aperio Image Library v12.0.0 \r\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}"
        f"|AppMag = {mag}|MPP = {mpp:.4f}|Filename = {Path(tw.filehandle.name).stem}"
    )
    jpeg = {"compression": "jpeg", "compressionargs": {"level": quality}, "photometric": "rgb", "metadata": None}
    tw.write(pyramid[0], tile=(tile, tile), description=desc0, **jpeg)
    thumb = pyramid[-1]
    tw.write(thumb, description=f"Aperio Image Library v12.0.0 \r\n{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]}",
             **jpeg)
    for level in pyramid[1:]:
        lw, lh = level.shape[1], level.shape[0]
        desc = f"Aperio Image Library v12.0.0 \r\n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) -> {lw}x{lh} JPEG/RGB Q={quality}"
        tw.write(level, tile=(tile, tile), description=desc, subfiletype=0, **jpeg)
    for name, img in (("label", label), ("macro", macro)):
        if img is not None:
            tw.write(img, description=f"Aperio Image Library v12.0.0\r\n{name} {img.shape[1]}x{img.shape[0]}",
                     subfiletype=1, compression="lzw" if name == "label" else "jpeg", photometric="rgb",
                     metadata=None)
