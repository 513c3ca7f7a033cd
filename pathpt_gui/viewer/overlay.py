"""Heatmap overlay state and colouring (Qt-free): one low-resolution grid per slide, one cell per tile.

The engine hands plain arrays in level-0 coordinates (`coords` [N, 2] top-left, a tile size, and either scalar
`values` [N], class `probs` [N, C] or direct `rgba` [N, 4]); this module rasterises them into a small grid and
colours it with a 256-entry lookup table. The widget scales that one small image in slide coordinates, so
changing opacity or colormap never touches slide tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from pathpt_engine.colors import class_rgb
from pathpt_engine.export.raster import tile_index_grid
from pathpt_engine.slides.tissue import fill_small_holes

from .signals import Signal

MODES = ("scalar", "classmap", "rgba")
OUTLINE_COLOR = (255, 255, 0)  # the ground-truth outline: pure yellow, unlike every class colour
MIN_OUTLINE_HOLE = 512.0 ** 2  # level-0 px²: holes in a tumour mask smaller than ~5 tiles of 224 px are not drawn


@lru_cache(maxsize=64)
def lookup_table(name: str) -> np.ndarray:
    """A (256, 4) uint8 RGBA table sampled from a matplotlib colormap; ValueError for unknown names."""
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r}; try viridis, magma, coolwarm, jet or RdYlBu_r") from None
    lut = (cmap(np.linspace(0.0, 1.0, 256)) * 255.0 + 0.5).astype(np.uint8)
    lut.setflags(write=False)
    return lut


@dataclass(frozen=True)
class HeatmapGrid:
    """Tile data rasterised to a grid: cell (r, c) covers level-0 [origin + (c, r) * cell, + cell)."""

    origin: tuple[int, int]
    cell: int
    index: np.ndarray  # int32 (rows, cols): row into the data arrays, -1 where no tile
    mode: str
    values: np.ndarray | None = None  # float32 [N] (scalar mode)
    probs: np.ndarray | None = None  # float32 [N, C] (classmap mode)
    rgba: np.ndarray | None = None  # uint8 [N, 4] (rgba mode)

    @property
    def shape(self) -> tuple[int, int]:
        return self.index.shape  # type: ignore[return-value]

    @classmethod
    def build(cls, coords: np.ndarray, tile_size: int, mode: str, data: np.ndarray) -> HeatmapGrid:
        origin, index = tile_index_grid(coords, tile_size)  # validates coords and tile_size
        if len(data) != len(coords):
            raise ValueError(f"{len(data)} values for {len(coords)} coords")
        kw = {"values": np.asarray(data, np.float32)} if mode == "scalar" else (
            {"probs": np.asarray(data, np.float32)} if mode == "classmap" else {"rgba": np.asarray(data, np.uint8)})
        return cls(origin, int(tile_size), index, mode, **kw)


class TileLookup:
    """The tile covering a level-0 point in O(1): a grid index over tiles on one lattice, checked against the
    tile's own box; coords off the lattice (overlapping tiles) fall back to a scan of all tiles."""

    def __init__(self, coords: np.ndarray, tile_size: int) -> None:
        self.coords, self.tile = np.asarray(coords, np.int64), int(tile_size)
        self._grid: tuple[tuple[int, int], np.ndarray] | None = None
        if len(self.coords) and self.tile > 0:
            origin, index = tile_index_grid(self.coords, self.tile)
            if not ((self.coords - np.array(origin)) % self.tile).any():
                self._grid = origin, index

    def at(self, x: float, y: float) -> int | None:
        c, t = self.coords, self.tile
        if self._grid is None:
            hit = np.flatnonzero((c[:, 0] <= x) & (x < c[:, 0] + t) & (c[:, 1] <= y) & (y < c[:, 1] + t))
            return int(hit[0]) if hit.size else None
        (ox, oy), index = self._grid
        col, row = int((x - ox) // t), int((y - oy) // t)
        if not (0 <= row < index.shape[0] and 0 <= col < index.shape[1]):
            return None
        i = int(index[row, col])
        return i if i >= 0 else None


@dataclass(frozen=True)
class Outline:
    """A ground-truth outline: boundary segments of a binary mask, in level-0 pixels.

    `segments` is float32 [M, 4] (x0, y0, x1, y1): every edge between a mask pixel and a non-mask pixel, runs of
    collinear edges merged into one segment.
    """

    segments: np.ndarray
    label: str
    source: str = ""

    @classmethod
    def from_mask(cls, mask: np.ndarray, downsample: float, label: str = "ground truth",
                  source: str = "", min_hole: float = 0.0) -> Outline:
        """`min_hole`: holes in the mask smaller than this many level-0 px² are filled first (the stroma gaps
        inside a tumour would otherwise draw as a spray of small rings over the class map)."""
        mask = np.asarray(mask, bool)
        if min_hole > 0:
            mask = fill_small_holes(mask, min_hole / float(downsample) ** 2)
        m = np.pad(mask, 1)
        segs = [_runs(m[1:, 1:-1] != m[:-1, 1:-1], horizontal=True),
                _runs(m[1:-1, 1:] != m[1:-1, :-1], horizontal=False)]
        out = np.concatenate(segs).astype(np.float32) * np.float32(downsample)
        return cls(out.reshape(-1, 4), label, source)


def _runs(edge: np.ndarray, horizontal: bool) -> np.ndarray:
    """Merged boundary segments (mask-pixel units) from an edge map.

    Horizontal: edge[r, c] is the edge at y = r between columns c..c+1. Vertical: edge[r, c] is the edge at x = c
    between rows r..r+1.
    """
    e = edge if horizontal else edge.T
    padded = np.pad(e, ((0, 0), (1, 1))).astype(np.int8)
    d = np.diff(padded, axis=1)
    r0, c0 = np.nonzero(d == 1)
    r1, c1 = np.nonzero(d == -1)
    if horizontal:
        return np.stack([c0, r0, c1, r1], axis=1)
    return np.stack([r0, c0, r1, c1], axis=1)


def find_ground_truth(slide_path: str | object) -> tuple[object, float] | None:
    """A synthetic cohort's tumour mask for a slide: `<slide folder>/../masks/<stem>_tumour_ds<D>.png`."""
    import re
    from pathlib import Path

    p = Path(str(slide_path))
    masks = p.parent.parent / "masks"
    if not masks.is_dir():
        return None
    for f in sorted(masks.glob(f"{p.stem}_tumour_ds*.png")):
        m = re.fullmatch(re.escape(p.stem) + r"_tumour_ds(\d+(?:\.\d+)?)", f.stem)
        if m:
            return f, float(m.group(1))
    return None


class OverlayModel:
    """Heatmap data plus display settings and an optional ground-truth outline; emits `changed(kind)` with kind
    in {"data", "colors", "opacity", "smoothing", "visible", "outline"}."""

    def __init__(self) -> None:
        self.changed = Signal()
        self.grid: HeatmapGrid | None = None
        self.class_names: tuple[str, ...] = ()
        self.class_colors: tuple[tuple[int, int, int], ...] = ()
        self.label = ""
        self._cmap = "viridis"
        self._opacity = 0.45
        self._smooth = False
        self._visible = True
        self._range: tuple[float, float] = (0.0, 1.0)
        self.outline: Outline | None = None
        self._show_outline = True

    # ground truth -------------------------------------------------------------------------------------
    def set_outline(self, outline: Outline | None) -> None:
        self.outline = outline
        self.changed.emit("outline")

    def load_ground_truth(self, slide_path: str | object) -> bool:
        """Outline the tumour mask of a synthetic cohort's slide when one exists next to it; True if shown.
        An unreadable mask is skipped (logged), never an error for the viewer."""
        import logging

        found = find_ground_truth(slide_path)
        if found is None:
            return False
        path, ds = found
        try:
            from PIL import Image

            mask = np.asarray(Image.open(path).convert("L")) > 127  # type: ignore[arg-type]
        except OSError as exc:
            logging.getLogger(__name__).warning("ground truth %s not shown: %s", path, exc)
            return False
        self.set_outline(Outline.from_mask(mask, ds, "ground truth (tumour mask)", str(path), min_hole=MIN_OUTLINE_HOLE))
        return True

    @property
    def show_outline(self) -> bool:
        return self._show_outline

    @show_outline.setter
    def show_outline(self, value: bool) -> None:
        if bool(value) != self._show_outline:
            self._show_outline = bool(value)
            self.changed.emit("outline")

    # data ----------------------------------------------------------------------------------------------
    def set_values(self, coords: np.ndarray, tile_size: int, values: np.ndarray, label: str = "",
                   vrange: tuple[float, float] | None = None) -> None:
        """Scalar heatmap: one value per tile, coloured through the colormap over `vrange` (default min..max)."""
        values = np.asarray(values, np.float32)
        if values.ndim != 1:
            raise ValueError(f"values must be [N], got {values.shape}")
        self.grid = HeatmapGrid.build(coords, tile_size, "scalar", values)
        finite = values[np.isfinite(values)]
        if vrange is None:
            vrange = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self._range = _check_range(vrange)
        self.label = label
        self.changed.emit("data")

    def set_class_probs(self, coords: np.ndarray, tile_size: int, probs: np.ndarray,
                        class_names: tuple[str, ...] | list[str],
                        class_colors: list[tuple[int, int, int]] | None = None) -> None:
        """Class map: each tile painted in the colour of its argmax class (default: the engine's palette,
        `pathpt_engine.colors`, class 0 Normal grey, as in every export)."""
        probs = np.asarray(probs, np.float32)
        if probs.ndim != 2 or probs.shape[1] != len(class_names):
            raise ValueError(f"probs must be [N, {len(class_names)}], got {probs.shape}")
        colors = list(class_colors) if class_colors is not None else class_rgb(list(class_names))
        if len(colors) != len(class_names):
            raise ValueError(f"{len(colors)} class colours for {len(class_names)} classes")
        self.grid = HeatmapGrid.build(coords, tile_size, "classmap", probs)
        self.class_names = tuple(class_names)
        self.class_colors = tuple(tuple(int(v) for v in c[:3]) for c in colors)  # type: ignore[misc]
        self.label = "class map"
        self.changed.emit("data")

    def set_rgba(self, coords: np.ndarray, tile_size: int, rgba: np.ndarray, label: str = "") -> None:
        """Direct colours, one RGBA uint8 per tile."""
        rgba = np.asarray(rgba)
        if rgba.ndim != 2 or rgba.shape[1] != 4:
            raise ValueError(f"rgba must be [N, 4] uint8, got {rgba.shape}")
        self.grid = HeatmapGrid.build(coords, tile_size, "rgba", rgba)
        self.label = label
        self.changed.emit("data")

    def set_tile_scores(self, scores: object, channel: int | str | None = None,
                        class_colors: list[tuple[int, int, int]] | None = None) -> None:
        """Show an engine `TileScores`: the argmax class map (channel None) or one class's probability."""
        names = tuple(scores.class_names)  # type: ignore[attr-defined]
        coords, tile = scores.coords, scores.tile_size_level0  # type: ignore[attr-defined]
        probs = np.asarray(scores.probs)  # type: ignore[attr-defined]
        if channel is None:
            self.set_class_probs(coords, tile, probs, names, class_colors)
            return
        if isinstance(channel, str):
            if channel not in names:
                raise ValueError(f"unknown class {channel!r}; classes are {list(names)}")
            channel = names.index(channel)
        if not 0 <= channel < len(names):
            raise ValueError(f"class index {channel} out of range 0..{len(names) - 1}")
        self.set_values(coords, tile, probs[:, channel], label=f"p({names[channel]})", vrange=(0.0, 1.0))

    def clear(self) -> None:
        self.grid = None
        self.changed.emit("data")

    # display settings ----------------------------------------------------------------------------------
    @property
    def colormap(self) -> str:
        return self._cmap

    @colormap.setter
    def colormap(self, name: str) -> None:
        lookup_table(name)  # validates
        if name != self._cmap:
            self._cmap = name
            self.changed.emit("colors")

    @property
    def value_range(self) -> tuple[float, float]:
        return self._range

    @value_range.setter
    def value_range(self, vrange: tuple[float, float]) -> None:
        vrange = _check_range(vrange)
        if vrange != self._range:
            self._range = vrange
            self.changed.emit("colors")

    @property
    def opacity(self) -> float:
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"opacity must be in [0, 1], got {value}")
        if value != self._opacity:
            self._opacity = float(value)
            self.changed.emit("opacity")

    @property
    def smooth(self) -> bool:
        return self._smooth

    @smooth.setter
    def smooth(self, value: bool) -> None:
        if bool(value) != self._smooth:
            self._smooth = bool(value)
            self.changed.emit("smoothing")

    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        if bool(value) != self._visible:
            self._visible = bool(value)
            self.changed.emit("visible")

    def colorize(self) -> np.ndarray | None:
        """The grid as (rows, cols, 4) uint8 RGBA (alpha 0 where no tile), or None without data."""
        g = self.grid
        if g is None:
            return None
        out = np.zeros(g.shape + (4,), np.uint8)
        have = g.index >= 0
        idx = g.index[have]
        if g.mode == "scalar":
            v = g.values[idx]  # type: ignore[index]
            lo, hi = self._range
            t = np.clip((v - lo) / (hi - lo), 0.0, 1.0)
            colors = lookup_table(self._cmap)[np.nan_to_num(t * 255.0 + 0.5).astype(np.intp)]
            colors[~np.isfinite(v)] = 0
            out[have] = colors
        elif g.mode == "classmap":
            table = np.array([(*c, 255) for c in self.class_colors], np.uint8)
            out[have] = table[np.argmax(g.probs[idx], axis=1)]  # type: ignore[index]
        else:
            out[have] = g.rgba[idx]  # type: ignore[index]
        return out


def _check_range(vrange: tuple[float, float]) -> tuple[float, float]:
    lo, hi = float(vrange[0]), float(vrange[1])
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise ValueError(f"value range must be finite, got {vrange}")
    if hi <= lo:
        hi = lo + 1e-6
    return (lo, hi)
