"""How a cold view fills: request timing, prefetch after the visible set, batched delivery of finished reads."""

from __future__ import annotations

import time

import pytest
from gui_fakes import FakeReader, flush_events

from pathpt_gui.viewer.loader import TileLoader
from pathpt_gui.viewer.model import ViewState
from pathpt_gui.viewer.tiles import TileKey, TileLayout
from pathpt_gui.viewer.view import SlideView

pytestmark = pytest.mark.gui


class PaintProbe(SlideView):
    """A SlideView that records the loader generation at every paint."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.paint_generations: list[int] = []

    def paintEvent(self, event) -> None:  # noqa: N802
        self.paint_generations.append(self.loader.generation)
        super().paintEvent(event)


def test_prefetch_ring_is_read_only_after_the_visible_tiles(make_view, settle, qtbot) -> None:
    reader = FakeReader()
    view = make_view(reader, size=(800, 600))
    settle(view)
    qtbot.waitUntil(view.is_idle, timeout=5000)  # the fitted view's own follow-up requests are done
    reader.gate.clear()  # block reads: the request for the new view stays observable
    n0 = len(reader.tile_calls)
    view.model.set_view(2048, 1536, 1.0)
    qtbot.waitUntil(lambda: len(reader.tile_calls) >= n0 + 2, timeout=3000)
    st = view.model.state
    visible = set(view.layout.visible_tiles(st))
    ring = set(view.layout.tiles_in(0, st.visible_rect(), ring=1)) - visible
    assert ring and all(view.loader.is_wanted(k) for k in visible)
    assert not any(view.loader.is_wanted(k) for k in ring)  # the ring waits while visible tiles are missing
    reader.gate.set()
    settle(view)
    qtbot.waitUntil(lambda: ring <= set(reader.tile_calls), timeout=3000)  # ...and follows once they are in
    calls = reader.tile_calls[n0:]
    last_visible = max(i for i, k in enumerate(calls) if k in visible)
    first_ring = min(i for i, k in enumerate(calls) if k in ring)
    assert last_visible < first_ring


def test_view_change_requests_once_and_before_the_repaint(qtbot, settle) -> None:
    view = PaintProbe(FakeReader(), cache_bytes=64 * 2**20, threads=2)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    try:
        settle(view)
        qtbot.waitUntil(view.is_idle, timeout=5000)
        g0 = view.loader.generation
        view.model.set_view(1000, 1000, 1.0)
        view.model.set_view(2048, 1536, 1.0)  # two changes in one event: one request, for the last
        assert view.loader.generation == g0  # posted, not run inside the model change
        view.paint_generations.clear()
        qtbot.waitUntil(lambda: bool(view.paint_generations), timeout=3000)
        assert view.paint_generations[0] == g0 + 1  # the readers were started before the first repaint
        visible = view.layout.visible_tiles(view.model.state)
        assert all(view.loader.is_wanted(k) or k in view.cache for k in visible)
        skipped = set(view.layout.visible_tiles(ViewState((1000, 1000), 1.0, view.model.state.view_size)))
        skipped -= set(view.layout.plan(view.model.state))  # (the final view's ring may be requested by now)
        assert skipped and not any(view.loader.is_wanted(k) for k in skipped)  # the intermediate view: never
    finally:
        view.shutdown()


def test_loader_delivers_finished_reads_in_one_batch(qtbot) -> None:
    reader = FakeReader()
    loader = TileLoader(reader, TileLayout.from_reader(reader), threads=2)
    batches, singles = [], []
    loader.batch_loaded.connect(batches.append)
    loader.loaded.connect(singles.append)
    keys = [TileKey(0, c, 0) for c in range(6)]
    try:
        loader.request(keys)
        t0 = time.monotonic()
        while loader.stats.reads < len(keys):  # no event processing meanwhile: results wait in the outbox
            assert time.monotonic() - t0 < 10, "reads did not finish"
            time.sleep(0.005)
        assert not loader.is_idle()  # finished but not yet handed to the GUI thread: still in flight
        qtbot.waitUntil(lambda: bool(batches), timeout=3000)
        flush_events()  # a second delivery, if there were one, is queued by now (every read had finished)
        assert len(batches) == 1 and sorted(r.key for r in batches[0]) == keys
        assert [r.key for r in singles] == [r.key for r in batches[0]]  # one `loaded` per result, same order
        assert all(r.image is not None and r.image.width() == 256 for r in batches[0])
        assert loader.is_idle()
    finally:
        loader.close()


def test_cold_view_shows_the_backdrop_while_its_tiles_are_read(make_view, settle, qtbot) -> None:
    reader = FakeReader()
    view = make_view(reader, size=(800, 600))
    settle(view)
    view.cache.clear()  # no tiles of other levels to fall back on: only the pinned backdrop can show
    reader.gate.clear()  # every tile read blocks: nothing of the new view can land
    n0 = len(reader.tile_calls)
    view.model.set_view(3000, 1000, 1.0)
    qtbot.waitUntil(lambda: len(reader.tile_calls) >= n0 + 2, timeout=3000)
    try:
        assert view.pending_visible() and not view.is_settled()
        img = view.grab().toImage()
        c = img.pixelColor(400, 300)  # slide (3000, 1000) of the gradient: red ~ 187, green ~ 83, blue 90
        assert abs(c.red() - 187) < 25 and abs(c.green() - 83) < 25 and abs(c.blue() - 90) < 25
    finally:
        reader.gate.set()
    settle(view)
    assert set(view.layout.visible_tiles(view.model.state)) <= view.painted_keys


def test_synchronous_loader_reads_in_the_next_event_loop_turn(qtbot) -> None:
    reader = FakeReader()
    loader = TileLoader(reader, TileLayout.from_reader(reader), threads=0)
    batches = []
    loader.batch_loaded.connect(batches.append)
    keys = [TileKey(0, c, 0) for c in range(4)]
    try:
        assert loader.threads == ()  # no reader threads at all
        loader.request(keys)
        assert not reader.tile_calls and not loader.is_idle()  # queued: read in the next turn, never inside
        loader.request(keys[2:])  # replaces the queue before anything was read
        qtbot.waitUntil(loader.is_idle, timeout=3000)
        assert reader.tile_calls == [tuple(k) for k in keys[2:]]  # in order, the replaced keys never read
        assert len(batches) == 1 and [r.key for r in batches[0]] == keys[2:]
        assert all(r.image is not None and r.image.width() == 256 for r in batches[0])
    finally:
        loader.close()
