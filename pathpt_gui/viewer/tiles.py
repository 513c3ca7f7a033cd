"""Tile addressing and request planning: which tiles, at which pyramid level, in which order.

Tiles live on each level's own grid: the file's native tile grid when the reader serves native tiles (the fast
path), else a fixed 512-pixel grid read with `read_region`. Planning is pure and Qt-free: a frozen `ViewState`
goes in, an ordered tuple of `TileKey` comes out (coarse level first, then the target level from the viewport
centre outwards, then a one-tile prefetch ring just outside the view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from pathpt_engine.slides.base import SlideReader

from .model import ViewState

DEFAULT_TILE = 512
LEVEL_TOLERANCE = 1.05  # accept a level up to 5 % coarser than the view asks for (avoids needless level 0)


class TileKey(NamedTuple):
    """One tile: pyramid level and column/row on that level's tile grid."""

    level: int
    col: int
    row: int


@dataclass(frozen=True)
class LevelInfo:
    """Geometry of one pyramid level."""

    size: tuple[int, int]
    downsample: tuple[float, float]  # level-0 pixels per level pixel, per axis
    tile: tuple[int, int]
    native: bool  # True when tiles come from the reader's native-tile fast path

    @property
    def grid(self) -> tuple[int, int]:
        return (math.ceil(self.size[0] / self.tile[0]), math.ceil(self.size[1] / self.tile[1]))


class TileLayout:
    """The tile grids of every level of one slide."""

    def __init__(self, levels: list[LevelInfo]) -> None:
        if not levels:
            raise ValueError("a slide needs at least one level")
        self.levels = levels

    @classmethod
    def from_reader(cls, reader: SlideReader, default_tile: int = DEFAULT_TILE) -> TileLayout:
        """Build from a SlideReader's metadata (no pixel reads)."""
        w0, h0 = reader.dimensions  # type: ignore[attr-defined]
        levels = []
        for i, (w, h) in enumerate(reader.level_dimensions):  # type: ignore[attr-defined]
            native = reader.native_tile_size(i)  # type: ignore[attr-defined]
            tile = (int(native[0]), int(native[1])) if native else (default_tile, default_tile)
            levels.append(LevelInfo((int(w), int(h)), (w0 / w, h0 / h), tile, native is not None))
        return cls(levels)

    @property
    def coarsest(self) -> int:
        return len(self.levels) - 1

    def level_for_scale(self, scale: float) -> int:
        """The coarsest level that still has at least one level pixel per screen pixel (within 5 %)."""
        want = 1.0 / scale
        best = 0
        for i, info in enumerate(self.levels):
            if max(info.downsample) <= want * LEVEL_TOLERANCE:
                best = i
        return best

    def tile_rect(self, key: TileKey) -> tuple[float, float, float, float]:
        """(x, y, w, h) of a tile in level-0 pixels (cropped at the slide edge)."""
        info = self.levels[key.level]
        x, y = key.col * info.tile[0], key.row * info.tile[1]
        w = min(info.tile[0], info.size[0] - x)
        h = min(info.tile[1], info.size[1] - y)
        dx, dy = info.downsample
        return (x * dx, y * dy, w * dx, h * dy)

    def tile_pixel_size(self, key: TileKey) -> tuple[int, int]:
        """(w, h) of a tile in its own level's pixels (cropped at the edge)."""
        info = self.levels[key.level]
        x, y = key.col * info.tile[0], key.row * info.tile[1]
        return (min(info.tile[0], info.size[0] - x), min(info.tile[1], info.size[1] - y))

    def tile_range(self, level: int, rect: tuple[float, float, float, float],
                   ring: int = 0) -> tuple[int, int, int, int]:
        """Column/row bounds (c0, r0, c1, r1), exclusive ends, of tiles touching a level-0 rect, grown by `ring`."""
        info = self.levels[level]
        tw, th = info.tile[0] * info.downsample[0], info.tile[1] * info.downsample[1]
        cols, rows = info.grid
        c0 = max(0, math.floor(rect[0] / tw) - ring)
        r0 = max(0, math.floor(rect[1] / th) - ring)
        c1 = min(cols, math.ceil(rect[2] / tw) + ring)
        r1 = min(rows, math.ceil(rect[3] / th) + ring)
        return c0, r0, max(c0, c1), max(r0, r1)

    def tiles_in(self, level: int, rect: tuple[float, float, float, float], ring: int = 0) -> list[TileKey]:
        c0, r0, c1, r1 = self.tile_range(level, rect, ring)
        return [TileKey(level, c, r) for r in range(r0, r1) for c in range(c0, c1)]

    def _by_distance(self, keys: list[TileKey], center: tuple[float, float]) -> list[TileKey]:
        def dist(k: TileKey) -> float:
            x, y, w, h = self.tile_rect(k)
            return (x + w / 2 - center[0]) ** 2 + (y + h / 2 - center[1]) ** 2
        return sorted(keys, key=dist)

    def visible_tiles(self, state: ViewState, level: int | None = None) -> list[TileKey]:
        """Tiles of `level` (default: the view's level) that intersect the view, nearest the centre first."""
        level = self.level_for_scale(state.scale) if level is None else level
        return self._by_distance(self.tiles_in(level, state.visible_rect()), state.center)

    def plan(self, state: ViewState, prefetch: bool = True, coarse_step: int = 2) -> tuple[TileKey, ...]:
        """Ordered tile requests for a view: a coarser level first, the target level, then the prefetch ring.

        The coarsest level is never requested here: it is the pinned backdrop.
        """
        target = self.level_for_scale(state.scale)
        rect = state.visible_rect()
        out: list[TileKey] = []
        coarse = target + coarse_step
        if coarse_step > 0 and coarse < self.coarsest:
            out += self._by_distance(self.tiles_in(coarse, rect), state.center)
        visible = self._by_distance(self.tiles_in(target, rect), state.center)
        out += visible
        if prefetch:
            seen = set(visible)
            ring = [k for k in self.tiles_in(target, rect, ring=1) if k not in seen]
            out += self._by_distance(ring, state.center)
        return tuple(out)
