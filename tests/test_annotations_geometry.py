"""Region geometry: validity (repair or refuse), area, even-odd hit test, exact tile coverage, overrides."""

from __future__ import annotations

import numpy as np
import pytest

from pathpt_engine.annotations import (
    IGNORE,
    NONE,
    Geometry,
    InvalidRegion,
    Part,
    area_mm2,
    contains,
    ellipse,
    polygon,
    rectangle,
    tile_coverage,
    tile_overrides,
    validate,
)


def _star(cx=1000.0, cy=1000.0, n=40, seed=0):
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    r = 300 + 150 * rng.random(n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _donut():
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    hole = np.stack([1000 + 120 * np.cos(t[::-1]), 1000 + 90 * np.sin(t[::-1])], axis=1)
    return validate(Geometry((Part(_star(), (hole,)),)))[0]


def _sampled_coverage(geom, coords, size, n=160):
    u = (np.arange(n) + 0.5) / n * size
    out = []
    for x, y in coords:
        pts = np.stack(np.meshgrid(x + u, y + u), -1).reshape(-1, 2)
        out.append(contains(geom, pts).mean())
    return np.array(out)


def test_coverage_is_exact_on_rectangles():
    g = rectangle(100, 100, 300, 250)
    cov = tile_coverage(g, np.array([[0, 0], [100, 100], [200, 200], [256, 96], [300, 300]]), 100)
    np.testing.assert_allclose(cov, [0.0, 1.0, 0.5, 44 * 96 / 1e4, 0.0], atol=1e-12)


def test_coverage_matches_dense_sampling_for_concave_polygon_with_hole():
    g = _donut()
    xs = np.arange(512, 1536, 64)
    coords = np.array([[x, y] for y in xs for x in xs])
    cov = tile_coverage(g, coords, 64)
    assert 0 < (cov > 0).sum() < len(coords) and ((cov > 0) & (cov < 1)).sum() > 20
    idx = np.flatnonzero((cov > 0) & (cov < 1))[:25]  # boundary tiles: the hard cases
    np.testing.assert_allclose(cov[idx], _sampled_coverage(g, coords[idx], 64), atol=0.01)
    # whole-grid sum = region area (every part of the region lies on the grid)
    assert abs(cov.sum() * 64 * 64 - g.area()) < 1e-6 * g.area()


def test_coverage_does_not_depend_on_winding_or_origin():
    ring = _star()
    coords = np.array([[x, y] for y in range(500, 1500, 100) for x in range(500, 1500, 100)])
    a = tile_coverage(polygon(ring), coords, 100)
    b = tile_coverage(polygon(ring[::-1]), coords, 100)
    c = tile_coverage(polygon(ring + 1e6), coords + 1_000_000, 100)
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_area_and_mm2():
    g = _donut()
    assert g.area() == pytest.approx(abs(_shoelace(g.parts[0].shell)) - abs(_shoelace(g.parts[0].holes[0])))
    assert area_mm2(rectangle(0, 0, 2000, 1000), 0.5) == pytest.approx(2000 * 1000 * 0.25 * 1e-6)
    assert area_mm2(rectangle(0, 0, 10, 10), None) is None
    e = ellipse(0, 0, 200, 100, n=256)
    assert e.area() == pytest.approx(np.pi * 100 * 50, rel=1e-3)


def _shoelace(r):
    return 0.5 * np.sum(r[:, 0] * np.roll(r[:, 1], -1) - np.roll(r[:, 0], -1) * r[:, 1])


def test_invalid_regions_are_refused_with_a_message():
    with pytest.raises(InvalidRegion, match="crosses itself"):
        validate(polygon([[0, 0], [10, 10], [10, 0], [0, 10]]))  # bow tie
    with pytest.raises(InvalidRegion, match="crosses itself"):
        validate(polygon([[0, 0], [100, 0], [100, 100], [50, -20], [0, 100]]))  # edge through another
    with pytest.raises(InvalidRegion, match="zero area|crosses itself"):
        validate(polygon([[0, 0], [10, 0], [20, 0]]))
    with pytest.raises(InvalidRegion, match="zero area"):
        validate(polygon([[5, 5], [5, 5], [5, 5]]))
    with pytest.raises(InvalidRegion, match="finite"):
        validate(polygon([[0, 0], [10, 0], [float("nan"), 5]]))
    outside = Geometry((Part(rectangle(0, 0, 10, 10).parts[0].shell, (rectangle(20, 20, 30, 30).parts[0].shell,)),))
    with pytest.raises(InvalidRegion, match="outside its outline"):
        validate(outside)
    crossing = Geometry((Part(rectangle(0, 0, 10, 10).parts[0].shell, (rectangle(5, 5, 15, 8).parts[0].shell,)),))
    with pytest.raises(InvalidRegion, match="crosses hole 1"):
        validate(crossing)
    nested = Geometry((rectangle(0, 0, 10, 10).parts[0], rectangle(2, 2, 4, 4).parts[0]))
    with pytest.raises(InvalidRegion, match="parts must not overlap"):
        validate(nested)


def test_safe_repairs_keep_the_outline():
    closed = polygon([[0, 0], [10, 0], [10, 0], [10, 10], [0, 10], [0, 0]])
    fixed, notes = validate(closed)
    assert fixed.parts[0].shell.tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]
    assert notes and "repeated vertex" in notes[0]
    g = Geometry((Part(rectangle(0, 0, 10, 10).parts[0].shell, (np.array([[2.0, 2.0], [3.0, 3.0], [4.0, 4.0]]),)),))
    fixed, notes = validate(g)
    assert fixed.parts[0].holes == () and "dropped hole 1" in notes[0]
    ok, notes = validate(_donut())
    assert notes == [] and ok.same_as(_donut())
    touching = polygon([[0, 0], [10, 0], [10, 10], [5, 5], [0, 10]])  # a dent to a point: fine
    assert validate(touching)[1] == []


def test_overrides_ignore_wins_best_cover_then_corrections():
    coords = np.array([[x, 0] for x in range(0, 500, 100)], dtype=np.int64)
    regions = [(2, rectangle(0, 0, 260, 100)),   # tiles 0, 1 fully; tile 2 60%
               (1, rectangle(240, 0, 400, 100)),  # tile 2 60% as well (later wins the tie), tile 3 fully
               (IGNORE, rectangle(0, 0, 40, 100)),  # 40% of tile 0: not enough
               (IGNORE, rectangle(0, 0, 160, 100))]  # tile 0 fully, tile 1 60%: both ignored
    ov = tile_overrides(coords, 100, regions, {(400, 0): 0, (900, 900): 1})
    assert ov.tolist() == [IGNORE, IGNORE, 1, 1, 0]
    assert tile_overrides(coords, 100, []).tolist() == [NONE] * 5
    just_below = tile_overrides(coords, 100, [(1, rectangle(0, 0, 49.99, 100))])
    at_half = tile_overrides(coords, 100, [(1, rectangle(0, 0, 50, 100))])
    assert just_below[0] == NONE and at_half[0] == 1
