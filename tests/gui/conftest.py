"""Fixtures for the viewer tests (test doubles live in gui_fakes.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from gui_fakes import FakeReader, flush_events, gradient_image

from pathpt_gui._none_guard import protect_none

protect_none()  # as pathpt_gui.app.main does, before any Qt work in this process


@pytest.fixture
def fake_reader() -> FakeReader:
    return FakeReader()


@pytest.fixture
def make_view(qtbot):
    """Build a SlideView on a reader at a given size; every view is shut down at teardown."""
    from pathpt_gui.viewer.view import SlideView

    views = []

    def make(reader, size=(800, 600), threads=2, cache_bytes=256 * 2**20):
        view = SlideView(reader, cache_bytes=cache_bytes, threads=threads)
        qtbot.addWidget(view)
        view.resize(*size)
        view.show()
        qtbot.waitExposed(view)
        views.append(view)
        return view

    yield make
    for v in views:
        v.shutdown()


@pytest.fixture
def make_window(qtbot, tmp_path):
    """Build a shown MainWindow (settings under tmp_path), resized unless `size` is None, with the workflow
    panels when asked (then returns (window, workflow)); closed at teardown, its worker stopped."""
    from pathpt_gui.main_window import MainWindow
    from pathpt_gui.panels.workflow import install_workflow
    from pathpt_gui.settings import AppSettings

    made = []

    def make(size=(1000, 700), workflow=False):
        win = MainWindow(AppSettings.at(tmp_path / "settings.ini"))
        qtbot.addWidget(win)
        if size is not None:
            win.resize(*size)
        win.show()
        wf = install_workflow(win, dialogs=False) if workflow else None
        made.append((win, wf))
        return (win, wf) if workflow else win

    yield make
    for win, wf in made:
        win.close()
        if wf is not None:
            wf.ctrl.shutdown()
            assert not wf.ctrl.worker.isRunning()


@pytest.fixture
def settle(qtbot):
    def wait(view, timeout=5000):
        qtbot.waitUntil(view.is_idle, timeout=timeout)  # settled, and its prefetch ring read: nothing in flight
        flush_events()  # the paints and calls the last delivery queued
        view.repaint()
    return wait


@pytest.fixture
def slide_file(tmp_path: Path) -> Path:
    from pathpt_engine.synth.writer import write_slide

    return write_slide(tmp_path / "slide.tif", gradient_image(2048, 1536), mpp=0.25, fmt="tiff")
