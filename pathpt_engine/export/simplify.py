"""Simplify traced tile outlines (Douglas-Peucker) without breaking them: a polygon whose simplified rings would
cross, fall below three vertices or leave its shell keeps its exact outline (checked by
`annotations.geometry.validate`, the same check the importer applies).
"""

from __future__ import annotations

import numpy as np

from ..annotations.geometry import Geometry, InvalidRegion, Part, validate
from .polygons import Polygon, Ring


def _dp(points: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker keep-mask of an open polyline (first and last kept), iterative."""
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b <= a + 1:
            continue
        seg = points[b] - points[a]
        rel = points[a + 1:b] - points[a]
        norm = float(np.hypot(*seg))
        dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm if norm else np.hypot(rel[:, 0], rel[:, 1])
        i = int(np.argmax(dist))
        if dist[i] > tol:
            keep[a + 1 + i] = True
            stack += [(a, a + 1 + i), (a + 1 + i, b)]
    return keep


def simplify_ring(ring: Ring, tol: float) -> Ring:
    """A closed ring with vertices farther than `tol` from the simplified outline kept (split at its far point)."""
    pts = np.asarray(ring, dtype=np.float64)[:-1]
    if len(pts) <= 4 or tol <= 0:
        return ring
    far = int(np.argmax(np.hypot(*(pts - pts[0]).T)))
    keep = np.concatenate([_dp(pts[:far + 1], tol)[:-1], _dp(np.vstack([pts[far:], pts[:1]]), tol)[:-1]])
    out = pts[keep].tolist()
    return [*out, out[0]] if len(out) >= 3 else ring


def simplify_polygons(polygons: list[Polygon], tol: float) -> list[Polygon]:
    """Each polygon's rings simplified by `tol` (level-0 px); a polygon that would become invalid is kept as is."""
    if tol <= 0:
        return polygons
    out = []
    for poly in polygons:
        simple = [simplify_ring(r, tol) for r in poly]
        try:
            validate(Geometry((Part(np.asarray(simple[0][:-1]), tuple(np.asarray(h[:-1]) for h in simple[1:])),)))
        except (InvalidRegion, ValueError):
            simple = poly
        out.append(simple)
    return out
