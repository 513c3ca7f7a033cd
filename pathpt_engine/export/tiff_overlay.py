"""Aligned multiresolution TIFF overlay (the ASAP `_likelihood_map.tif` / CAMELYON convention), OpenSlide-readable.

Layout (see the interop notes in the README): level 0 is `(H // d, W // d)` for a slide of level-0 size W x H and
an integer downsample d (floor, so ASAP's integer scale `W // w` holds); overlay pixel (i, j) covers slide
[j·d, (j+1)·d) x [i·d, (i+1)·d) and takes the tile containing its centre. Tiled (256 px), LZW, BigTIFF; reduced
levels are separate top-level pages with NewSubfileType=1 (never SubIFDs, which OpenSlide does not see), halved
down to <= 1024 px; every page carries its resolution in px/cm (10^4 / (mpp·d·2^k)), so OpenSlide reports
`mpp-x` = slide mpp · d. No OME-XML or other ImageDescription (ASAP refuses XML descriptions).

Two variants:
- "gray": one uint8 channel (minisblack). Class map: 0 = no tile, k + 1 = argmax class k. Probability of a class:
  0 = no tile, else round(p * 255) clipped to 1..255.
- "rgba": the overlay colours (`tile_colors`, alpha = opacity, 0 outside tiles).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..results import TileScores
from ._atomic import ExportError, atomic_path
from .png import ARGMAX, OverlayStyle, tile_colors
from .raster import paint_tiles

VARIANTS = ("gray", "rgba")
TILE = 256
MAX_LEVEL0_PIXELS = 1_000_000_000  # 1 Gpx (4 GB as RGBA): choose a larger downsample beyond


def tile_values(scores: TileScores, style: OverlayStyle, variant: str) -> np.ndarray:
    """Per-tile pixel value: uint8 [N] ("gray") or uint8 [N, 4] ("rgba"); see the module docstring."""
    if variant == "rgba":
        return tile_colors(scores, style)
    if variant != "gray":
        raise ValueError(f"unknown TIFF overlay variant {variant!r}; known: {list(VARIANTS)}")
    if len(scores.probs) == 0:
        return np.zeros(0, dtype=np.uint8)
    if style.mode == ARGMAX:
        if len(scores.class_names) > 254:
            raise ExportError(f"{scores.slide_id}: {len(scores.class_names)} classes do not fit a uint8 class map")
        return (np.argmax(scores.probs, axis=1) + 1).astype(np.uint8)
    if style.mode not in scores.class_names:
        raise ExportError(f"{scores.slide_id}: no class {style.mode!r} in {list(scores.class_names)}")
    p = scores.probs[:, scores.class_names.index(style.mode)].astype(np.float64)
    return np.clip(np.round(p * 255.0), 1, 255).astype(np.uint8)


def overlay_level0(scores: TileScores, values: np.ndarray, slide_size: tuple[int, int], d: int) -> np.ndarray:
    """Level-0 overlay (H // d, W // d[, 4]) with each tile's value where the pixel centre lies in the tile."""
    w, h = slide_size[0] // d, slide_size[1] // d
    if w < 1 or h < 1:
        raise ExportError(f"{scores.slide_id}: slide {slide_size} is smaller than the downsample {d}")
    if w * h > MAX_LEVEL0_PIXELS:
        raise ExportError(f"{scores.slide_id}: a {w}x{h} overlay is too large; use a larger downsample")
    return paint_tiles(scores.coords, scores.tile_size_level0, (0, 0, w * d, h * d), float(d),
                       np.asarray(values, np.uint8), cover_one=False)


def write_tiff_overlay(path: str | os.PathLike[str], scores: TileScores, slide_size: tuple[int, int],
                       slide_mpp: float | None, downsample: int, style: OverlayStyle | None = None,
                       variant: str = "gray") -> Path:
    """Write the aligned pyramidal overlay TIFF atomically (see the module docstring for the layout).

    Args:
        slide_size: the slide's level-0 (width, height).
        slide_mpp: level-0 µm/px (None: no resolution tags, so no mpp in OpenSlide).
        downsample: integer level-0 pixels per overlay pixel (d).
        variant: "gray" (uint8 class index or probability) or "rgba".
    """
    style = style or OverlayStyle()
    d = int(downsample)
    if d != downsample or d < 1:
        raise ExportError(f"{path}: the TIFF overlay needs an integer downsample >= 1, got {downsample}")
    values = tile_values(scores, style, variant)
    level0 = overlay_level0(scores, values, slide_size, d)
    levels = _levels(level0, label=variant == "gray" and style.mode == ARGMAX)
    with atomic_path(path) as tmp:
        try:
            _write_pages(tmp, levels, slide_mpp, d, rgba=variant == "rgba")
        except (OSError, ValueError) as exc:
            raise ExportError(f"{path}: cannot write the TIFF overlay ({exc})") from exc
    return Path(path)


def _write_pages(path: Path, levels: list[np.ndarray], slide_mpp: float | None, d: int, rgba: bool) -> None:
    """Top-level tiled LZW pages, largest first, reduced ones with NewSubfileType=1, each with its px/cm."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for k, a in enumerate(levels):
            ppcm = None if slide_mpp is None else 1e4 / (slide_mpp * d * 2 ** k)
            tif.write(a, tile=(TILE, TILE), photometric="rgb" if rgba else "minisblack", compression="lzw",
                      subfiletype=1 if k else 0, metadata=None, extrasamples=("unassalpha",) if rgba else None,
                      resolution=None if ppcm is None else (ppcm, ppcm),
                      resolutionunit="CENTIMETER" if ppcm is not None else None)


def _levels(level0: np.ndarray, label: bool) -> list[np.ndarray]:
    """Pyramid levels; class maps are subsampled (a mean of class indices is no class), the rest 2x2-averaged
    (PIL's box reduce, per channel, on the floor-halved size)."""
    from PIL import Image

    levels = [level0]
    while max(levels[-1].shape[:2]) > 1024:
        a = levels[-1]
        h, w = a.shape[0] // 2, a.shape[1] // 2
        if label:
            levels.append(np.ascontiguousarray(a[:2 * h:2, :2 * w:2]))
        else:
            planes = a[:2 * h, :2 * w, None] if a.ndim == 2 else a[:2 * h, :2 * w]
            levels.append(np.dstack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[:, :, i])).reduce(2))
                                     for i in range(planes.shape[2])]).reshape(h, w, *a.shape[2:]))
    return levels
