"""SlideView behaviour on an in-memory reader: which tiles are read, stale drops, bad tiles, overlay, input."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from gui_fakes import FakeReader, flush_events
from PySide6.QtCore import QPoint, QPointF, Qt

from pathpt_gui.viewer.tiles import TileKey

pytestmark = pytest.mark.gui


def expected_requests(view) -> set[TileKey]:
    lay = view.layout
    return {k for k in lay.plan(view.model.state) if k.level != lay.coarsest}


def test_open_reads_visible_tiles_at_the_right_level(make_view, settle, fake_reader) -> None:
    view = make_view(fake_reader, size=(800, 600), threads=0)  # synchronous loader: reads in event-loop turns
    view.model.set_view(2048, 1536, 1.0)
    settle(view)
    assert view.target_level() == 0
    visible = set(view.layout.visible_tiles(view.model.state))
    assert visible == {TileKey(0, c, r) for c in range(6, 10) for r in range(4, 8)}
    assert visible <= view.painted_keys  # every visible tile was painted from the cache
    read = set(fake_reader.tile_calls)
    assert visible <= read
    assert read <= expected_requests(view)  # only the planned tiles (coarse level, view, prefetch ring)
    assert all(k[0] in (0, 2) for k in fake_reader.tile_calls)  # target level + the coarse level only
    assert len(read) == len(fake_reader.tile_calls)  # no tile read twice


def test_zoom_out_switches_level_and_pan_requests_new_tiles(make_view, settle, fake_reader, qtbot) -> None:
    view = make_view(fake_reader, size=(800, 600))
    view.model.set_view(2048, 1536, 0.25)
    settle(view)
    assert view.target_level() == 2
    assert {k for k in fake_reader.tile_calls if k[0] == 2} >= set(view.layout.visible_tiles(view.model.state))
    assert not [k for k in fake_reader.tile_calls if k[0] < 2]
    fake_reader.tile_calls.clear()
    view.model.set_view(2048, 1536, 1.0)
    settle(view)
    n_before = len(fake_reader.tile_calls)
    view.model.pan_screen(-256, 0)  # one tile to the right: the new column came with the prefetch ring
    settle(view)
    new = fake_reader.tile_calls[n_before:]
    assert not set(view.layout.visible_tiles(view.model.state)) & set(new)
    assert all(k[1] == 11 for k in new if k[0] == 0)  # only the next ring column is read
    n_before = len(fake_reader.tile_calls)
    view.model.pan_screen(-768, 0)  # three tiles further: beyond the ring
    settle(view)
    new = fake_reader.tile_calls[n_before:]
    new_visible = set(view.layout.visible_tiles(view.model.state)) - set(fake_reader.tile_calls[:n_before])
    assert new_visible and new_visible <= set(new)
    assert len(new) < 30  # new columns plus ring, not the whole view again


def test_coarsest_level_is_the_backdrop_and_never_requested(make_view, settle, fake_reader) -> None:
    view = make_view(fake_reader, size=(200, 150))
    settle(view)  # fitted: the whole slide at the coarsest level
    assert view.backdrop is not None and view.minimap.image is not None
    assert view.target_level() == view.layout.coarsest
    assert not fake_reader.tile_calls  # the backdrop (one region read of the coarsest level) covers it
    assert len(fake_reader.region_calls) == 1 and fake_reader.region_calls[0][1] == view.layout.coarsest


def test_stale_results_are_dropped_and_never_painted(make_view, settle, qtbot) -> None:
    reader = FakeReader()
    view = make_view(reader, size=(800, 600))
    settle(view)
    reader.gate.clear()  # block reads: requests pile up in flight
    n0 = len(reader.tile_calls)
    view.model.set_view(600, 600, 1.0)
    qtbot.waitUntil(lambda: len(reader.tile_calls) >= n0 + 2, timeout=3000)
    first = set(reader.tile_calls[n0:])
    assert len(first) == 2  # two reader threads, both blocked
    g = view.loader.generation
    view.model.set_view(3500, 2600, 1.0)  # far away: the first requests are stale now
    qtbot.waitUntil(lambda: view.loader.generation > g, timeout=3000)  # ...once the new request went out
    reader.gate.set()
    settle(view)
    stale = first - set(view.layout.plan(view.model.state))
    assert stale == first and view.stale_dropped == 2
    assert not any(k in view.cache for k in stale)
    assert not (stale & view.painted_keys)
    later = reader.tile_calls[n0 + 2:]
    assert later and not any(k[1] < 5 for k in later if k[0] == 0)  # the old queue was replaced, not read


def test_bad_tile_shows_missing_and_logs_once(make_view, settle, caplog, qtbot) -> None:
    bad = {(0, c, 5) for c in range(6, 10)}
    reader = FakeReader(bad=bad)
    view = make_view(reader, size=(800, 600))
    errors = []
    view.tile_error.connect(errors.append)
    with caplog.at_level(logging.WARNING):
        view.model.set_view(2048, 1536, 1.0)
        settle(view)
    assert bad <= view.missing
    assert len(errors) == 1 and "corrupt JPEG tile" in errors[0]
    assert sum("unreadable tile" in r.message for r in caplog.records) == 1
    img = view.grab().toImage()
    x, y = view.model.state.slide_to_screen(7 * 256 + 128, 5 * 256 + 128)
    c = img.pixelColor(int(x), int(y))
    assert abs(c.red() - c.green()) < 40 and abs(c.green() - c.blue()) < 40  # grey hatch, not slide colour
    n = len(reader.tile_calls)
    view.model.pan_screen(1, 0)
    settle(view)
    assert not (set(reader.tile_calls[n:]) & bad)  # known-missing tiles are not re-read


def test_region_path_when_no_native_tiles(make_view, settle) -> None:
    reader = FakeReader(tile=None)
    view = make_view(reader, size=(800, 600), threads=0)
    view.model.set_view(2048, 1536, 1.0)
    settle(view)
    assert not reader.tile_calls
    sizes = {c[2] for c in reader.region_calls[1:]}
    assert sizes <= {(512, 512)} and len(reader.region_calls) > 1
    img = view.grab().toImage()
    c = img.pixelColor(400, 300)  # centre pixel ~ slide (2048, 1536): red ~ 128, green ~ 128
    assert abs(c.red() - 128) < 12 and abs(c.green() - 128) < 12 and abs(c.blue() - 90) < 12


def test_overlay_changes_do_not_read_tiles(make_view, settle, fake_reader, qtbot) -> None:
    view = make_view(fake_reader, size=(800, 600))
    view.model.set_view(2048, 1536, 0.5)
    settle(view)
    xs, ys = np.meshgrid(np.arange(0, 4096, 256), np.arange(0, 3072, 256))
    coords = np.stack([xs.ravel(), ys.ravel()], 1)
    view.overlay.set_values(coords, 256, coords[:, 0] / 4096.0, label="score")
    flush_events()
    view.repaint()
    calls = fake_reader.all_calls
    base = view.grab().toImage().pixelColor(400, 300)
    rebuilds = view._overlay_painter.rebuilds
    for opacity, cmap in ((0.9, "magma"), (0.2, "coolwarm"), (0.6, "jet")):
        view.overlay.opacity = opacity
        view.overlay.colormap = cmap
        view.repaint()
    view.overlay.smooth = True
    view.repaint()
    after = view.grab().toImage().pixelColor(400, 300)
    assert fake_reader.all_calls == calls
    assert view._overlay_painter.rebuilds == rebuilds + 3  # recoloured per colormap, not per opacity
    assert after != base
    assert view.legend.isVisible()


def test_classmap_overlay_paints_class_colour(make_view, settle, fake_reader, qtbot) -> None:
    view = make_view(fake_reader, size=(800, 600))
    view.model.set_view(2048, 1536, 0.5)
    settle(view)
    coords = np.array([[1792, 1280], [2048, 1280], [1792, 1536], [2048, 1536]])
    probs = np.array([[0.1, 0.9]] * 4)
    view.overlay.set_class_probs(coords, 256, probs, ["normal", "tumour"], [(0, 200, 0), (0, 0, 255)])
    view.overlay.opacity = 1.0
    view.repaint()
    c = view.grab().toImage().pixelColor(400, 300)
    assert (c.red(), c.green(), c.blue()) == (0, 0, 255)
    assert view.legend.height() == 16 + 40


def test_minimap_click_and_drag_jump(make_view, settle, fake_reader, qtbot) -> None:
    view = make_view(fake_reader, size=(800, 600))
    view.model.set_view(500, 500, 1.0)
    mm = view.minimap
    target = QPoint(4 + round((mm.width() - 8) * 0.75), 4 + round((mm.height() - 8) * 0.25))
    qtbot.mouseClick(mm, Qt.MouseButton.LeftButton, pos=target)
    cx, cy = view.model.center
    assert cx == pytest.approx(4096 * 0.75, abs=30) and cy == pytest.approx(3072 * 0.25, abs=30)
    x, y = mm.to_slide(QPointF(4 + (mm.width() - 8) * 0.5, 4 + (mm.height() - 8) * 0.5))
    assert (x, y) == pytest.approx((2048, 1536))


def test_keyboard_and_wheel_navigation(make_view, fake_reader, qtbot) -> None:
    view = make_view(fake_reader, size=(800, 600))
    fit = view.model.scale
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.model.scale == pytest.approx(fit * 2)
    c = view.model.center
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.model.center[0] == pytest.approx(c[0] + 200 / view.model.scale)
    qtbot.keyClick(view, Qt.Key.Key_0)
    assert view.model.scale == pytest.approx(fit) and view.model.center == (2048, 1536)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(400, 300))
    qtbot.mouseMove(view, QPoint(300, 300))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(300, 300))
    assert view.model.center[0] == pytest.approx(2048 + 100 / fit, rel=1e-3)


def test_shutdown_stops_threads_and_closes_reader(make_view, fake_reader) -> None:
    view = make_view(fake_reader)
    threads = view.loader.threads
    view.shutdown()
    assert fake_reader.closed and not any(t.is_alive() for t in threads)
    view.shutdown()  # idempotent


def test_unreadable_overview_still_settles_and_reports(make_view, settle, caplog) -> None:
    from pathpt_engine.errors import SlideError

    class NoOverview(FakeReader):
        def read_region(self, location, level, size):
            raise SlideError(f"{self.path}: cannot read the overview level")

    reader = NoOverview()
    with caplog.at_level(logging.WARNING):
        view = make_view(reader, size=(800, 600))
        view.model.set_view(2048, 1536, 1.0)
        settle(view)
    assert view.backdrop is None and view.painted_keys  # tiles still painted over the placeholder
    assert any("no overview image" in r.message for r in caplog.records)


def test_unreadable_slide_is_drawn_hatched_not_flat_grey(make_view, settle, caplog) -> None:
    """OpenSlide's `unreadable.svs` (one level, every tile undecodable): its tiles are drawn with the hatch,
    the failure is logged, and the view settles."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from openslide_fixtures import openslide_fixture

    from pathpt_engine.slides import open_slide
    from pathpt_gui.viewer import decor

    reader = open_slide(openslide_fixture("unreadable.svs"))
    errors: list[str] = []
    with caplog.at_level(logging.WARNING):
        view = make_view(reader, size=(400, 300))
        view.tile_error.connect(errors.append)
        view.model.fit()
        settle(view)
    assert view.missing, "the unreadable tiles must be known missing"
    assert any("unreadable tile" in r.message for r in caplog.records)
    img = view.grab().toImage()
    x0, y0 = view.model.state.slide_to_screen(1, 1)  # left strip: clear of the minimap and the scale bar
    x1, y1 = view.model.state.slide_to_screen(4, 11)
    colours = {img.pixelColor(x, y).rgb() for x in range(int(x0), int(x1)) for y in range(int(y0), int(y1))}
    assert decor.MISSING_FILL.rgb() in colours  # the hatch: grey fill ...
    assert len(colours) >= 2  # ... crossed by diagonal lines, not one flat colour
    assert decor.SLIDE_PLACEHOLDER.rgb() not in colours
