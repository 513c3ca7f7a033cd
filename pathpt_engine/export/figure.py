"""Heatmap figures drawn with matplotlib's Agg/SVG/PDF canvases (never pyplot): PNG at a chosen DPI, SVG, PDF.

Without a slide: the raw heatmap (one cell per tile) over the tiles' bounding box. With a slide: its thumbnail
beside the thumbnail with the heatmap laid over it, both in level-0 pixels. Probability mode gets a colour bar,
class-map mode one legend patch per non-Normal class; a scale bar when the pixel size is known, and always the
caption (`captions.caption_lines`: run, method, backbone, layer, date, research-use note) under the axes. The
title names the layer ("tile probability of X"), never a finding. SVG text stays text (searchable, editable).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..colors import class_colors
from ..results import TileScores
from ..slides.base import SlideReader
from ._atomic import ExportError, atomic_path
from .captions import Caption, caption_lines
from .captions import title as layer_title
from .png import ARGMAX, OverlayStyle, tile_colors
from .raster import rasterize

FIGURE_FORMATS = ("png", "svg", "pdf")
_SCALE_UM = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
_THUMB_PX = 1024


def heatmap_grid(scores: TileScores, style: OverlayStyle) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """RGBA grid at one cell per `tile_size_level0` over the tiles' bounding box, and that box (x, y, w, h)."""
    if len(scores.coords) == 0:
        raise ExportError(f"{scores.slide_id}: no tiles to draw")
    opaque = OverlayStyle(style.mode, style.cmap, 1.0, style.colors, style.normal_index, style.vmin, style.vmax)
    t = scores.tile_size_level0
    x0, y0 = (int(v) for v in scores.coords.min(axis=0))
    x1, y1 = (int(v) + t for v in scores.coords.max(axis=0))
    box = (x0, y0, x1 - x0, y1 - y0)
    return rasterize(scores, tile_colors(scores, opaque), box, float(t)), box


def figure_format(path: str | os.PathLike[str]) -> str:
    """"png", "svg" or "pdf" from the file suffix (anything else: png)."""
    ext = Path(path).suffix.lower().lstrip(".")
    return ext if ext in FIGURE_FORMATS else "png"


def export_heatmap_figure(path: str | os.PathLike[str], scores: TileScores, style: OverlayStyle | None = None,
                          title: str | None = None, dpi: int = 150, max_inches: float = 8.0,
                          caption: Caption | None = None, reader: SlideReader | None = None) -> Path:
    """Write the heatmap figure (format from the suffix: png/svg/pdf) atomically; see the module docstring.

    Args:
        dpi: PNG resolution (8 in wide at `max_inches`=8).
        caption: run, method, backbone, research-use flag for the caption (None: "unknown").
        reader: the slide, for the thumbnail panel and the scale bar (its mpp).
    """
    import matplotlib
    from matplotlib.figure import Figure

    style = style or OverlayStyle()
    grid, box = heatmap_grid(scores, style)
    panels = 2 if reader is not None else 1
    w, h = reader.dimensions if reader is not None else box[2:]
    aspect = h / w / panels
    fig = Figure(figsize=(max_inches, max(3.0, min(max_inches, max_inches * aspect) + 1.6)), dpi=dpi)
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    if reader is not None:
        _draw_thumbnail(axes, reader)
    x, y, bw, bh = box
    axes[-1].imshow(grid, interpolation="nearest", extent=(x, x + bw, y + bh, y),
                    alpha=style.alpha if reader is not None else None)
    for ax in axes:
        ax.set_xlabel("x (level-0 px)")
    axes[0].set_ylabel("y (level-0 px)")
    mpp = reader.mpp[0] if reader is not None and reader.mpp else None
    if mpp is not None:
        _scale_bar(axes[-1], mpp)
    _legend(fig, axes[-1], scores, style, style.alpha if reader is not None else 1.0)
    fig.suptitle(title or layer_title(scores.slide_id, style, caption))
    fig.text(0.01, 0.01, "\n".join(caption_lines(scores.slide_id, style, caption)), ha="left", va="bottom",
             fontsize=8)
    fig.tight_layout(rect=(0.0, 0.08, 1.0, 1.0))
    _save(fig, path, matplotlib)
    return Path(path)


def _draw_thumbnail(axes: list[Any], reader: SlideReader) -> None:
    w, h = reader.dimensions
    thumb = reader.thumbnail(_THUMB_PX)
    for ax in axes:
        ax.imshow(thumb, extent=(0, w, h, 0), interpolation="antialiased")
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
    axes[0].set_title("slide", fontsize=9)
    axes[-1].set_title("heatmap over the slide", fontsize=9)


def _scale_bar(ax: Any, mpp: float) -> None:
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    x0, x1 = ax.get_xlim()
    width_um = abs(x1 - x0) * mpp
    um = max([v for v in _SCALE_UM if v <= width_um / 4] or [_SCALE_UM[0]])
    label = f"{um // 1000} mm" if um >= 1000 else f"{um} µm"
    ax.add_artist(AnchoredSizeBar(ax.transData, um / mpp, label, "lower right", pad=0.4, frameon=True,
                                  size_vertical=0, color="black"))


def _legend(fig: Any, ax: Any, scores: TileScores, style: OverlayStyle, alpha: float) -> None:
    """Class swatches (at the overlay's opacity, as drawn) or the colour bar of the class probability."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    if style.mode == ARGMAX:
        rgb = class_colors(scores.class_names, style.colors, style.normal_index)
        shown = [c for i, c in enumerate(scores.class_names) if i != style.normal_index]
        ax.legend(handles=[Patch(color="#{:02x}{:02x}{:02x}".format(*rgb[c][:3]), alpha=alpha, label=c) for c in shown],
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="tile votes (class)")
    else:
        sm = ScalarMappable(norm=Normalize(style.vmin, style.vmax), cmap=style.cmap)
        fig.colorbar(sm, ax=ax, label=f"tile probability of {style.mode}")


def _save(fig: Any, path: str | os.PathLike[str], matplotlib: Any) -> None:
    fmt = figure_format(path)
    with atomic_path(path) as tmp, matplotlib.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42}):
        try:
            fig.savefig(tmp, format=fmt)
        except OSError as exc:
            raise ExportError(f"{path}: cannot write figure ({exc})") from exc
