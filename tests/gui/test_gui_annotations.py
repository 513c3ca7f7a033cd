"""Annotation tools in the viewer (pytest-qt, offscreen): draw (rectangle, ellipse, polygon, brush), select, move,
edit a vertex, delete, undo/redo, Ctrl+click tile correction, a second connection sees every edit at once (what a
killed app leaves), QuPath GeoJSON import/export round trip, keys in Help, where-to-look-next jumps."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gui_fakes import flush_events
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QApplication

pytestmark = pytest.mark.gui

L = Qt.MouseButton.LeftButton
NO = Qt.MouseButton.NoButton


def _mouse(view, kind, x, y, button=L, buttons=None, mods=Qt.KeyboardModifier.NoModifier):
    etype = {"press": QEvent.Type.MouseButtonPress, "move": QEvent.Type.MouseMove,
             "release": QEvent.Type.MouseButtonRelease, "double": QEvent.Type.MouseButtonDblClick}[kind]
    pos = QPointF(x, y)
    held = buttons if buttons is not None else (L if kind in ("press", "move", "double") else NO)
    ev = QMouseEvent(etype, pos, view.mapToGlobal(pos), NO if kind == "move" else button, held, mods)
    QApplication.sendEvent(view, ev)


def _drag(view, a, b, steps=5, mods=Qt.KeyboardModifier.NoModifier):
    _mouse(view, "press", *a, mods=mods)
    for i in range(1, steps + 1):
        _mouse(view, "move", a[0] + (b[0] - a[0]) * i / steps, a[1] + (b[1] - a[1]) * i / steps, mods=mods)
    _mouse(view, "release", *b, mods=mods)


def _polygon(view, points):
    """Click each vertex (press, release) and double-click the last one to close the outline."""
    for x, y in points:
        _mouse(view, "press", x, y)
        _mouse(view, "release", x, y)
    _mouse(view, "double", *points[-1])


@pytest.fixture
def annotating(qtbot, tmp_path, slide_file):
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_gui.annotations import install_annotations
    from pathpt_gui.main_window import MainWindow
    from pathpt_gui.panels.workflow import install_workflow
    from pathpt_gui.settings import AppSettings

    win = MainWindow(AppSettings.at(tmp_path / "settings.ini"))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    wf = install_workflow(win, dialogs=False)
    ac = install_annotations(win, wf.ctrl, wf.predictions, dialogs=False)
    assert install_annotations(win, wf.ctrl, wf.predictions) is ac  # once per window
    wf.ctrl.create_project(tmp_path / "proj")
    wf.ctrl.set_classset(synth_classset(2))
    wf.ctrl.add_slides([slide_file])
    view = win.open_slide(slide_file)
    qtbot.waitExposed(view)
    flush_events()  # let the window settle its size (a resize refits a view that was never moved)
    view.model.set_view(1024, 768, 0.25)  # 4 level-0 px per screen px; view centre = slide centre
    assert view.model.state.scale == 0.25
    assert ac.layer is not None and ac.layer.slide_id == "slide"
    yield win, wf, ac, view
    win.close()
    wf.ctrl.shutdown()


def _stored(wf):
    return wf.ctrl.project.annotations.list("slide")


def test_draw_edit_delete_undo_redo_and_reopen(annotating, tmp_path):
    win, wf, ac, view = annotating
    st = view.model.state
    ac.set_tool("rectangle")
    assert view.cursor().shape() == Qt.CursorShape.CrossCursor
    _drag(view, (100, 100), (300, 250))
    (rect,) = _stored(wf)
    assert rect.kind == "rectangle" and rect.class_name == ac.current_class() == wf.ctrl.classset().class_names[1]
    x0, y0 = st.screen_to_slide(100, 100)
    x1, y1 = st.screen_to_slide(300, 250)
    assert rect.geometry.bounds() == pytest.approx((x0, y0, x1, y1), abs=1e-6)
    assert rect.geometry.area() == pytest.approx(800 * 600)
    ac.panel.class_combo.setCurrentText("ignore")
    ac.set_tool("ellipse")
    _drag(view, (400, 100), (500, 200))
    ac.set_tool("polygon")
    _polygon(view, [(100, 400), (250, 380), (220, 500), (150, 520)])
    ac.panel.class_combo.setCurrentText("normal")
    ac.set_tool("brush")
    ac.panel.brush_size.setValue(20)
    _drag(view, (600, 400), (700, 450), steps=10)
    kinds = [(r.kind, r.class_name) for r in _stored(wf)]
    assert kinds == [("rectangle", rect.class_name), ("ellipse", "ignore"), ("polygon", "ignore"), ("brush", "normal")]
    poly = _stored(wf)[2].geometry.parts[0].shell
    assert len(poly) == 4 and poly[0] == pytest.approx(st.screen_to_slide(100, 400))
    brush = _stored(wf)[3].geometry
    stroke = np.hypot(100, 50) * 4  # a 20-px round brush along (600,400)->(700,450), 4 level-0 px per screen px
    assert brush.area() == pytest.approx(stroke * 20 * 4 + np.pi * (10 * 4) ** 2, rel=0.02)
    # region list: class, area mm2 (mpp 0.25), tool
    assert ac.panel.table.rowCount() == 4
    assert ac.panel.table.item(0, 1).text() == f"{800 * 600 * 0.25 ** 2 * 1e-6:.4f}"
    # move: select the rectangle and drag it 50 screen px right
    ac.set_tool("move")
    _drag(view, (200, 200), (250, 200))
    moved = wf.ctrl.project.annotations.get(rect.region_id)
    assert moved.geometry.bounds()[0] == pytest.approx(x0 + 200) and ac.layer.selected == rect.region_id
    # edit a vertex: drag the rectangle's first corner (now at screen (150, 100)) up-left
    _drag(view, (150, 100), (130, 80))
    shell = wf.ctrl.project.annotations.get(rect.region_id).geometry.parts[0].shell
    assert shell[0] == pytest.approx(st.screen_to_slide(130, 80)) and shell[2] == pytest.approx(
        st.screen_to_slide(350, 250))
    # a vertex drag that would make the outline cross itself is refused and nothing changes
    errors = []
    ac.layer.error.connect(errors.append)
    _drag(view, (130, 80), (400, 200))
    assert errors and "crosses itself" in errors[0]
    assert wf.ctrl.project.annotations.get(rect.region_id).geometry.parts[0].shell[0] == pytest.approx(
        st.screen_to_slide(130, 80))
    # undo twice (vertex, move), redo once
    ac.actions["undo"].trigger()
    ac.actions["undo"].trigger()
    assert wf.ctrl.project.annotations.get(rect.region_id).geometry.same_as(rect.geometry)
    ac.actions["redo"].trigger()
    assert wf.ctrl.project.annotations.get(rect.region_id).geometry.bounds()[0] == pytest.approx(x0 + 200)
    # delete the selected region, undo brings it back in place
    ac.actions["delete"].trigger()
    assert [r.kind for r in _stored(wf)] == ["ellipse", "polygon", "brush"]
    ac.actions["undo"].trigger()
    assert [r.kind for r in _stored(wf)] == ["rectangle", "ellipse", "polygon", "brush"]
    # every edit is already committed: a second connection (what a killed app leaves) sees all of it
    from pathpt_engine.project import Project

    with Project.open(tmp_path / "proj") as again:
        assert [r.region_id for r in again.annotations.list("slide")] == [r.region_id for r in _stored(wf)]
        assert again.annotations.get(rect.region_id).geometry.bounds()[0] == pytest.approx(x0 + 200)


def test_keys_in_menu_and_help(annotating):
    from pathpt_gui import menus

    win, wf, ac, view = annotating
    keys = {name: [s.toString() for s in ac.actions[name].shortcuts()] for name in ac.actions}
    assert keys["rectangle"] == ["R"] and keys["ellipse"] == ["E"] and keys["polygon"] == ["P"]
    assert keys["brush"] == ["B"] and keys["move"] == ["V", "Esc"] and "Del" in keys["delete"]
    for text in ("R, E, P, B", "Esc", "Delete", "Ctrl+click"):
        assert text in menus.SHORTCUTS_HTML
    ac.actions["rectangle"].trigger()
    assert ac.tools.tool == "rectangle" and ac.panel.tool_buttons["rectangle"].isChecked()
    ac.actions["move"].trigger()
    assert ac.tools.tool == "move"


def _scores(view, class_names):
    from pathpt_engine.results import TileScores

    t = 256
    coords = np.array([[x, y] for y in range(0, 1536, t) for x in range(0, 2048, t)], dtype=np.int64)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(class_names)), size=len(coords)).astype(np.float32)
    return TileScores("slide", coords, probs, t, tuple(class_names))


def test_tile_correction_tile_counts_and_review_jump(annotating, monkeypatch):
    win, wf, ac, view = annotating
    names = wf.ctrl.classset().class_names
    scores = _scores(view, names)
    monkeypatch.setattr(wf.predictions, "current_scores", lambda: scores)
    st = view.model.state
    sx, sy = st.slide_to_screen(256 * 3 + 10, 256 * 2 + 10)
    _mouse(view, "press", sx, sy, mods=Qt.KeyboardModifier.ControlModifier)
    _mouse(view, "release", sx, sy, mods=Qt.KeyboardModifier.ControlModifier)
    assert wf.ctrl.project.annotations.tile_corrections("slide") == {(768, 512): ac.current_class()}
    _mouse(view, "press", sx, sy, mods=Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert wf.ctrl.project.annotations.tile_corrections("slide") == {}
    ac.actions["undo"].trigger()
    assert wf.ctrl.project.annotations.tile_corrections("slide") == {(768, 512): ac.current_class()}
    from pathpt_engine.annotations import rectangle

    ac.layer.add(rectangle(0, 0, 512, 512), names[2], "rectangle")
    ac.refresh()
    assert ac.panel.table.item(0, 2).text() == "4"  # tiles covered >= 50%
    assert ac.panel.review.count() >= 15
    first = ac.panel.review.item(0).data(Qt.ItemDataRole.UserRole)
    ac.panel.review_clicked.emit(first)
    cx, cy = view.model.state.center
    assert cx == pytest.approx(first.x + first.w / 2) and cy == pytest.approx(first.y + first.h / 2)
    ac.panel.row_clicked.emit(ac.layer.regions[0].region_id)
    assert view.model.state.center == pytest.approx((256, 256))


def test_geojson_import_export_round_trip(annotating, tmp_path):
    win, wf, ac, view = annotating
    sub = wf.ctrl.classset().subtype_names
    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "3f2b8c1e-7d4a-4e5b-9c0d-1a2b3c4d5e6f",
         "geometry": {"type": "Polygon", "coordinates": [
             [[100, 200], [900.5, 200], [900.5, 700.25], [100, 700.25], [100, 200]],
             [[300, 300], [300, 400], [400, 400], [400, 300], [300, 300]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
        {"type": "Feature", "geometry": {"type": "MultiPolygon", "coordinates": [
            [[[1000, 1000], [1100, 1000], [1100, 1100], [1000, 1000]]],
            [[[1200, 1000], [1300, 1000], [1300, 1100], [1200, 1000]]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Ignore*", "color": [9, 9, 9]}}}]}
    src = tmp_path / "in.geojson"
    src.write_text(json.dumps(doc), encoding="utf-8")
    assert ac.import_geojson(src) == 0  # 'Tumor' unknown: refused, nothing stored
    assert _stored(wf) == []
    assert ac.import_geojson(src, {"Tumor": sub[0]}) == 2
    assert [r.class_name for r in _stored(wf)] == [sub[0], "ignore"]
    assert ac.panel.table.rowCount() == 2
    out = ac.export_geojson(tmp_path / "out.geojson")
    got = json.loads(out.read_text())
    assert [f["geometry"] for f in got["features"]] == [f["geometry"] for f in doc["features"]]


_DRAW_AND_DIE = r"""
import os, sys
sys.path.insert(0, sys.argv[3])
from pathpt_gui._none_guard import protect_none
protect_none()
from PySide6.QtWidgets import QApplication
app = QApplication([])
from test_gui_annotations import _drag, _polygon
from pathpt_gui.main_window import MainWindow
from pathpt_gui.panels.workflow import install_workflow
from pathpt_gui.settings import AppSettings
win = MainWindow(AppSettings.at(sys.argv[2] + "/settings.ini"))
win.resize(1400, 900)
win.show()
wf = install_workflow(win, dialogs=False)
wf.ctrl.open_project(sys.argv[1])
view = win.open_slide(wf.ctrl.project.slides.get("slide").path)
app.processEvents()
view.model.set_view(1024, 768, 0.25)
ac = wf.annotations
ac.set_tool("rectangle")
_drag(view, (100, 100), (300, 250))
ac.set_tool("polygon")
_polygon(view, [(400, 400), (500, 380), (480, 500)])
print("drawn", len(wf.ctrl.project.annotations.list("slide")), flush=True)
os.kill(os.getpid(), 9)
"""


def test_kill_minus_9_after_drawing_then_reopen(tmp_path, slide_file):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from pathpt_engine.project import Project
    from pathpt_engine.prompts.classsets import synth_classset

    with Project.create(tmp_path / "proj") as p:
        p.classes.set(synth_classset(2))
        p.slides.add(slide_file)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", _DRAW_AND_DIE, str(tmp_path / "proj"), str(tmp_path),
                           str(Path(__file__).parent)], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert "drawn 2" in proc.stdout
    with Project.open(tmp_path / "proj") as again:
        kinds = [r.kind for r in again.annotations.list("slide")]
        assert kinds == ["rectangle", "polygon"]
        assert again.annotations.list("slide")[0].geometry.area() == pytest.approx(800 * 600)


def test_brush_stroke_outline_keeps_its_hole():
    from pathpt_gui.annotations.tools import brush_geometry

    t = np.linspace(0, 2 * np.pi, 73)
    loop = [(500 + 200 * np.cos(a), 500 + 200 * np.sin(a)) for a in t]  # a closed circular stroke
    geom = brush_geometry(loop, 40.0)
    assert len(geom.parts) == 1 and len(geom.parts[0].holes) == 1
    assert geom.area() == pytest.approx(np.pi * (220 ** 2 - 180 ** 2), rel=0.02)  # an annulus
    dot = brush_geometry([(10.0, 10.0)], 8.0)
    assert dot.area() == pytest.approx(np.pi * 16, rel=0.05)


def test_unknown_class_is_mapped_in_a_dialog(annotating, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    win, wf, ac, view = annotating
    sub = wf.ctrl.classset().subtype_names
    asked = []
    monkeypatch.setattr(QInputDialog, "getItem",
                        staticmethod(lambda *a, **k: (asked.append(a[2]) or sub[1], True)))
    ac.dialogs = True
    src = tmp_path / "q.geojson"
    src.write_text(json.dumps({"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [300, 0], [300, 300], [0, 0]]]}, "properties": {"objectType": "annotation",
                                                             "classification": {"name": "Tumor", "color": [1, 2, 3]}}}))
    assert ac.import_geojson(src) == 1
    assert "'Tumor'" in asked[0] and [r.class_name for r in _stored(wf)] == [sub[1]]
