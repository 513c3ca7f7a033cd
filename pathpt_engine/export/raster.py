"""Tile values onto pixel grids, the one place that does it (engine and GUI).

`paint_tiles` is the rasteriser: it paints one value per tile (a colour, a class index, a row number) onto the
pixels of a level-0 region at a downsample. A pixel takes the tile that contains its centre (the ASAP overlay
rule), and where tiles overlap the later one wins. Its uses:

- `rasterize`: overlay colours (PNG overlays, heatmap figures); every tile shows as at least one pixel, so a
  thumbnail smaller than the tiles keeps them all;
- `tile_index_grid`: row indices at one cell per tile over the tiles' own extent, so the GUI recolours its heat
  map without rasterising again;
- the TIFF overlay (`tiff_overlay.overlay_level0`): class indices, probabilities or colours at an integer
  downsample, where a tile covering no pixel centre is left out (the ASAP alignment rule).
"""

from __future__ import annotations

import math

import numpy as np

from ..results import TileScores

Region = tuple[int, int, int, int]  # level-0 x, y, width, height


def output_size(region: Region, downsample: float) -> tuple[int, int]:
    """(width, height) in pixels of `region` at `downsample` (ceil, at least 1)."""
    return max(1, math.ceil(region[2] / downsample)), max(1, math.ceil(region[3] / downsample))


def paint_tiles(coords: np.ndarray, tile_size: float, region: Region, downsample: float, values: np.ndarray, *,
                background: float = 0, paint: np.ndarray | None = None, cover_one: bool = True) -> np.ndarray:
    """Array (H, W, *values.shape[1:]) of values.dtype covering `region` at `downsample` (H, W: `output_size`),
    `background` where no tile: pixel (i, j) takes values[k] of the last tile k of `coords` [N, 2] (level-0
    top-left corners) whose box [x, x + tile_size) x [y, y + tile_size) holds the pixel's centre.

    `paint` [N] bool leaves tiles out; `cover_one` gives a tile that holds no pixel centre the pixel its top-left
    corner falls in (thumbnails smaller than a tile).
    """
    values = np.asarray(values)
    out_w, out_h = output_size(region, downsample)
    out = np.full((out_h, out_w, *values.shape[1:]), background, dtype=values.dtype)
    c = np.asarray(coords, np.float64).reshape(-1, 2) - np.asarray(region[:2], np.float64)
    # centre of pixel i is (i + 0.5) d: inside [x, x + t) for ceil(x/d - 0.5) <= i < ceil((x + t)/d - 0.5)
    x0, y0 = (np.ceil(c[:, k] / downsample - 0.5).astype(np.int64) for k in (0, 1))
    x1, y1 = (np.ceil((c[:, k] + tile_size) / downsample - 0.5).astype(np.int64) for k in (0, 1))
    if cover_one:
        x1, y1 = np.maximum(x1, x0 + 1), np.maximum(y1, y0 + 1)
    keep = (x1 > np.maximum(x0, 0)) & (y1 > np.maximum(y0, 0)) & (x0 < out_w) & (y0 < out_h)
    if paint is not None:
        keep &= np.asarray(paint, bool)
    rows = np.flatnonzero(keep)
    x0, y0 = np.clip(x0[rows], 0, out_w), np.clip(y0[rows], 0, out_h)
    x1, y1 = np.minimum(x1[rows], out_w), np.minimum(y1[rows], out_h)
    if rows.size and ((x1 - x0) == 1).all() and ((y1 - y0) == 1).all():  # one pixel each: vectorised
        flat = y0 * out_w + x0
        last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]  # the later tile wins
        out.reshape(out_h * out_w, *values.shape[1:])[flat[last]] = values[rows[last]]
        return out
    for a, b, cc, d, r in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist(), rows.tolist(), strict=True):
        out[b:d, a:cc] = values[r]
    return out


def rasterize(scores: TileScores, rgba: np.ndarray, region: Region, downsample: float) -> np.ndarray:
    """Paint tile colours rgba [N, 4] onto a transparent (H, W, 4) canvas covering `region` at `downsample`;
    fully transparent tiles leave what lies under them."""
    rgba = np.asarray(rgba, np.uint8)
    return paint_tiles(scores.coords, scores.tile_size_level0, region, downsample, rgba, paint=rgba[:, 3] > 0)


def tile_index_grid(coords: np.ndarray, tile_size: int) -> tuple[tuple[int, int], np.ndarray]:
    """(origin, index): row indices painted at one cell per tile. Cell (r, c) covers level-0
    [origin + (c, r) * tile_size, + tile_size) and holds the row of `coords` [N, 2] (top-left corners) there,
    int32, -1 where no tile; origin is the tiles' lattice offset (min corner modulo tile_size).

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
    far = np.ceil((coords + tile_size - origin) / tile_size - 0.5).max(axis=0).astype(np.int64)  # cells to cover
    region = (int(origin[0]), int(origin[1]), int(far[0]) * tile_size, int(far[1]) * tile_size)
    index = paint_tiles(coords, tile_size, region, float(tile_size), np.arange(len(coords), dtype=np.int32),
                        background=-1)
    return (region[0], region[1]), index
