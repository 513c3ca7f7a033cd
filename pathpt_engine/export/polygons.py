"""Outline of a set of square tiles as polygons with holes (no shapely needed).

Tiles are rasterised onto a grid whose cell is the gcd of the tile size and the tile offsets (exact for tiles on
a regular grid, overlapping or not; tiles off any grid finer than tile/16 are snapped to tile/16 cells). The
boundary edges of every 4-connected component are then chained into closed rings. Outer rings have positive
shoelace area (counter-clockwise by the GeoJSON right-hand rule, reading coordinates as they are); holes negative.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np
from scipy import ndimage

Ring = list[list[float]]
Polygon = list[Ring]

_MAX_SUBDIV = 16


def ring_area(ring: Ring) -> float:
    """Signed shoelace area of a closed ring (positive = counter-clockwise in x-right, y-up reading)."""
    a = np.asarray(ring, dtype=np.float64)
    return float(0.5 * np.sum(a[:-1, 0] * a[1:, 1] - a[1:, 0] * a[:-1, 1]))


def tile_square(x: float, y: float, size: float) -> Ring:
    """Closed counter-clockwise ring of one tile square (level-0 pixels)."""
    return [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]


def _grid(coords: np.ndarray, tile: int) -> tuple[int, int, int]:
    x0, y0 = (int(v) for v in coords.min(axis=0))
    offsets = np.unique(np.concatenate([coords[:, 0] - x0, coords[:, 1] - y0]))
    g = reduce(math.gcd, (int(v) for v in offsets), int(tile))
    return max(g, math.ceil(tile / _MAX_SUBDIV)), x0, y0


def tile_union(coords: np.ndarray, tile: int) -> list[Polygon]:
    """Union of the squares [x, x+tile) x [y, y+tile) as polygons `[outer, *holes]` of closed rings."""
    coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
    if len(coords) == 0:
        return []
    g, x0, y0 = _grid(coords, tile)
    c0 = (coords - [x0, y0]) // g
    c1 = -((-(coords + tile - [x0, y0])) // g)  # ceil
    mask = np.zeros((int(c1[:, 1].max()), int(c1[:, 0].max())), dtype=bool)
    for (a, b), (c, d) in zip(c0, c1, strict=True):
        mask[b:d, a:c] = True
    labels, _ = ndimage.label(mask)
    polygons = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        sub = labels[sl] == k
        rings = [[[x0 + (sl[1].start + j) * g, y0 + (sl[0].start + i) * g] for j, i in r] for r in _trace(sub)]
        rings.sort(key=ring_area, reverse=True)
        polygons.append(rings)
    return polygons


def _edges(mask: np.ndarray) -> dict[tuple[int, int], list[tuple[int, int]]]:
    """Directed boundary edges, vertex (col, row) -> ends; interior on the right when walking (y down)."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1]
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    sides = (
        (m[:-2, 1:-1], (0, 0), (1, 0)),   # top: left -> right
        (m[1:-1, 2:], (1, 0), (1, 1)),    # right: down
        (m[2:, 1:-1], (1, 1), (0, 1)),    # bottom: right -> left
        (m[1:-1, :-2], (0, 1), (0, 0)),   # left: up
    )
    for neighbour, start, end in sides:
        rows, cols = np.nonzero(inner & ~neighbour)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            out.setdefault((j + start[0], i + start[1]), []).append((j + end[0], i + end[1]))
    return out


def _trace(mask: np.ndarray) -> list[list[tuple[int, int]]]:
    """Closed rings (first vertex repeated) of a 4-connected component, collinear vertices removed."""
    edges = _edges(mask)
    rings = []
    while edges:
        start = next(iter(edges))
        ring = [start]
        prev, cur = start, _pop(edges, start, None)
        while cur != start:
            ring.append(cur)
            d = (cur[0] - prev[0], cur[1] - prev[1])
            prev, cur = cur, _pop(edges, cur, d)
        ring.append(start)
        rings.append(_simplify(ring))
    return rings


def _pop(edges: dict[tuple[int, int], list[tuple[int, int]]], v: tuple[int, int],
         d: tuple[int, int] | None) -> tuple[int, int]:
    ends = edges[v]
    choice = 0
    if d is not None and len(ends) > 1:
        # Pinch vertex: both diagonal cells belong to this 4-connected component, so turning left joins them and
        # every ring stays simple (holes may touch the shell at a point, which is valid OGC/GeoJSON).
        left = (v[0] + d[1], v[1] - d[0])
        choice = ends.index(left) if left in ends else 0
    end = ends.pop(choice)
    if not ends:
        del edges[v]
    return end


def _simplify(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    pts = ring[:-1]
    keep = []
    n = len(pts)
    for i in range(n):
        a, b, c = pts[i - 1], pts[i], pts[(i + 1) % n]
        if (b[0] - a[0]) * (c[1] - b[1]) - (b[1] - a[1]) * (c[0] - b[0]) != 0:
            keep.append(b)
    return [*keep, keep[0]]
