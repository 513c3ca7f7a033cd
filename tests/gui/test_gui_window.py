"""Main window: opening real slides in tabs, bad files, recent files, menus, properties, docking panels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gui_fakes import gradient_image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QMessageBox

from pathpt_engine.synth.writer import write_slide

pytestmark = pytest.mark.gui


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def dialogs(monkeypatch):
    """Record QMessageBox.critical calls instead of blocking on a modal."""
    calls = []
    monkeypatch.setattr(QMessageBox, "critical", staticmethod(lambda parent, title, text, *a: calls.append(text)))
    return calls


def test_open_slides_in_tabs_and_recent(window, slide_file, tmp_path, qtbot, dialogs) -> None:
    other = write_slide(tmp_path / "other.svs", gradient_image(1024, 768), mpp=0.5, fmt="svs")
    views = window.open_paths([slide_file, other])
    assert len(views) == 2 and window.tabs.count() == 2 and window.current_view() is views[1]
    assert window.tabs.tabText(0) == "slide.tif" and window.stack.currentIndex() == 1
    assert window.open_slide(slide_file) is views[0] and window.tabs.count() == 2  # switches, no duplicate
    assert window.settings.recent_files()[:2] == [str(other.resolve()), str(slide_file.resolve())]
    assert window.recent_menu.actions()[0].text() == "other.svs"
    qtbot.waitUntil(views[0].is_settled, timeout=5000)
    threads = [t for v in views for t in v.loader.threads]
    window.close_current()
    window.close_current()
    assert window.tabs.count() == 0 and window.stack.currentIndex() == 0
    assert not any(t.is_alive() for t in threads) and not dialogs


def test_bad_file_shows_one_dialog_and_app_keeps_running(window, tmp_path, dialogs, slide_file) -> None:
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"this is not a slide" * 100)
    assert window.open_slide(bad) is None
    assert window.open_slide(tmp_path / "missing.tif") is None
    assert len(dialogs) == 2
    assert all("\n" not in m for m in dialogs) and "broken.svs" in dialogs[0] and "missing.tif" in dialogs[1]
    assert window.tabs.count() == 0
    assert window.open_slide(slide_file) is not None  # still usable


def test_magnification_fit_and_status_bar(window, slide_file, qtbot) -> None:
    view = window.open_slide(slide_file)
    assert view.model.base_magnification == pytest.approx(40.0)  # from mpp 0.25
    window.mag_actions[2].trigger()  # 20x
    assert view.model.magnification == pytest.approx(20.0)
    assert "20×" in window.view_info_text() and "level 1" in window.view_info_text()
    window.actions["fit"].trigger()
    assert view.model.scale == pytest.approx(view.model.fit_scale())
    view.cursor_moved.emit(1000, 400)  # as a mouse move over the view does
    assert "x 1,000" in window.cursor_text() and "250.0, 100.0 µm" in window.cursor_text()
    window.actions["zoom_in"].trigger()
    assert view.model.scale == pytest.approx(2 * view.model.fit_scale())


def test_overlay_controls_drive_the_current_view(window, slide_file) -> None:
    view = window.open_slide(slide_file)
    view.overlay.set_values(np.array([[0, 0], [256, 0]]), 256, np.array([0.2, 0.9]))
    window.opacity_slider.setValue(80)
    window.cmap_combo.setCurrentText("magma")
    window.actions["overlay"].trigger()
    assert view.overlay.opacity == pytest.approx(0.8) and view.overlay.colormap == "magma"
    assert not view.overlay.visible and not view.legend.isVisible()


def test_properties_dialog_lists_associated_images(window, tmp_path, qtbot) -> None:
    label = np.full((100, 200, 3), 200, np.uint8)
    macro = np.full((150, 400, 3), 120, np.uint8)
    path = write_slide(tmp_path / "withimages.svs", gradient_image(1024, 768), mpp=0.25, fmt="svs",
                       label=label, macro=macro)
    view = window.open_slide(path)
    from pathpt_gui.dialogs import SlidePropertiesDialog

    dlg = SlidePropertiesDialog(view.reader, window)
    qtbot.addWidget(dlg)
    names = [dlg.tabs.tabText(i) for i in range(dlg.tabs.count())]
    assert names[:2] == ["Summary", "All properties"]
    assert {"Label", "Macro"} <= set(names)
    summary = dlg.tabs.widget(0)
    cells = {summary.item(r, 0).text(): summary.item(r, 1).text() for r in range(summary.rowCount())}
    assert cells["Dimensions"] == "1,024 × 768 px" and cells["Pixel size"].startswith("0.25")
    label_tab = dlg.tabs.widget(names.index("Label")).widget()
    assert label_tab.pixmap() is not None and label_tab.pixmap().width() == 200


def test_panels_dock_and_toggle(window) -> None:
    dock = window.add_panel(QLabel("slides"), "Slides", Qt.DockWidgetArea.LeftDockWidgetArea)
    assert window.dockWidgetArea(dock) == Qt.DockWidgetArea.LeftDockWidgetArea
    assert dock.toggleViewAction() in window.panels_menu.actions()


def test_drop_opens_files(window, slide_file, qtbot, dialogs) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(slide_file))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                    Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    assert window.tabs.count() == 1 and Path(window.tabs.tabToolTip(0)) == slide_file


def test_open_filter_and_drop_take_every_openslide_format(window, tmp_path, qtbot, dialogs) -> None:
    import shutil
    import sys

    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    from pathpt_gui.main_window import SLIDE_FILTER

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from openslide_fixtures import openslide_fixture

    for ext in ("svs", "tif", "tiff", "ndpi", "vms", "vmu", "scn", "mrxs", "svslide", "bif", "dcm"):
        assert f"*.{ext}" in SLIDE_FILTER.split(";;")[0]
    dicom = tmp_path / "dicom_case"
    dicom.mkdir()
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        shutil.copy(openslide_fixture(name), dicom / name)
    (tmp_path / "notes.txt").write_text("not a slide")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dicom)), QUrl.fromLocalFile(str(tmp_path / "notes.txt"))])
    window.dropEvent(QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                                Qt.KeyboardModifier.NoModifier))
    assert window.tabs.count() == 1 and window.views()[0].reader.format == "dicom"  # one slide, not two
    assert not dialogs  # the text file is skipped and reported, not an error dialog
    msg = window.statusBar().currentMessage()
    assert "Skipped 2 file(s)" in msg and "notes.txt" in msg and "boxes_1.dcm" in msg


def test_app_settings_in_tests_are_isolated_from_the_users_own() -> None:
    import os

    from pathpt_gui.settings import AppSettings

    path = AppSettings().q.fileName()
    assert path.startswith(os.environ["XDG_CONFIG_HOME"]), path
    assert not path.startswith(os.path.expanduser("~/.config")), path
