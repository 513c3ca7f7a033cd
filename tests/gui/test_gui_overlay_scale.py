"""Issue 16 section 3: the overlay at real slide size (50,000 tiles): the hover lookup is a grid index."""

from __future__ import annotations

import numpy as np

from pathpt_engine.results import TileScores
from pathpt_gui.panels import predictions
from pathpt_gui.viewer.overlay import TileLookup


def _brute(coords: np.ndarray, t: int, x: float, y: float) -> int | None:
    hit = np.flatnonzero((coords[:, 0] <= x) & (x < coords[:, 0] + t) & (coords[:, 1] <= y) & (y < coords[:, 1] + t))
    return int(hit[0]) if hit.size else None


def _scores(n: int = 50_000, t: int = 128) -> TileScores:
    rng = np.random.default_rng(0)
    cells = rng.choice(320 * 240, size=n, replace=False)
    coords = np.stack([cells % 320, cells // 320], axis=1).astype(np.int64) * t + np.array([37, 11])
    probs = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    return TileScores("s", coords, probs, t, ("Normal", "a", "b"))


def test_tile_lookup_matches_a_scan_on_a_50000_tile_lattice() -> None:
    s = _scores()
    lut = TileLookup(s.coords, s.tile_size_level0)
    pts = np.random.default_rng(1).uniform((-200, -200), (320 * 128 + 300, 240 * 128 + 300), size=(3000, 2))
    for x, y in pts:
        assert lut.at(x, y) == _brute(s.coords, 128, x, y)
    assert lut._grid is not None  # on a lattice: the O(1) grid, not the scan


def test_tile_lookup_off_the_lattice_falls_back_to_the_scan() -> None:
    coords = np.array([[0, 0], [64, 0], [300, 10]], np.int64)  # overlapping tiles
    lut = TileLookup(coords, 128)
    for x, y in [(10, 10), (100, 10), (130, 10), (310, 20), (500, 500), (-1, 5)]:
        assert lut.at(x, y) == _brute(coords, 128, x, y)


def test_predictions_hover_lookup_uses_one_index_per_scores(monkeypatch) -> None:
    built: list[int] = []
    real = predictions.TileLookup

    def counting(*a, **k):  # type: ignore[no-untyped-def]
        built.append(1)
        return real(*a, **k)

    monkeypatch.setattr(predictions, "TileLookup", counting)
    s = _scores(2000)
    for x, y in [(40, 20), (5000, 3000), (100, 100), (40, 20)]:
        assert predictions.tile_at(s, x, y) == _brute(s.coords, 128, x, y)
    assert len(built) == 1
    other = _scores(100)
    predictions.tile_at(other, 40, 20)
    assert len(built) == 2


def test_opacity_is_baked_into_the_overlay_image_without_recolouring(make_view, settle, fake_reader) -> None:
    """Pan frames draw the heatmap without painter opacity (2.5 ms less per frame at 1600x1000); the small
    image carries the opacity in its alpha, re-derived from the coloured grid, never re-coloured."""
    view = make_view(fake_reader, size=(800, 600))
    view.model.set_view(2048, 1536, 0.5)
    settle(view)
    coords = np.array([[1792, 1280], [2048, 1280], [1792, 1536], [2048, 1536]])
    view.overlay.set_class_probs(coords, 256, np.array([[0.1, 0.9]] * 4), ["normal", "tumour"],
                                 [(0, 200, 0), (0, 0, 255)])
    painter = view._overlay_painter
    for opacity in (1.0, 0.5):
        view.overlay.opacity = opacity
        view.repaint()
        img = painter.image()
        assert img.pixelColor(7, 5).alpha() == round(255 * opacity)  # the tile at (1792, 1280)
    rebuilds = painter.rebuilds
    view.overlay.opacity = 0.3
    view.repaint()
    assert painter.rebuilds == rebuilds  # opacity re-derives the alpha, it does not re-colour
    under = view.grab().toImage().pixelColor(400, 300)
    view.overlay.visible = False
    view.repaint()
    slide = view.grab().toImage().pixelColor(400, 300)
    assert abs(under.blue() - round(0.3 * 255 + 0.7 * slide.blue())) <= 3
    assert abs(under.red() - round(0.7 * slide.red())) <= 3
