"""PNG exports: the slide (or a region) with the tile overlay blended in, and the raw heatmap with a legend.

Two overlay modes: one class's probability through a matplotlib colormap, or the argmax class map in class
colours (the Normal class transparent). Slides are read through the `SlideReader` at the best pyramid level for
the requested downsample, in horizontal strips, and resized to the output. matplotlib is used through its Agg
canvas only (never pyplot), so this module is safe inside the GUI process.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..colors import class_colors
from ..results import TileScores
from ..slides.base import SlideReader
from ._atomic import ExportError, atomic_path
from .raster import Region, rasterize

ARGMAX = "argmax"
MAX_OUTPUT_PIXELS = 100_000_000  # 10k x 10k; choose a larger downsample beyond
_STRIP_ROWS = 1024



@dataclass(frozen=True)
class OverlayStyle:
    """How tiles are coloured.

    Attributes:
        mode: "argmax" for the class map, or a class name for that class's probability.
        cmap: matplotlib colormap name (probability mode).
        alpha: overlay opacity in [0, 1].
        colors: class name -> "#rrggbb" (argmax mode); unset classes use the default palette.
        normal_index: column of the Normal class (transparent in argmax mode); None if there is none.
        vmin, vmax: probability range mapped onto the colormap.
    """

    mode: str = ARGMAX
    cmap: str = "viridis"
    alpha: float = 0.5
    colors: Mapping[str, str] = field(default_factory=dict)
    normal_index: int | None = 0
    vmin: float = 0.0
    vmax: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if not self.vmax > self.vmin:
            raise ValueError(f"vmax ({self.vmax}) must be greater than vmin ({self.vmin})")
        import matplotlib

        if self.cmap not in matplotlib.colormaps:
            raise ValueError(f"unknown colormap {self.cmap!r} (e.g. viridis, magma, coolwarm, jet)")


def tile_colors(scores: TileScores, style: OverlayStyle) -> np.ndarray:
    """RGBA uint8 [N, 4] per tile, alpha already scaled by `style.alpha` (0 = transparent)."""
    n = len(scores.coords)
    out = np.zeros((n, 4), dtype=np.uint8)
    if style.mode == ARGMAX:
        rgb = class_colors(scores.class_names, style.colors, style.normal_index)
        table = np.array([rgb[c] for c in scores.class_names], dtype=np.uint8).reshape(-1, 3)
        k = np.argmax(scores.probs, axis=1) if n else np.zeros(0, dtype=int)
        out[:, :3] = table[k]
        out[:, 3] = round(style.alpha * 255)
        if style.normal_index is not None:
            out[k == style.normal_index, 3] = 0
        return out
    if style.mode not in scores.class_names:
        raise ExportError(f"{scores.slide_id}: no class {style.mode!r} in {list(scores.class_names)}")
    import matplotlib

    p = scores.probs[:, scores.class_names.index(style.mode)].astype(np.float64)
    t = np.clip((p - style.vmin) / (style.vmax - style.vmin), 0.0, 1.0)
    out[:] = matplotlib.colormaps[style.cmap](t, bytes=True)
    out[:, 3] = round(style.alpha * 255)
    return out


def read_slide_region(reader: SlideReader, region: Region, downsample: float) -> np.ndarray:
    """RGB (H, W, 3) of `region` (level 0) at `downsample`, read at the best level in strips and resized."""
    x, y, w, h = region
    out_w, out_h = max(1, math.ceil(w / downsample)), max(1, math.ceil(h / downsample))
    if out_w * out_h > MAX_OUTPUT_PIXELS:
        raise ExportError(f"{reader.path}: {out_w}x{out_h} output is too large; use a larger downsample")
    level = reader.best_level_for_downsample(downsample)
    lds = float(reader.level_downsamples[level])
    f = downsample / lds  # level pixels per output pixel
    lw = max(1, math.ceil(w / lds))
    out = np.empty((out_h, out_w, 3), dtype=np.uint8)
    for r0 in range(0, out_h, _STRIP_ROWS):
        r1 = min(out_h, r0 + _STRIP_ROWS)
        ly0, ly1 = math.floor(r0 * f), max(math.floor(r0 * f) + 1, math.ceil(r1 * f))
        strip = reader.read_region((int(x), int(round(y + ly0 * lds))), level, (lw, ly1 - ly0))
        img = Image.fromarray(strip).resize((out_w, r1 - r0), Image.Resampling.BOX if f >= 1 else
                                            Image.Resampling.BILINEAR)
        out[r0:r1] = np.asarray(img)
    return out


def blend(base: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Alpha-composite an RGBA overlay onto an RGB image of the same size (integer math, row strips)."""
    out = np.empty_like(base)
    for r0 in range(0, base.shape[0], _STRIP_ROWS):
        a = overlay[r0:r0 + _STRIP_ROWS, :, 3:4].astype(np.uint32)
        mixed = base[r0:r0 + _STRIP_ROWS].astype(np.uint32) * (255 - a) + overlay[r0:r0 + _STRIP_ROWS, :, :3] * a
        out[r0:r0 + _STRIP_ROWS] = ((mixed + 127) // 255).astype(np.uint8)
    return out


def render_overlay(reader: SlideReader, scores: TileScores, downsample: float, style: OverlayStyle,
                   region: Region | None = None) -> np.ndarray:
    """The slide (or `region`, level-0 x, y, w, h) at `downsample` with the overlay blended in: RGB uint8."""
    if downsample <= 0:
        raise ValueError(f"downsample must be > 0, got {downsample}")
    region = region or (0, 0, *reader.dimensions)
    if region[2] <= 0 or region[3] <= 0:
        raise ExportError(f"{reader.path}: empty export region {region}")
    base = read_slide_region(reader, region, downsample)
    return blend(base, rasterize(scores, tile_colors(scores, style), region, downsample))


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write an RGB/RGBA uint8 array as PNG atomically."""
    with atomic_path(path) as tmp:
        try:
            Image.fromarray(image).save(tmp, format="PNG")
        except OSError as exc:
            raise ExportError(f"{path}: cannot write PNG ({exc})") from exc
    return Path(path)


def export_overlay_png(path: str | os.PathLike[str], reader: SlideReader, scores: TileScores,
                       downsample: float = 32.0, style: OverlayStyle | None = None,
                       region: Region | None = None) -> Path:
    """Render the blended overlay and write it to `path` (atomic)."""
    return write_png(path, render_overlay(reader, scores, downsample, style or OverlayStyle(), region))
