"""Qt-free viewer state: viewport maths, level choice, tile planning, the LRU cache, overlay colouring."""

from __future__ import annotations

import numpy as np
import pytest

from pathpt_gui.viewer.cache import TileCache
from pathpt_gui.viewer.model import ViewportModel, ViewState
from pathpt_gui.viewer.overlay import OverlayModel, lookup_table
from pathpt_gui.viewer.tiles import LevelInfo, TileKey, TileLayout


def layout_4_levels() -> TileLayout:
    sizes = [(4096, 3072), (2048, 1536), (1024, 768), (512, 384)]
    return TileLayout([LevelInfo(s, (4096 / s[0], 3072 / s[1]), (256, 256), True) for s in sizes])


def test_viewport_fit_and_zoom_keeps_point_under_cursor() -> None:
    m = ViewportModel((4096, 3072), base_magnification=40.0)
    seen = []
    m.changed.connect(seen.append)
    m.set_view_size(800, 600)
    assert m.center == (2048, 1536)
    assert m.scale == pytest.approx(0.96 * min(800 / 4096, 600 / 3072))
    before = m.state.screen_to_slide(100, 500)
    m.zoom_at(3.0, 100, 500)
    after = m.state.screen_to_slide(100, 500)
    assert after == pytest.approx(before)
    assert len(seen) >= 2 and isinstance(seen[-1], ViewState)


def test_viewport_pan_magnification_and_limits() -> None:
    m = ViewportModel((4096, 3072), base_magnification=40.0)
    m.set_view_size(800, 600)
    m.set_view(1000, 1000, 0.5)
    m.pan_screen(100, -50)  # drag right/up moves the view left/down on the slide
    assert m.center == pytest.approx((800, 1100))
    m.set_magnification(10)
    assert m.scale == pytest.approx(0.25) and m.magnification == pytest.approx(10)
    m.set_scale(1000)
    assert m.scale == 4.0
    m.set_center(-500, 99999)
    assert m.center == (0, 3072)
    with pytest.raises(ValueError, match='does not state its magnification'):
        ViewportModel((4096, 3072)).set_magnification(20)


def test_level_for_scale_picks_coarsest_sufficient_level() -> None:
    lay = layout_4_levels()
    assert lay.level_for_scale(2.0) == 0
    assert lay.level_for_scale(1.0) == 0
    assert lay.level_for_scale(0.6) == 0
    assert lay.level_for_scale(0.5) == 1
    assert lay.level_for_scale(0.27) == 1
    assert lay.level_for_scale(0.26) == 2  # within the 5 % tolerance
    assert lay.level_for_scale(0.25) == 2
    assert lay.level_for_scale(0.01) == 3


def test_plan_is_coarse_first_centre_out_then_prefetch_ring() -> None:
    lay = layout_4_levels()
    st = ViewState((2048, 1536), 1.0, (512, 512))  # level 0, view covers x 1792..2304, y 1280..1792
    keys = lay.plan(st)
    coarse = [k for k in keys if k.level == 2]
    target = [k for k in keys if k.level == 0]
    assert keys[:len(coarse)] == tuple(coarse) and set(coarse) == {TileKey(2, 1, 1), TileKey(2, 2, 1)}
    visible = set(lay.tiles_in(0, st.visible_rect()))
    assert visible == {TileKey(0, c, r) for c in (7, 8) for r in (5, 6)}
    first_target = keys[len(coarse):len(coarse) + len(visible)]
    assert set(first_target) == visible
    ring = keys[len(coarse) + len(visible):]
    assert len(ring) == 16 - 4 and all(k.level == 0 and k not in visible for k in ring)
    assert all(abs(k.col - 7.5) <= 1.5 and abs(k.row - 5.5) <= 1.5 for k in target)
    assert lay.plan(st, prefetch=False, coarse_step=0) == tuple(first_target)


def test_plan_is_centre_first() -> None:
    lay = layout_4_levels()
    st = ViewState((1000, 1000), 1.0, (1600, 1000))
    keys = lay.visible_tiles(st)
    d = [np.hypot(*(np.array(lay.tile_rect(k)[:2]) + 128 - 1000)) for k in keys]
    assert d == sorted(d)
    assert lay.tile_rect(TileKey(3, 1, 1)) == (256 * 8, 256 * 8, 256 * 8, 128 * 8)  # edge tile cropped


def test_cache_is_lru_and_byte_budgeted() -> None:
    c = TileCache(1000)
    for i in range(4):
        c.put(i, f"img{i}", 300)
    assert len(c) == 3 and 0 not in c and c.nbytes == 900
    assert c.get(1) == "img1"  # 1 becomes most recent
    c.put(9, "img9", 300)
    assert 2 not in c and 1 in c and c.evictions == 2
    c.set_budget(300)
    assert list(c._items) == [9]
    with pytest.raises(ValueError, match='cache budget must be > 0'):
        TileCache(0)


def test_overlay_scalar_lut_and_missing_cells() -> None:
    ov = OverlayModel()
    coords = np.array([[0, 0], [512, 0], [0, 256], [512, 512]])
    ov.set_values(coords, 256, np.array([0.0, 1.0, 0.5, np.nan]), label="tumour")
    rgba = ov.colorize()
    assert rgba.shape == (3, 3, 4)
    lut = lookup_table("viridis")
    assert (rgba[0, 0] == lut[0]).all() and (rgba[0, 2] == lut[255]).all()
    assert (rgba[1, 0] == lut[128]).all()
    assert rgba[0, 1, 3] == 0 and rgba[2, 2, 3] == 0  # no tile there / NaN value
    ov.colormap = "magma"
    assert (ov.colorize()[0, 2] == lookup_table("magma")[255]).all()
    with pytest.raises(ValueError, match="unknown colormap"):
        ov.colormap = "not-a-map"


def test_overlay_classmap_and_change_kinds() -> None:
    ov = OverlayModel()
    kinds = []
    ov.changed.connect(kinds.append)
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    ov.set_class_probs(np.array([[100, 100], [356, 100]]), 256, probs, ["normal", "A", "B"],
                       [(0, 255, 0), (255, 0, 0), (0, 0, 255)])
    rgba = ov.colorize()
    assert ov.grid.origin == (100, 100) and rgba.shape == (1, 2, 4)
    assert tuple(rgba[0, 0]) == (0, 255, 0, 255) and tuple(rgba[0, 1]) == (0, 0, 255, 255)
    ov.opacity = 0.8
    ov.smooth = True
    ov.visible = False
    assert kinds == ["data", "opacity", "smoothing", "visible"]
    with pytest.raises(ValueError, match=r"opacity must be in \[0, 1\]"):
        ov.opacity = 1.5
    with pytest.raises(ValueError, match=r"probs must be \[N, 2\]"):
        ov.set_class_probs(np.zeros((2, 2)), 256, probs, ["a", "b"])


def test_overlay_from_tile_scores() -> None:
    from pathpt_engine.results import TileScores

    ts = TileScores("s", np.array([[0, 0], [256, 0]]), np.array([[0.8, 0.2], [0.3, 0.7]], np.float32), 256,
                    ("normal", "tumour"))
    ov = OverlayModel()
    ov.set_tile_scores(ts)
    assert ov.grid.mode == "classmap" and ov.class_names == ("normal", "tumour")
    ov.set_tile_scores(ts, channel="tumour")
    assert ov.grid.mode == "scalar" and ov.value_range == (0.0, 1.0) and ov.label == "p(tumour)"
    assert ov.grid.values.tolist() == pytest.approx([0.2, 0.7])
    with pytest.raises(ValueError, match="unknown class"):
        ov.set_tile_scores(ts, channel="nope")


def test_viewport_refits_on_resize_until_the_user_moves() -> None:
    m = ViewportModel((4096, 3072))
    m.set_view_size(200, 150)
    m.set_view_size(1600, 1000)
    assert m.scale == pytest.approx(m.fit_scale())  # still fitted after the window grew
    m.pan_screen(10, 0)
    center, scale = m.center, m.scale
    m.set_view_size(800, 600)
    assert m.center == center and m.scale == scale
    m.fit()
    m.set_view_size(1600, 1000)
    assert m.scale == pytest.approx(m.fit_scale())


def test_viewer_models_and_the_gui_package_load_no_qt() -> None:
    """The viewer's state models are Qt-free, and importing pathpt_gui changes nothing process-wide."""
    import subprocess
    import sys

    code = ("import sys\n"
            "refs = sys.getrefcount(None)\n"
            "import pathpt_gui, pathpt_gui.app\n"
            "import pathpt_gui.viewer.cache, pathpt_gui.viewer.model, pathpt_gui.viewer.overlay, "
            "pathpt_gui.viewer.tiles\n"
            "qt = sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph'))\n"
            "print(','.join(qt))\n"
            "print(sys.getrefcount(None) - refs < 10**6)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    qt, refs_unchanged = out.stdout.split("\n")[:2]
    assert qt == "", f"importing pathpt_gui loaded Qt: {qt}"
    assert refs_unchanged == "True", "importing pathpt_gui changed None's reference count (the guard ran)"


def test_app_main_applies_the_none_guard_before_anything_else(monkeypatch) -> None:
    import pathpt_gui.app as app

    calls = []
    monkeypatch.setattr(app, "protect_none", lambda: calls.append("guard") or False)
    with pytest.raises(SystemExit):
        app.main(["--help"])
    assert calls == ["guard"]
