"""Tile values onto pixel grids, the one place that does it (engine and GUI).

`tile_index_raster` is the rasteriser: it maps tiles to the output pixels of a level-0 region at a downsample,
holding row indices (-1 where no tile). Tile edges are rounded to output pixels (a tile off the grid lands where
most of it lies), every tile covers at least one pixel, and where tiles overlap the later one wins. The two uses
are views of it:

- `rasterize` looks the indices up in a colour table: PNG overlays and heatmap figures;
- `tile_index_grid` rasterises at one cell per tile over the tiles' own extent, so the GUI recolours its heat
  map without rasterising again.
"""

from __future__ import annotations

import math

import numpy as np

from ..results import TileScores

Region = tuple[int, int, int, int]  # level-0 x, y, width, height


def _edges(coords: np.ndarray, tile_size: float, region: Region, downsample: float) -> tuple[np.ndarray, ...]:
    """Output-pixel edges x0, y0, x1, y1 of each tile (rounded; at least one pixel wide and high)."""
    x, y = region[:2]
    c = coords.astype(np.float64)
    x0 = np.round((c[:, 0] - x) / downsample).astype(np.int64)
    y0 = np.round((c[:, 1] - y) / downsample).astype(np.int64)
    x1 = np.maximum(np.round((c[:, 0] + tile_size - x) / downsample).astype(np.int64), x0 + 1)
    y1 = np.maximum(np.round((c[:, 1] + tile_size - y) / downsample).astype(np.int64), y0 + 1)
    return x0, y0, x1, y1


def tile_index_raster(coords: np.ndarray, tile_size: float, region: Region, downsample: float,
                      paint: np.ndarray | None = None) -> np.ndarray:
    """int32 (H, W) covering `region` at `downsample` (H, W = ceil(size / downsample), at least 1): the row of
    `coords` [N, 2] (level-0 top-left corners) whose tile covers each pixel, -1 where none. `paint` [N] bool
    leaves tiles out (they cover nothing)."""
    w, h = region[2:]
    out_w, out_h = max(1, math.ceil(w / downsample)), max(1, math.ceil(h / downsample))
    index = np.full((out_h, out_w), -1, dtype=np.int32)
    x0, y0, x1, y1 = _edges(np.asarray(coords).reshape(-1, 2), tile_size, region, downsample)
    keep = (x1 > 0) & (y1 > 0) & (x0 < out_w) & (y0 < out_h)
    if paint is not None:
        keep &= np.asarray(paint, bool)
    rows = np.flatnonzero(keep)
    x0, y0 = np.clip(x0[rows], 0, out_w), np.clip(y0[rows], 0, out_h)
    x1, y1 = np.minimum(x1[rows], out_w), np.minimum(y1[rows], out_h)
    if rows.size and ((x1 - x0) == 1).all() and ((y1 - y0) == 1).all():  # one pixel each: vectorised
        flat = y0 * out_w + x0
        last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]  # the later tile wins
        index.reshape(-1)[flat[last]] = rows[last]
        return index
    for a, b, c, d, r in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), rows.tolist(), strict=True):
        index[b:d, a:c] = r
    return index


def rasterize(scores: TileScores, rgba: np.ndarray, region: Region, downsample: float) -> np.ndarray:
    """Paint tile colours rgba [N, 4] onto a transparent (H, W, 4) canvas covering `region` at `downsample`;
    fully transparent tiles leave what lies under them."""
    rgba = np.asarray(rgba, np.uint8)
    index = tile_index_raster(scores.coords, scores.tile_size_level0, region, downsample, paint=rgba[:, 3] > 0)
    table = np.concatenate([rgba, np.zeros((1, 4), np.uint8)])  # row -1: transparent
    return table[index]


def tile_index_grid(coords: np.ndarray, tile_size: int) -> tuple[tuple[int, int], np.ndarray]:
    """(origin, index): `tile_index_raster` at one cell per tile. Cell (r, c) covers level-0
    [origin + (c, r) * tile_size, + tile_size) and holds the row of `coords` [N, 2] (top-left corners) there,
    -1 where no tile; origin is the tiles' lattice offset (min corner modulo tile_size).

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
    far = np.round((coords + tile_size - origin) / tile_size).max(axis=0).astype(np.int64)  # cells to cover
    region = (int(origin[0]), int(origin[1]), int(far[0]) * tile_size, int(far[1]) * tile_size)
    return (region[0], region[1]), tile_index_raster(coords, tile_size, region, float(tile_size))
