"""Tile grid at a target resolution over the tissue of a slide.

Tiles are squares of `tile_size` pixels at `target_mpp` µm/px. Each is read at the best pyramid level (the
coarsest level that is not coarser than the target, within 1%) as `read_size` pixels and resized to `tile_size`
when the level is not at the target; a level within 1% of the target is used as is (no resizing). Coordinates are level-0 top-left (x, y), raster-sorted (y, then x),
as CLAM/TRIDENT store them. Only whole tiles inside the slide are made, and only those whose tissue fraction (from
the tissue mask) is at least `min_tissue`.

Slides without a resolution: the grid needs µm/px to know how big a tile is. We do not guess silently:
`GridParams.assume_mpp` (CLI `--assume-mpp`) supplies it, and the grid records `mpp_source="assumed"`;
without it such a slide raises SlideError naming the flag. (0.5 µm/px is a typical 20x scan; 0.25 µm/px 40x.)
A stated value outside the plausible 0.05-20 µm/px (e.g. a 72-dpi default: 352.78 µm/px) counts as unknown: the
error names the file and the value, and `assume_mpp` overrides it.

Upsampling: a tile read at fewer pixels than it is handed on (`TileGrid.upsample` > 1) is blurred; more than
`MAX_SILENT_UPSAMPLE` (2x) is logged as a warning and reported by the tiling job.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from ..errors import SlideError
from .base import SlideReader
from .reader import MPP_PLAUSIBLE
from .tissue import TissueMask

logger = logging.getLogger(__name__)

LEVEL_TOLERANCE = 0.01  # a level up to 1% coarser than the target still counts as "at the target"
MAX_SILENT_UPSAMPLE = 2.0  # tiles upsampled more than this are reported


@dataclass(frozen=True)
class GridParams:
    """Tile grid settings.

    Attributes:
        target_mpp: µm per pixel of the tiles handed to the backbone.
        tile_size: tile edge in pixels at `target_mpp`.
        min_tissue: keep tiles whose tissue fraction is at least this (0 keeps every tile).
        assume_mpp: level-0 µm/px to use for slides that do not state one (None: such slides are an error).
    """

    target_mpp: float = 0.5
    tile_size: int = 224
    min_tissue: float = 0.5
    assume_mpp: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.target_mpp) and self.target_mpp > 0):
            raise ValueError(f"target_mpp must be > 0, got {self.target_mpp}")
        if self.tile_size < 8:
            raise ValueError(f"tile_size must be >= 8, got {self.tile_size}")
        if not 0 <= self.min_tissue <= 1:
            raise ValueError(f"min_tissue must be in [0, 1], got {self.min_tissue}")
        if self.assume_mpp is not None and not (math.isfinite(self.assume_mpp) and self.assume_mpp > 0):
            raise ValueError(f"assume_mpp must be > 0, got {self.assume_mpp}")


@dataclass(frozen=True)
class TileGrid:
    """Tiles of one slide.

    Attributes:
        coords: (N, 2) int64 level-0 top-left (x, y), raster order.
        tissue: (N,) float32 tissue fraction of each tile.
        params: the settings that made the grid.
        slide_mpp: level-0 µm/px used (from the slide, or assumed).
        mpp_source: "slide" or "assumed".
        level: pyramid level the tiles are read from.
        level_downsample: that level's downsample.
        read_size: tile edge in pixels at `level` (resized to `params.tile_size` if different).
        size_level0: tile edge in level-0 pixels (also the grid stride).
        slide_dimensions: level-0 (width, height).
        level_dimensions: (width, height) of `level`.
    """

    coords: np.ndarray
    tissue: np.ndarray
    params: GridParams
    slide_mpp: float
    mpp_source: str
    level: int
    level_downsample: float
    read_size: int
    size_level0: int
    slide_dimensions: tuple[int, int]
    level_dimensions: tuple[int, int]

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def tile_size(self) -> int:
        return self.params.tile_size

    @property
    def upsample(self) -> float:
        """How much each tile is enlarged from the pixels read (1.0: none; < 1: reduced)."""
        return self.params.tile_size / self.read_size

    def upsample_note(self) -> str:
        """A one-line warning when tiles are upsampled more than `MAX_SILENT_UPSAMPLE`, else ""."""
        if self.upsample <= MAX_SILENT_UPSAMPLE:
            return ""
        return (f"tiles upsampled {self.upsample:.1f}x ({self.read_size}px -> {self.tile_size}px): the slide "
                f"({self.slide_mpp:.4g} µm/px, {self.mpp_source}) is coarser than the target "
                f"{self.params.target_mpp:g} µm/px")


def size_pair(size: tuple[int, ...] | list[int]) -> tuple[int, int]:
    """(width, height) as two ints, from a reader's dimensions (a tuple or, from some readers, a list)."""
    return int(size[0]), int(size[1])


def slide_mpp(reader: SlideReader, assume_mpp: float | None) -> tuple[float, str]:
    """The level-0 µm/px to tile with and where it came from ("slide" or "assumed")."""
    mpp = reader.mpp
    if mpp is not None:
        mx, my = mpp
        if abs(mx - my) > 0.01 * mx:
            logger.warning("%s: non-square pixels (%.4f x %.4f µm); tiling with the x resolution", reader.path, mx, my)
        return float(mx), "slide"
    reported = getattr(reader, "reported_mpp", None)
    if assume_mpp is None:
        if reported is not None:
            raise SlideError(f"{reader.path}: pixel size {reported[0]:.4g} µm/px is implausible (outside "
                             f"{MPP_PLAUSIBLE[0]:g}-{MPP_PLAUSIBLE[1]:g} µm/px, e.g. a 72-dpi default); pass "
                             "--assume-mpp with the real level-0 µm/px (0.5 for a 20x scan, 0.25 for 40x)")
        raise SlideError(f"{reader.path}: the slide does not state its resolution (µm/px); "
                         "pass --assume-mpp (e.g. 0.5 for a 20x scan, 0.25 for 40x)")
    logger.warning("%s: %s; assuming %.4f µm/px", reader.path,
                   "no resolution in the file" if reported is None else f"implausible {reported[0]:.4g} µm/px in the file",
                   assume_mpp)
    return float(assume_mpp), "assumed"


def choose_level(downsamples: tuple[float, ...], target_downsample: float) -> int:
    """The coarsest level whose downsample is at most the target (with LEVEL_TOLERANCE)."""
    best = 0
    for i, ds in enumerate(downsamples):
        if ds <= target_downsample * (1 + LEVEL_TOLERANCE):
            best = i
    return best


def make_grid(reader: SlideReader, mask: TissueMask, params: GridParams = GridParams()) -> TileGrid:
    """Tiles over the tissue of `reader`'s slide (see the module docstring for the rules)."""
    mpp, source = slide_mpp(reader, params.assume_mpp)
    target_ds = params.target_mpp / mpp
    level = choose_level(reader.level_downsamples, target_ds)
    level_ds = reader.level_downsamples[level]
    if abs(level_ds - target_ds) <= target_ds * LEVEL_TOLERANCE:  # the level is at the target: no resizing
        read_size, size0 = params.tile_size, max(1, round(params.tile_size * level_ds))
    else:
        size0 = max(1, round(params.tile_size * target_ds))
        read_size = max(1, round(size0 / level_ds))
    width, height = reader.dimensions
    xs = np.arange(0, width - size0 + 1, size0, dtype=np.int64)
    ys = np.arange(0, height - size0 + 1, size0, dtype=np.int64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    coords = np.stack([gx.ravel(), gy.ravel()], axis=1)
    fraction = tissue_fractions(mask, coords, size0)
    keep = fraction >= params.min_tissue if params.min_tissue > 0 else np.ones(len(coords), bool)
    grid = TileGrid(coords=coords[keep], tissue=fraction[keep], params=params, slide_mpp=mpp, mpp_source=source,
                    level=level, level_downsample=float(level_ds), read_size=read_size, size_level0=size0,
                    slide_dimensions=(width, height), level_dimensions=size_pair(reader.level_dimensions[level]))
    if note := grid.upsample_note():
        logger.warning("%s: %s", reader.path, note)
    if len(grid) == 0:
        logger.warning("%s: no tiles with at least %.0f%% tissue (tissue covers %.1f%% of the slide)",
                       reader.path, 100 * params.min_tissue, 100 * mask.fraction)
    return grid


def tissue_fractions(mask: TissueMask, coords: np.ndarray, size0: int) -> np.ndarray:
    """Fraction of mask pixels set inside each level-0 square (x, y, size0), via a summed-area table."""
    if len(coords) == 0:
        return np.zeros(0, np.float32)
    m = mask.mask
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(m, axis=0, dtype=np.int64), axis=1)
    sx, sy = mask.downsample
    x0 = np.clip(np.floor(coords[:, 0] / sx + 0.5).astype(np.int64), 0, m.shape[1] - 1)
    y0 = np.clip(np.floor(coords[:, 1] / sy + 0.5).astype(np.int64), 0, m.shape[0] - 1)
    x1 = np.clip(np.floor((coords[:, 0] + size0) / sx + 0.5).astype(np.int64), x0 + 1, m.shape[1])
    y1 = np.clip(np.floor((coords[:, 1] + size0) / sy + 0.5).astype(np.int64), y0 + 1, m.shape[0])
    inside = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
    return (inside / ((x1 - x0) * (y1 - y0))).astype(np.float32)
