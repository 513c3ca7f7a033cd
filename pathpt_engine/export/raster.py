"""Tile values onto pixel grids, the one place that does it (engine and GUI): `rasterize` paints tile colours
onto a canvas of a level-0 region at any downsample (PNG overlays, heatmap figures); `tile_index_grid` maps
tiles to a grid of one cell per tile, holding row indices rather than colours, so the GUI recolours its heat
map without rasterising again.

The two are not one function because their cell mapping differs where tiles overlap or sit off the tile grid
(`rasterize` rounds tile edges to output pixels, `tile_index_grid` floors tile corners to cells): merging them
would change the pixels of one of them.
"""

from __future__ import annotations

import math

import numpy as np

from ..results import TileScores

Region = tuple[int, int, int, int]  # level-0 x, y, width, height


def tile_index_grid(coords: np.ndarray, tile_size: int) -> tuple[tuple[int, int], np.ndarray]:
    """(origin, index): cell (r, c) covers level-0 [origin + (c, r) * tile_size, + tile_size) and holds the row
    of `coords` [N, 2] (top-left corners) there, -1 where no tile (the last of several tiles wins).

    Raises:
        ValueError: coords not a non-empty [N, 2] array, or tile_size <= 0.
    """
    coords = np.asarray(coords)
    if coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
        raise ValueError(f"coords must be a non-empty [N, 2] array, got {coords.shape}")
    if tile_size <= 0:
        raise ValueError(f"tile_size must be > 0, got {tile_size}")
    coords = coords.astype(np.int64)
    origin = coords.min(axis=0) % tile_size
    cr = (coords - origin) // tile_size
    rows, cols = int(cr[:, 1].max()) + 1, int(cr[:, 0].max()) + 1
    index = np.full((rows, cols), -1, dtype=np.int32)
    index[cr[:, 1], cr[:, 0]] = np.arange(len(coords), dtype=np.int32)
    return (int(origin[0]), int(origin[1])), index


def rasterize(scores: TileScores, rgba: np.ndarray, region: Region, downsample: float) -> np.ndarray:
    """Paint tile colours onto a transparent (H, W, 4) canvas covering `region` at `downsample`."""
    x, y, w, h = region
    out_w, out_h = max(1, math.ceil(w / downsample)), max(1, math.ceil(h / downsample))
    canvas = np.zeros((out_h, out_w, 4), dtype=np.uint8)
    t = scores.tile_size_level0
    c = scores.coords.astype(np.float64)
    x0 = np.round((c[:, 0] - x) / downsample).astype(np.int64)
    y0 = np.round((c[:, 1] - y) / downsample).astype(np.int64)
    x1 = np.maximum(np.round((c[:, 0] + t - x) / downsample).astype(np.int64), x0 + 1)
    y1 = np.maximum(np.round((c[:, 1] + t - y) / downsample).astype(np.int64), y0 + 1)
    keep = (x1 > 0) & (y1 > 0) & (x0 < out_w) & (y0 < out_h) & (rgba[:, 3] > 0)
    for a, b, cc, d, col in zip(np.clip(x0[keep], 0, out_w), np.clip(y0[keep], 0, out_h), x1[keep], y1[keep],
                                rgba[keep], strict=True):
        canvas[b:d, a:cc] = col
    return canvas
