"""Exact overlap of regions with a tile grid, and per-tile label overrides.

The area of a polygon inside an axis-aligned square comes from Green's theorem: the area inside the quadrant
{x <= a, y <= b} is the boundary integral of [y <= b] * min(x, a) dy, which is exact per edge (min(x, a) is
piecewise linear along an edge), and a square is four quadrants. This is the exact clipped area (no sampling), in
closed form for every edge x tile at once.

Overrides: one int per tile. `NONE` (-1) keeps the zero-shot pseudo-label, `IGNORE` (-2) drops the tile from
training, prediction and the vote, and c >= 0 is a hard model class (0 = Normal, k = subtype k, 1-based).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .geometry import Geometry, ring_area

NONE = -1
IGNORE = -2
COVER_THRESHOLD = 0.5
_BLOCK = 1 << 21  # edges x tiles per block


def _quadrant_area(ring: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed integral of [y <= b] min(x, a) dy over the ring's edges, for each (a, b) ([T])."""
    p0, p1 = ring, np.roll(ring, -1, axis=0)
    x0, y0, x1, y1 = p0[:, 0:1], p0[:, 1:2], p1[:, 0:1], p1[:, 1:2]
    dy = y1 - y0
    slope = np.divide(x1 - x0, dy, out=np.zeros_like(dy), where=dy != 0)
    lo = np.minimum(y0, y1)
    hi = np.maximum(np.minimum(np.maximum(y0, y1), b[None, :]), lo)
    h = hi - lo
    xl = x0 + (lo - y0) * slope
    xh = x0 + (hi - y0) * slope
    aa = a[None, :]
    ml, mh = np.minimum(xl, aa), np.minimum(xh, aa)
    cross = (xl - aa) * (xh - aa) < 0
    t = np.divide(aa - xl, xh - xl, out=np.zeros_like(h), where=cross)
    part = np.where(cross, t * (ml + aa) / 2 + (1 - t) * (aa + mh) / 2, (ml + mh) / 2)
    return (np.sign(dy) * h * part).sum(axis=0)


def _ring_in_squares(ring: np.ndarray, x0: np.ndarray, y0: np.ndarray, size: float) -> np.ndarray:
    """Unsigned area of the ring's interior inside each square [x0, x0+size) x [y0, y0+size)."""
    sign = 1.0 if ring_area(ring) > 0 else -1.0
    out = np.empty(len(x0))
    step = max(1, _BLOCK // max(len(ring), 1))
    for s in range(0, len(x0), step):
        xa, ya = x0[s:s + step], y0[s:s + step]
        xb, yb = xa + size, ya + size
        out[s:s + step] = (_quadrant_area(ring, xb, yb) - _quadrant_area(ring, xa, yb)
                           - _quadrant_area(ring, xb, ya) + _quadrant_area(ring, xa, ya))
    return np.clip(sign * out, 0.0, size * size)


def tile_coverage(geom: Geometry, coords: np.ndarray, tile_size: float) -> np.ndarray:
    """Fraction (0..1) of each tile's square covered by the region.

    Args:
        geom: a valid region (level-0 pixels).
        coords: [N, 2] tile top-left corners (level 0).
        tile_size: tile edge at level 0.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    frac = np.zeros(len(coords))
    if not len(coords):
        return frac
    bx0, by0, bx1, by1 = geom.bounds()
    near = np.flatnonzero((coords[:, 0] < bx1) & (coords[:, 0] + tile_size > bx0)
                          & (coords[:, 1] < by1) & (coords[:, 1] + tile_size > by0))
    if not len(near):
        return frac
    origin = np.array([bx0, by0])  # work near the origin: small numbers, no cancellation
    local = coords[near] - origin
    area = np.zeros(len(near))
    for part in geom.parts:
        area += _ring_in_squares(part.shell - origin, local[:, 0], local[:, 1], tile_size)
        for hole in part.holes:
            area -= _ring_in_squares(hole - origin, local[:, 0], local[:, 1], tile_size)
    frac[near] = np.clip(area / (tile_size * tile_size), 0.0, 1.0)
    return frac


def tile_overrides(coords: np.ndarray, tile_size: float, regions: Sequence[tuple[int, Geometry]],
                   corrections: Mapping[tuple[int, int], int] | None = None,
                   threshold: float = COVER_THRESHOLD) -> np.ndarray:
    """Per-tile override (int64 [N]) from class regions and direct tile corrections.

    Args:
        coords: [N, 2] tile top-left corners (level 0).
        tile_size: tile edge at level 0.
        regions: (class, geometry) pairs; class is a model class index >= 0 or `IGNORE`.
        corrections: (x, y) tile corner -> class or `IGNORE` (a tile's own correction wins over any region).
        threshold: a region covers a tile when it overlaps at least this fraction of the tile.

    Rule: an `ignore` region covering a tile wins over class regions (artefacts are never trained on); among
    class regions the one covering most of the tile wins (ties: the later region).
    """
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    out = np.full(len(coords), NONE, dtype=np.int64)
    best = np.zeros(len(coords))
    ignored = np.zeros(len(coords), dtype=bool)
    for cls, geom in regions:
        frac = tile_coverage(geom, coords, tile_size)
        hit = frac >= threshold
        if cls == IGNORE:
            ignored |= hit
            continue
        take = hit & (frac >= best)
        out[take], best[take] = int(cls), frac[take]
    out[ignored] = IGNORE
    if corrections:
        index = {(int(x), int(y)): i for i, (x, y) in enumerate(coords)}
        for (x, y), cls in corrections.items():
            i = index.get((int(x), int(y)))
            if i is not None:
                out[i] = int(cls)
    return out


def tile_counts(geom: Geometry, coords: np.ndarray, tile_size: float, threshold: float = COVER_THRESHOLD) -> int:
    """How many tiles the region covers (overlap >= threshold)."""
    return int((tile_coverage(geom, coords, tile_size) >= threshold).sum())
