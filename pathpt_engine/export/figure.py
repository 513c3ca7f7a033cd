"""The raw heatmap (one cell per tile, no slide underneath) with a legend, drawn with matplotlib's Agg canvas.

Probability mode gets a colorbar; argmax mode gets one legend patch per non-Normal class. Never imports pyplot.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..colors import class_colors
from ..results import TileScores
from ._atomic import ExportError, atomic_path
from .png import ARGMAX, OverlayStyle, tile_colors
from .raster import rasterize


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


def export_heatmap_figure(path: str | os.PathLike[str], scores: TileScores, style: OverlayStyle | None = None,
                          title: str | None = None, dpi: int = 150, max_inches: float = 8.0) -> Path:
    """Write the heatmap with its legend (and axes in level-0 pixels) as a PNG figure, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    style = style or OverlayStyle()
    grid, (x, y, w, h) = heatmap_grid(scores, style)
    aspect = grid.shape[0] / grid.shape[1]
    fig = Figure(figsize=(max_inches, max(2.5, min(max_inches, max_inches * aspect) + 0.8)), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(grid, interpolation="nearest", extent=(x, x + w, y + h, y))
    ax.set_xlabel("x (level-0 px)")
    ax.set_ylabel("y (level-0 px)")
    if style.mode == ARGMAX:
        rgb = class_colors(scores.class_names, style.colors, style.normal_index)
        shown = [c for i, c in enumerate(scores.class_names) if i != style.normal_index]
        ax.legend(handles=[Patch(color=np.array(rgb[c]) / 255.0, label=c) for c in shown],
                  loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, title="class")
    else:
        sm = ScalarMappable(norm=Normalize(style.vmin, style.vmax), cmap=style.cmap)
        fig.colorbar(sm, ax=ax, label=f"P({style.mode})")
    ax.set_title(title or f"{scores.slide_id}: {'argmax class' if style.mode == ARGMAX else style.mode}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        try:
            fig.savefig(tmp, format="png")
        except OSError as exc:
            raise ExportError(f"{path}: cannot write figure ({exc})") from exc
    return Path(path)
