"""Composing a level region from the level's native tiles: written once, for `OpenSlideReader.read_region` and for
the batches of `batches.iter_tile_batches`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Key = tuple[int, int]  # native tile (col, row)


def native_keys(x: int, y: int, size: tuple[int, int], tile: tuple[int, int], dims: tuple[int, int]) -> list[Key]:
    """Native tiles (col, row) that the level region at (x, y) of `size` (w, h) overlaps inside the level."""
    (w, h), (tw, th), (lw, lh) = size, tile, dims
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, lw), min(y + h, lh)
    if x0 >= x1 or y0 >= y1:
        return []
    return [(c, r) for r in range(y0 // th, (y1 - 1) // th + 1) for c in range(x0 // tw, (x1 - 1) // tw + 1)]


def compose_native(dst: np.ndarray, x: int, y: int, keys: list[Key], tile_of: Callable[[Key], np.ndarray],
                   tile: tuple[int, int]) -> None:
    """Fill `dst` (H, W, 3), the level region at (x, y), from the native tiles `keys` (`tile_of(key)`: decoded,
    cropped at the level's edges); white where none covers it (outside the level), as `read_region` gives."""
    h, w = dst.shape[:2]
    tw, th = tile
    placed = [(col * tw, row * th, tile_of((col, row))) for col, row in keys]  # each tile fetched once
    covered = 0
    for tx, ty, src in placed:
        sx0, sy0 = max(x, tx), max(y, ty)
        sx1, sy1 = min(x + w, tx + src.shape[1]), min(y + h, ty + src.shape[0])
        dst[sy0 - y : sy1 - y, sx0 - x : sx1 - x] = src[sy0 - ty : sy1 - ty, sx0 - tx : sx1 - tx]
        covered += (sx1 - sx0) * (sy1 - sy0)
    if covered < w * h:  # outside the level (or a cropped edge tile): white
        mask = np.ones((h, w), bool)
        for tx, ty, src in placed:
            mask[max(ty - y, 0) : max(min(ty + src.shape[0] - y, h), 0),
                 max(tx - x, 0) : max(min(tx + src.shape[1] - x, w), 0)] = False
        dst[mask] = 255
