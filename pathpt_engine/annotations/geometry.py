"""Region geometry in level-0 pixels: polygons with holes, a validity check with safe repairs, area, hit tests.

A region is one or more parts (a GeoJSON Polygon or MultiPolygon); a part is a shell ring plus hole rings. Rings
are stored open (the closing vertex is not repeated) and in the order they were drawn or read: vertex order and
winding are never changed, so an exported region gives back every vertex it was given.

`validate` repairs only what cannot move the outline (a repeated closing vertex, consecutive duplicate vertices, a
zero-area hole) and refuses everything else with a one-line message: non-finite coordinates, fewer than three
distinct vertices, zero area, a ring crossing itself or another ring, a hole outside its shell, overlapping parts.
Touching at a single point is allowed (QuPath's brush outlines do that).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidRegion

__all__ = ["Geometry", "InvalidRegion", "Part", "area_mm2", "contains", "ellipse", "polygon", "rectangle", "validate"]

_CHUNK = 256  # edges per block in the pairwise crossing test


@dataclass(frozen=True, eq=False)
class Part:
    """One polygon: a shell and its holes, each an open [n, 2] float64 ring."""

    shell: np.ndarray
    holes: tuple[np.ndarray, ...] = ()

    @property
    def rings(self) -> tuple[np.ndarray, ...]:
        return (self.shell, *self.holes)


@dataclass(frozen=True, eq=False)
class Geometry:
    """A region's outline: one or more non-overlapping parts."""

    parts: tuple[Part, ...]

    def rings(self) -> Iterable[np.ndarray]:
        for p in self.parts:
            yield from p.rings

    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max)."""
        allv = np.concatenate([p.shell for p in self.parts])
        return float(allv[:, 0].min()), float(allv[:, 1].min()), float(allv[:, 0].max()), float(allv[:, 1].max())

    def area(self) -> float:
        """Area in level-0 pixels squared (shells minus holes)."""
        return sum(abs(ring_area(p.shell)) - sum(abs(ring_area(h)) for h in p.holes) for p in self.parts)

    def to_lists(self) -> list[list[list[list[float]]]]:
        """[[shell, *holes], ...] as plain lists of [x, y] (open rings), e.g. for JSON storage."""
        return [[r.tolist() for r in p.rings] for p in self.parts]

    @classmethod
    def from_lists(cls, parts: Sequence[Sequence[Sequence[Sequence[float]]]]) -> Geometry:
        """Inverse of `to_lists` (no validation: see `validate`)."""
        return cls(tuple(Part(_ring(p[0]), tuple(_ring(h) for h in p[1:])) for p in parts))

    def translated(self, dx: float, dy: float) -> Geometry:
        d = np.array([dx, dy], dtype=np.float64)
        return Geometry(tuple(Part(p.shell + d, tuple(h + d for h in p.holes)) for p in self.parts))

    def same_as(self, other: Geometry) -> bool:
        """Exactly the same vertices in the same order."""
        a, b = list(self.rings()), list(other.rings())
        return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _ring(points: Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(points, dtype=np.float64).reshape(-1, 2)


def ring_area(ring: np.ndarray) -> float:
    """Signed shoelace area of an open ring."""
    x, y = ring[:, 0], ring[:, 1]
    return float(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def rectangle(x0: float, y0: float, x1: float, y1: float) -> Geometry:
    """An axis-aligned rectangle from two corners."""
    xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    return Geometry((Part(_ring([[xa, ya], [xb, ya], [xb, yb], [xa, yb]])),))


def ellipse(x0: float, y0: float, x1: float, y1: float, n: int = 64) -> Geometry:
    """An ellipse inscribed in the box of two corners, as an `n`-gon."""
    cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    t = np.linspace(0.0, 2 * np.pi, n, endpoint=False)
    return Geometry((Part(np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)),))


def polygon(points: Sequence[Sequence[float]]) -> Geometry:
    """A single-ring polygon."""
    return Geometry((Part(_ring(points)),))


# ---- validity ----------------------------------------------------------------------------------------------
def validate(geom: Geometry, what: str = "region") -> tuple[Geometry, list[str]]:
    """A valid copy of `geom` and the repairs made (empty if none).

    Raises:
        InvalidRegion: the outline cannot be stored as it is (the message names `what` and the problem).
    """
    notes: list[str] = []
    parts = []
    if not geom.parts:
        raise InvalidRegion(f"{what}: no polygon")
    for i, part in enumerate(geom.parts):
        label = what if len(geom.parts) == 1 else f"{what} part {i + 1}"
        shell = _clean_ring(part.shell, f"{label} outline", notes)
        assert shell is not None  # noqa: S101  (without allow_empty an empty ring raises instead)
        holes = []
        for j, hole in enumerate(part.holes):
            h = _clean_ring(hole, f"{label} hole {j + 1}", notes, allow_empty=True)
            if h is None:
                notes.append(f"{label}: dropped hole {j + 1} (zero area)")
            else:
                holes.append(h)
        parts.append(Part(shell, tuple(holes)))
    out = Geometry(tuple(parts))
    _check_crossings(out, what)
    _check_nesting(out, what)
    return out, notes


def _clean_ring(ring: np.ndarray, label: str, notes: list[str], allow_empty: bool = False) -> np.ndarray | None:
    r = np.asarray(ring, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(r).all():
        raise InvalidRegion(f"{label}: coordinates must be finite numbers")
    if len(r) > 1 and np.array_equal(r[0], r[-1]):
        r = r[:-1]  # closed form (GeoJSON): the closing vertex is implied
    keep = np.any(r != np.roll(r, 1, axis=0), axis=1) if len(r) > 1 else np.ones(len(r), dtype=bool)
    if not keep.any():
        keep[0] = True
    if not keep.all():
        notes.append(f"{label}: removed {int((~keep).sum())} repeated vertex(es)")
        r = r[keep]
    extent = float(np.ptp(r, axis=0).max()) if len(r) else 0.0
    if len(r) < 3 or abs(ring_area(r)) <= 1e-12 * max(extent, 1.0) ** 2:
        if len(r) >= 3 and not _collinear(r) and (hit := _bad_pairs(*_edges(r), *_edges(r), same=True)):
            x, y = r[hit[0]]
            raise InvalidRegion(f"{label} crosses itself near ({x:.1f}, {y:.1f}); redraw it without "
                                "self-intersections")
        if allow_empty:
            return None
        raise InvalidRegion(f"{label}: zero area (needs at least three vertices that are not on one line)")
    return r


def _collinear(r: np.ndarray) -> bool:
    d = r - r[0]
    far = d[np.argmax((d * d).sum(1))]
    return bool(np.all(d[:, 0] * far[1] - d[:, 1] * far[0] == 0))


def _edges(ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return ring, np.roll(ring, -1, axis=0)


def _orient(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray, cx: np.ndarray, cy: np.ndarray
            ) -> np.ndarray:
    return np.sign((bx - ax) * (cy - ay) - (by - ay) * (cx - ax))


def _bad_pairs(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray, same: bool) -> tuple[int, int] | None:
    """First pair (i, j) of edges a_i, b_j that properly cross or overlap along a line (None if none)."""
    n, m = len(a0), len(b0)
    for s in range(0, n, _CHUNK):
        p, q = a0[s:s + _CHUNK, None, :], a1[s:s + _CHUNK, None, :]
        r, t = b0[None, :, :], b1[None, :, :]
        o1 = _orient(p[..., 0], p[..., 1], q[..., 0], q[..., 1], r[..., 0], r[..., 1])
        o2 = _orient(p[..., 0], p[..., 1], q[..., 0], q[..., 1], t[..., 0], t[..., 1])
        o3 = _orient(r[..., 0], r[..., 1], t[..., 0], t[..., 1], p[..., 0], p[..., 1])
        o4 = _orient(r[..., 0], r[..., 1], t[..., 0], t[..., 1], q[..., 0], q[..., 1])
        bad = (o1 * o2 < 0) & (o3 * o4 < 0)
        bad |= (o1 == 0) & (o2 == 0) & _overlap_on_line(p, q, r, t)
        if same:
            i = np.arange(s, min(s + _CHUNK, n))[:, None]
            j = np.arange(m)[None, :]
            adjacent = (i == j) | ((i + 1) % n == j) | ((j + 1) % n == i)
            bad &= ~adjacent
            bad |= (i == ((j + 1) % n)) & _backtrack(p, q, r, t) & (n > 2)
        hit = np.argwhere(bad)
        if len(hit):
            return int(hit[0, 0] + s), int(hit[0, 1])
    return None


def _overlap_on_line(p: np.ndarray, q: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Collinear segments sharing more than a point (projected on the first segment's direction)."""
    d = q - p
    key = np.where(np.abs(d[..., 0]) >= np.abs(d[..., 1]), 0, 1)
    pick = lambda a: np.take_along_axis(np.broadcast_to(a, np.broadcast_shapes(a.shape, d.shape)),  # noqa: E731
                                        key[..., None], axis=-1)[..., 0]
    lo1, hi1 = np.minimum(pick(p), pick(q)), np.maximum(pick(p), pick(q))
    lo2, hi2 = np.minimum(pick(r), pick(t)), np.maximum(pick(r), pick(t))
    return np.minimum(hi1, hi2) - np.maximum(lo1, lo2) > 0


def _backtrack(p: np.ndarray, q: np.ndarray, r: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Edge b=(r,t) followed by edge a=(p,q) (t == p) going straight back over it (a zero-width spike)."""
    u, v = t - r, q - p
    cross = u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]
    dot = (u * v).sum(-1)
    return (cross == 0) & (dot < 0)


def _check_crossings(geom: Geometry, what: str) -> None:
    rings = [(i, k, r) for i, p in enumerate(geom.parts) for k, r in enumerate(p.rings)]
    for a, (ia, ka, ra) in enumerate(rings):
        for ib, kb, rb in rings[a:]:
            same = ra is rb
            hit = _bad_pairs(*_edges(ra), *_edges(rb), same=same)
            if hit is not None:
                x, y = ra[hit[0]]
                where = "crosses itself" if same else f"crosses {_ring_name(geom, ib, kb)}"
                raise InvalidRegion(f"{what}: {_ring_name(geom, ia, ka)} {where} near ({x:.1f}, {y:.1f}); "
                                    "redraw it without self-intersections")


def _ring_name(geom: Geometry, part: int, ring: int) -> str:
    base = "" if len(geom.parts) == 1 else f"part {part + 1} "
    return f"{base}{'outline' if ring == 0 else f'hole {ring}'}"


def _check_nesting(geom: Geometry, what: str) -> None:
    for i, part in enumerate(geom.parts):
        for j, hole in enumerate(part.holes):
            if not _inside_ring(part.shell, _probe(hole, part.shell)):
                raise InvalidRegion(f"{what}: hole {j + 1} lies outside its outline")
            for k, other_hole in enumerate(part.holes):
                if k != j and _inside_ring(other_hole, _probe(hole, other_hole)):
                    raise InvalidRegion(f"{what}: hole {j + 1} lies inside hole {k + 1}")
        for k, other in enumerate(geom.parts):
            if k != i and contains(Geometry((other,)), _probe(part.shell, other.shell)[None, :])[0]:
                raise InvalidRegion(f"{what}: part {i + 1} lies inside part {k + 1} (parts must not overlap)")


def _probe(ring: np.ndarray, other: np.ndarray) -> np.ndarray:
    """A vertex of `ring` not on `other`'s boundary, else the midpoint of its first edge."""
    on = _on_boundary(other, ring)
    idx = np.flatnonzero(~on)
    return ring[idx[0]] if len(idx) else (ring[0] + ring[1]) / 2


def _on_boundary(ring: np.ndarray, pts: np.ndarray) -> np.ndarray:
    a, b = _edges(ring)
    p = pts[:, None, :]
    cross = (b[None, :, 0] - a[None, :, 0]) * (p[..., 1] - a[None, :, 1]) - \
        (b[None, :, 1] - a[None, :, 1]) * (p[..., 0] - a[None, :, 0])
    inside = ((p[..., 0] - a[None, :, 0]) * (p[..., 0] - b[None, :, 0]) <= 0) & \
        ((p[..., 1] - a[None, :, 1]) * (p[..., 1] - b[None, :, 1]) <= 0)
    return ((cross == 0) & inside).any(axis=1)


def _inside_ring(ring: np.ndarray, pt: np.ndarray) -> bool:
    return bool(_crossings(ring, np.asarray(pt, dtype=np.float64).reshape(1, 2))[0] % 2 == 1)


def _crossings(ring: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Number of ring edges a rightward ray from each point crosses ([P] int)."""
    a, b = _edges(ring)
    x, y = pts[:, 0:1], pts[:, 1:2]
    ay, by = a[None, :, 1], b[None, :, 1]
    straddle = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = a[None, :, 0] + (y - ay) * (b[None, :, 0] - a[None, :, 0]) / (by - ay)
    return (straddle & (x < xi)).sum(axis=1)


def contains(geom: Geometry, pts: np.ndarray) -> np.ndarray:
    """Even-odd point-in-region test for [P, 2] points (bool [P])."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
    total = np.zeros(len(pts), dtype=np.int64)
    for ring in geom.rings():
        total += _crossings(ring, pts)
    return total % 2 == 1


def area_mm2(geom: Geometry, mpp_x: float | None, mpp_y: float | None = None) -> float | None:
    """Area in mm² from the slide's µm per pixel (None when the pixel size is unknown)."""
    if not mpp_x:
        return None
    return geom.area() * float(mpp_x) * float(mpp_y or mpp_x) * 1e-6
