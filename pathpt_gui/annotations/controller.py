"""Wires annotation tools into the main window: the Annotate menu and keys, the panel, and one
`AnnotationLayer` + `AnnotationTools` for the current slide view of the open project."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QInputDialog

from pathpt_engine.annotations.geometry import area_mm2
from pathpt_engine.annotations.qupath import class_names_in, read_qupath, write_qupath
from pathpt_engine.annotations.regions import IGNORE_CLASS, class_color, match_class, region_classes
from pathpt_engine.annotations.review import review_items
from pathpt_engine.errors import PathPTError

from .layer import AnnotationLayer
from .panel import AnnotationPanel
from .tools import AnnotationTools

log = logging.getLogger(__name__)

KEYS = (("move", "Move / Select", ["V", "Esc"]), ("rectangle", "Rectangle", ["R"]), ("ellipse", "Ellipse", ["E"]),
        ("polygon", "Polygon", ["P"]), ("brush", "Brush", ["B"]))


class AnnotationController(QObject):
    """One per main window (`install_annotations`)."""

    def __init__(self, window: Any, ctrl: Any, predictions: Any, dialogs: bool = True) -> None:
        super().__init__(window)
        self.window, self.ctrl, self.predictions, self.dialogs = window, ctrl, predictions, dialogs
        self.panel = AnnotationPanel()
        self.layer: AnnotationLayer | None = None
        self.tools: AnnotationTools | None = None
        self.actions: dict[str, QAction] = {}
        self._build_menu()
        p = self.panel
        p.tool_chosen.connect(self.set_tool)
        p.row_clicked.connect(self.jump_to_region)
        p.review_clicked.connect(self.jump_to_item)
        p.brush_size.valueChanged.connect(lambda v: setattr(self.tools, "brush_px", float(v)) if self.tools else None)
        p.undo_btn.clicked.connect(self.undo)
        p.redo_btn.clicked.connect(self.redo)
        p.delete_btn.clicked.connect(self.delete_selected)
        p.import_btn.clicked.connect(lambda: self.import_geojson())
        p.export_btn.clicked.connect(lambda: self.export_geojson())
        window.current_view_changed.connect(lambda _v: self.rebind())
        ctrl.project_changed.connect(lambda _p: self.rebind())
        ctrl.classes_changed.connect(self._fill_classes)
        ctrl.current_run_changed.connect(lambda _r: self.refresh())
        ctrl.prediction_added.connect(lambda _r, _s: self.refresh())
        self.rebind()

    # ---- menu and keys --------------------------------------------------------------------------------------
    def _build_menu(self) -> None:
        menu = self.window.menuBar().addMenu("&Annotate")
        bar = self.window.menuBar()
        bar.insertMenu(bar.actions()[-1], menu)  # before Help

        def act(name: str, text: str, slot: Any, keys: list[str], local: bool = False) -> QAction:
            a = QAction(text, self.window)
            a.setShortcuts([QKeySequence(k) for k in keys])
            if local:  # only while the slide view has focus (the slide list uses Delete itself)
                a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                self.window.tabs.addAction(a)
            a.triggered.connect(lambda _=False: slot())
            menu.addAction(a)
            self.actions[name] = a
            return a
        for tool, text, keys in KEYS:
            act(tool, f"{text} Tool", lambda t=tool: self.set_tool(t), keys, local="Esc" in keys)
        menu.addSeparator()
        act("finish", "Close Polygon", lambda: self.tools.finish_polygon() if self.tools else None,
            ["Return", "Enter"], local=True)
        act("delete", "Delete Selected Region", self.delete_selected, ["Delete", "Backspace"], local=True)
        act("undo", "Undo Annotation Edit", self.undo, ["Ctrl+Alt+Z"])
        act("redo", "Redo Annotation Edit", self.redo, ["Ctrl+Alt+Shift+Z"])
        menu.addSeparator()
        act("import", "Import QuPath GeoJSON…", lambda: self.import_geojson(), [])
        act("export", "Export QuPath GeoJSON…", lambda: self.export_geojson(), [])

    # ---- binding to the current slide -----------------------------------------------------------------------
    def rebind(self) -> None:
        if self.tools is not None:
            self.tools.detach()
            self.tools = None
        if self.layer is not None:
            self.layer.deleteLater()
            self.layer = None
        view = self.window.current_view()
        proj = self.ctrl.project
        sid = self.predictions.slide_id_of(view) if view is not None else ""
        self._fill_classes()
        if not sid or proj is None or self.ctrl.classset() is None:
            self.panel.status.setText("Open a slide of the project (with classes) to annotate it.")
            self.refresh()
            return
        self.layer = AnnotationLayer(proj, sid, self)
        self.layer.changed.connect(self.refresh)
        self.layer.error.connect(lambda text: self.ctrl.message.emit("error", text))
        self.tools = AnnotationTools(view, self.layer, self.current_class, self.colors,
                                     lambda: self.predictions.current_scores(), self)
        self.tools.brush_px = float(self.panel.brush_size.value())
        self.panel.status.setText(f"Slide {sid}: draw regions; each edit is saved in the project at once.")
        self.set_tool("move")
        self.refresh()

    def _fill_classes(self) -> None:
        cs = self.ctrl.classset()
        names = list(region_classes(cs)) if cs is not None else []
        self.panel.set_classes(names, self.colors())

    def current_class(self) -> str:
        return self.panel.class_combo.currentText() or IGNORE_CLASS

    def colors(self) -> dict[str, str]:
        cs = self.ctrl.classset()
        return {n: class_color(cs, n) for n in region_classes(cs)} if cs is not None else {}

    # ---- actions ----------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        if self.tools is not None:
            self.tools.set_tool(tool)
        self.panel.set_tool(tool)

    def undo(self) -> None:
        if self.layer is not None and (text := self.layer.undo()):
            self.ctrl.message.emit("info", f"undid: {text}")

    def redo(self) -> None:
        if self.layer is not None and (text := self.layer.redo()):
            self.ctrl.message.emit("info", f"redid: {text}")

    def delete_selected(self) -> None:
        if self.layer is not None:
            self.layer.delete()

    def import_geojson(self, path: str | Path | None = None, mapping: dict[str, str] | None = None) -> int:
        """Add a QuPath GeoJSON file's regions to the current slide (unknown class names are asked for)."""
        if self.layer is None:
            return 0
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.window, "Import QuPath GeoJSON", "",
                                                  "GeoJSON (*.geojson *.json *.gz)")
            if not path:
                return 0
        cs = self.ctrl.classset()
        try:
            mapping = dict(mapping or {})
            if self.dialogs:
                mapping.update(self._ask_mapping(cs, class_names_in(path), mapping))
            report = read_qupath(path, self.layer.slide_id, cs, mapping)
            n = self.layer.store.add_many(report.regions)
        except PathPTError as exc:
            self.ctrl.message.emit("error", " ".join(str(exc).split()))
            return 0
        self.layer.reload()
        self.ctrl.message.emit("info", f"{Path(path).name}: imported {n} region(s) ({report.summary()})")
        return n

    def _ask_mapping(self, cs: Any, names: list[str], given: dict[str, str]) -> dict[str, str]:
        out = {}
        targets = list(region_classes(cs))
        for name in names:
            if name in given or match_class(cs, name) is not None:
                continue
            choice, ok = QInputDialog.getItem(self.window, "Map class", f"QuPath class {name!r} is not a project "
                                              "class. Import its regions as:", targets, 0, False)
            if ok:
                out[name] = choice
        return out

    def export_geojson(self, path: str | Path | None = None) -> Path | None:
        if self.layer is None:
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.window, "Export QuPath GeoJSON",
                                                  f"{self.layer.slide_id}.geojson", "GeoJSON (*.geojson)")
            if not path:
                return None
        try:
            out = write_qupath(path, self.layer.regions, self.ctrl.classset())
        except (PathPTError, OSError) as exc:
            self.ctrl.message.emit("error", f"{path}: cannot write ({exc})")
            return None
        self.ctrl.message.emit("info", f"wrote {len(self.layer.regions)} region(s) to {out}")
        return out

    # ---- list, review, jumps --------------------------------------------------------------------------------
    def refresh(self) -> None:
        layer = self.layer
        self.actions["undo"].setEnabled(bool(layer and layer.can_undo()))
        self.actions["redo"].setEnabled(bool(layer and layer.can_redo()))
        self.panel.undo_btn.setEnabled(self.actions["undo"].isEnabled())
        self.panel.redo_btn.setEnabled(self.actions["redo"].isEnabled())
        if layer is None:
            self.panel.set_rows([], None)
            self.panel.set_review([])
            return
        scores = self.predictions.current_scores()
        rec = next((s for s in self.ctrl.project.slides.list() if s.slide_id == layer.slide_id), None)
        mpp = rec.mpp if rec is not None and rec.mpp else (None, None)
        rows = []
        for r in layer.regions:
            mm2 = area_mm2(r.geometry, *mpp)
            tiles = "—"
            if scores is not None and len(scores.coords):
                from pathpt_engine.annotations.coverage import tile_counts

                tiles = str(tile_counts(r.geometry, scores.coords, scores.tile_size_level0))
            rows.append((r.region_id, r.class_name, f"{mm2:.4f}" if mm2 is not None else "?", tiles, r.kind))
        self.panel.set_rows(rows, layer.selected)
        self.panel.set_review(self.review(scores))

    def review(self, scores: Any) -> list[Any]:
        if scores is None or self.layer is None or not len(scores.coords):
            return []
        return review_items(scores.coords, int(scores.tile_size_level0), scores.probs, scores.class_names,
                            self._zeroshot_probs(scores), self.layer.regions, k=15)

    def _zeroshot_probs(self, scores: Any) -> np.ndarray | None:
        """Tile probabilities of the latest zero-shot run for this slide, when it has the same tiles."""
        proj = self.ctrl.project
        try:
            runs = [r for r in proj.runs.list() if r.recipe == "zeroshot" and r.status == "done"]
            if not runs or runs[-1].run_id == self.ctrl.current_run:
                return None
            zs = self.ctrl.tile_scores(self.layer.slide_id, runs[-1].run_id)
        except (PathPTError, AttributeError, OSError) as exc:
            log.debug("no zero-shot scores: %s", exc)
            return None
        if zs is None or np.shape(zs.coords) != np.shape(scores.coords) or not np.array_equal(zs.coords, scores.coords):
            return None
        return zs.probs

    def jump_to_region(self, region_id: str) -> None:
        if self.layer is None or (r := self.layer.region(region_id)) is None:
            return
        self.layer.select(region_id)
        x0, y0, x1, y1 = r.geometry.bounds()
        self._jump(x0, y0, x1 - x0, y1 - y0)

    def jump_to_item(self, item: Any) -> None:
        if item.region_id and self.layer is not None:
            self.layer.select(item.region_id)
        self._jump(item.x, item.y, item.w, item.h)

    def _jump(self, x: float, y: float, w: float, h: float) -> None:
        view = self.window.current_view()
        if view is None:
            return
        span = max(w, h, 1.0) * 2.0
        side = max(1, min(view.width(), view.height()))
        view.model.set_view(x + w / 2, y + h / 2, min(4.0, side / span))


def install_annotations(window: Any, ctrl: Any, predictions: Any, dialogs: bool = True) -> AnnotationController:
    """Add the Annotate menu, keys and the Annotations panel (docked beside Prediction) to `window` (once)."""
    existing = getattr(window, "annotations", None)
    if isinstance(existing, AnnotationController):
        return existing
    ac = AnnotationController(window, ctrl, predictions, dialogs)
    window.annotations = ac
    dock = window.add_panel(ac.panel, "Annotations", Qt.DockWidgetArea.RightDockWidgetArea)
    beside = predictions.parentWidget()
    if isinstance(beside, QDockWidget):
        window.tabifyDockWidget(beside, dock)
    ac.dock = dock
    return ac
