"""Hooks the few-shot workflow into the main window: controller, docked panels, the Project menu, dialogs.

`install_workflow(window)` is all the app calls; it returns the `Workflow` that owns everything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from pathpt_engine.colors import class_rgb
from pathpt_engine.errors import PathPTError
from pathpt_engine.export.png import OverlayStyle
from pathpt_engine.workflow.export import ExportOptions

from ..project_controller import ProjectController
from .classes import ClassesPanel
from .log import LogPanel, QtLogHandler
from .predictions import PredictionPanel
from .slides import SlidesPanel
from .training import TrainingPanel

log = logging.getLogger(__name__)
Left, Right, Bottom = (Qt.DockWidgetArea.LeftDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea,
                       Qt.DockWidgetArea.BottomDockWidgetArea)


class Workflow(QObject):
    """Owns the controller and the panels of one main window."""

    def __init__(self, window: Any, dialogs: bool = True) -> None:
        super().__init__(window)
        self.window, self.dialogs = window, dialogs
        self.ctrl = ProjectController(self, getattr(getattr(window, "settings", None), "q", None))
        self.slides = SlidesPanel(self.ctrl)
        self.classes = ClassesPanel(self.ctrl)
        self.training = TrainingPanel(self.ctrl)
        self.predictions = PredictionPanel(self.ctrl, window)
        self.log_panel = LogPanel()
        self.docks = {
            "slides": window.add_panel(self.slides, "Slides", Left),
            "classes": window.add_panel(self.classes, "Classes", Left),
            "training": window.add_panel(self.training, "Training", Right),
            "predictions": window.add_panel(self.predictions, "Prediction", Right),
            "log": window.add_panel(self.log_panel, "Log", Bottom),
        }
        window.tabifyDockWidget(self.docks["slides"], self.docks["classes"])
        self.docks["slides"].raise_()
        window.tabifyDockWidget(self.docks["training"], self.docks["predictions"])
        self.docks["training"].raise_()
        window.resizeDocks([self.docks["slides"], self.docks["training"]], [470, 420], Qt.Orientation.Horizontal)
        window.resizeDocks([self.docks["log"]], [110], Qt.Orientation.Vertical)
        self.handler = QtLogHandler()
        self.handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        self.handler.bridge.record.connect(self._log_record)
        logging.getLogger("pathpt_engine").addHandler(self.handler)
        self.ctrl.message.connect(self._message)
        self.ctrl.job_failed.connect(self._job_failed)
        self.ctrl.project_changed.connect(self._project_changed)
        self.ctrl.labels_changed.connect(self._update_undo)
        self.slides.open_requested.connect(self.open_slide)
        self.predictions.open_requested.connect(self._suggested)
        self.ctrl.pixel_size_needed.connect(self._ask_pixel_sizes)
        self.lock_banner = self._lock_banner()
        self.ctrl.lock_changed.connect(self._show_lock)
        self.pixel_size_prompt = self._pixel_size_dialog  # slide_id -> µm/px or None (tests replace it)
        self._build_menu()
        from ..annotations import install_annotations  # regions, tile corrections, where to look next

        self.annotations = install_annotations(window, self.ctrl, self.predictions, dialogs)
        window.installEventFilter(self)

    # ---- menu -------------------------------------------------------------------------------------------
    def _build_menu(self) -> None:
        bar = self.window.menuBar()
        menu = bar.addMenu("&Project")
        bar.insertMenu(bar.actions()[1], menu)
        self.actions: dict[str, QAction] = {}

        def act(name: str, text: str, slot: Any, key: Any = None) -> QAction:
            a = QAction(text, self.window)
            if key is not None:
                a.setShortcut(QKeySequence(key))
            a.triggered.connect(lambda _=False: self._guard(slot))
            menu.addAction(a)
            self.actions[name] = a
            return a
        act("new", "&New Project…", self.new_project, "Ctrl+Shift+N")
        act("open", "&Open Project…", self.choose_project, "Ctrl+Shift+O")
        self.recent_menu = menu.addMenu("Recent Projects")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        menu.addSeparator()
        act("add_slides", "Add &Slides…", self.add_slides)
        act("add_folder", "Add Slide &Folder…", self.add_folder)
        act("relink", "&Relink Moved Slides…", self.relink)
        act("import_labels", "&Import Labels CSV…", self.import_labels)
        menu.addSeparator()
        act("undo", "&Undo Label Change", self.ctrl.undo, QKeySequence.StandardKey.Undo)
        act("redo", "&Redo Label Change", self.ctrl.redo, "Ctrl+Shift+Z")
        menu.addSeparator()
        act("suggest", "Suggest &Next Slide to Label", self.predictions.suggest, "Ctrl+N")
        act("export", "&Export Results…", self.export_dialog, "Ctrl+E")
        act("import_geojson", "Show QuPath &GeoJSON on Slide…", self.choose_geojson)
        self._update_undo()

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.ctrl.recent_projects():
            self.recent_menu.addAction(p, lambda p=p: self._guard(self.open_project, p))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _update_undo(self, *_: Any) -> None:
        proj = self.ctrl.project
        self.actions["undo"].setEnabled(bool(proj and proj.labels.can_undo()))
        self.actions["redo"].setEnabled(bool(proj and proj.labels.can_redo()))

    # ---- actions ----------------------------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except (PathPTError, ValueError) as exc:
            self._message("error", str(exc))
            self._dialog("PathPT Studio", str(exc))
            return None

    def new_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "New project: choose an empty folder")
        if folder:
            self.ctrl.create_project(folder)
            from pathpt_engine.prompts.classsets import load_classset

            if self.ctrl.classset() is None:
                self.ctrl.set_classset(load_classset("ucs"))

    def choose_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open project folder")
        if folder:
            self.open_project(folder)

    def open_project(self, folder: str | Path) -> Any:
        """Open a project; a damaged database gets a dialog offering a recovered copy (never written to)."""
        from pathpt_engine.errors import ProjectDamaged

        try:
            return self.ctrl.open_project(folder)
        except ProjectDamaged as exc:
            return self._open_damaged(folder, exc)

    def _open_damaged(self, folder: str | Path, exc: Any) -> Any:
        from pathpt_engine.project.repair import integrity_problems, recover_copy

        problems = integrity_problems(Path(exc.db_path)) or exc.problems
        shown = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        text = (f"{exc.db_path} is damaged. PRAGMA integrity_check found {len(problems)} problem(s): {shown}.\n\n"
                "The damaged file has not been changed and will not be. Make a recovered copy beside it (the rows "
                "that can still be read) and open that?")
        self._message("error", f"{exc.db_path}: damaged project database ({len(problems)} integrity problem(s))")
        if not self._confirm("Damaged project database", text):
            return None
        report = recover_copy(exc.db_path)
        project = self.ctrl.open_project(folder, db_name=report.path.name)
        self._message("warning", f"opened {report.summary()}; the damaged {Path(exc.db_path).name} is kept as it "
                                 f"was. To keep using the copy, rename it to {Path(exc.db_path).name}.")
        return project

    def add_slides(self) -> None:
        from ..main_window import SLIDE_FILTER

        files, _ = QFileDialog.getOpenFileNames(self.window, "Add slides", "", SLIDE_FILTER)
        if files:
            self.ctrl.add_slides(files)

    def add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Add every slide under a folder")
        if folder:
            self.ctrl.add_folder(folder)

    def relink(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Folder where the moved slides are now")
        if folder:
            self.ctrl.relink(folder)

    def import_labels(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "Labels CSV (slide_id,label[,split])", "",
                                              "CSV (*.csv);;All files (*)")
        if path:
            self.ctrl.import_labels(path)

    def export_options(self, out_dir: str | Path, all_slides: bool = True) -> ExportOptions:
        """Export settings taken from the current overlay (mode, colormap, opacity)."""
        view = self.window.current_view()
        mode = self.predictions.mode.currentData() or "argmax"
        ids = None if all_slides else tuple(s for s in [self.predictions.slide_id_of(view)] if s)
        ov = view.overlay if view is not None else None
        style = OverlayStyle(mode, ov.colormap if ov else "viridis", ov.opacity if ov else 0.45)
        return ExportOptions(Path(out_dir), style=style, slide_ids=ids)

    def export_dialog(self) -> None:
        """Ctrl+E: the export dialog (slides, run, layer, look, resolution, formats), remembered per project."""
        from ..export_dialog import make_export_dialog, start_export

        dlg = make_export_dialog(self)
        self.last_export_dialog = dlg
        if dlg.exec():
            self._guard(start_export, self, dlg.choices())

    def choose_geojson(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self.window, "QuPath GeoJSON (tiles with measurements)", "",
                                              "GeoJSON (*.geojson *.json);;All files (*)")
        if path:
            self.show_geojson(path)

    def show_geojson(self, path: str | Path) -> bool:
        """Show the tile probabilities of a GeoJSON file (ours or edited in QuPath) on the current slide.

        The file is read in the worker (streamed, with progress, cancel and a memory cap); its errors reach the
        user as one line. A file stating another slide id, or with tiles outside this slide, is shown only after
        the user agrees. Returns whether the read started.
        """
        from pathpt_engine.export.geojson_stream import read_geojson_job

        view = self.window.current_view()
        if view is None:
            raise PathPTError("open the slide first, then show its GeoJSON on it")
        return self.ctrl.run_job("Read GeoJSON", lambda c: read_geojson_job(path, c),
                                 lambda got: self._guard(self._apply_geojson, path, got, view))

    def _apply_geojson(self, path: str | Path, got: Any, view: Any) -> Any:
        from pathpt_engine.export.geojson_stream import check_fits_slide

        doc = got.imported
        if view not in self.window.views():
            raise PathPTError(f"{path}: the slide view was closed while the GeoJSON was read")
        if doc.scores is None:
            raise PathPTError(f"{path}: no tile objects with class probabilities to show")
        slide_id = self.predictions.slide_id_of(view) or view.reader.path.stem
        problem = check_fits_slide(doc.scores, got.stated_slide_id, slide_id, tuple(view.reader.dimensions))
        if problem and not self._confirm("GeoJSON of another slide?", f"{path}: {problem}. Show it anyway?"):
            self._message("warning", f"{path} not shown: {problem}")
            return None
        cs = self.ctrl.classset()
        colors = {c.name: c.color for c in cs.classes} if cs else {}
        rgb = class_rgb(doc.scores.class_names, colors)  # unset classes: the export palette
        view.overlay.set_tile_scores(doc.scores, None, rgb)
        pred = f"; slide call {doc.prediction.predicted}" if doc.prediction else ""
        self.ctrl.info(f"showing {len(doc.scores.coords)} tiles from {path}{pred}")
        return doc

    def open_slide(self, slide_id: str) -> Any:
        proj = self.ctrl.project
        if proj is None:
            return None
        rec = proj.slides.get(slide_id)
        if not rec.exists:
            self._dialog("Slide moved", f"{rec.path} no longer exists. Use Project › Relink Moved Slides… to "
                                        "point the project at its new folder.")
            return None
        view = self.window.open_slide(rec.path, remember=False)
        if view is not None and rec.mpp is not None and view.reader.mpp is None:
            view.set_mpp_override(rec.mpp)  # the pixel size the user gave for this slide
        self.predictions.refresh()
        return view

    def _lock_banner(self) -> Any:
        """The read-only banner: who holds the project, and Take over."""
        from PySide6.QtWidgets import QLabel, QPushButton, QToolBar

        bar = QToolBar("Project lock", self.window)
        bar.setMovable(False)
        bar.setStyleSheet("QToolBar { background: #5c3b12; } QLabel { color: #ffd9a0; padding: 4px 8px; }")
        bar.label = QLabel()  # type: ignore[attr-defined]
        bar.addWidget(bar.label)  # type: ignore[attr-defined]
        button = QPushButton("Take over")
        button.setToolTip("Open this project for writing here (when the other window has stopped)")
        button.clicked.connect(self._take_over)
        bar.addWidget(button)
        self.window.addToolBar(Qt.ToolBarArea.TopToolBarArea, bar)
        bar.setVisible(False)
        return bar

    def _show_lock(self, holder: str) -> None:
        self.lock_banner.label.setText(f"Read-only: {holder}." if holder else "")
        self.lock_banner.setVisible(bool(holder))

    def _take_over(self) -> None:
        if self.ctrl.take_over():
            return
        if self._confirm("Take over the project?", f"{self.ctrl.session.locked_by}, and it still seems to run. "
                         "Take over anyway? That window becomes read-only and says so; changes it makes after "
                         "that are not saved."):
            self.ctrl.take_over(force=True)
        else:
            self.ctrl.message.emit("warning", "not taken over: the other window still holds the project")

    def _ask_pixel_sizes(self, slide_ids: list[str]) -> None:
        """Ask for each slide's pixel size (once, when it joins); Cancel leaves it unknown."""
        for sid in slide_ids:
            value = self.pixel_size_prompt(sid)
            if value is None:
                continue
            try:
                self.ctrl.set_slide_mpp(sid, value)
            except PathPTError as exc:
                self.ctrl.message.emit("error", str(exc))
            view = next((v for v in self.window.views() if v.reader.path == self.ctrl.project.slides.get(sid).path),
                        None)
            if view is not None and view.reader.mpp is None:
                view.set_mpp_override((value, value))

    def _pixel_size_dialog(self, slide_id: str) -> float | None:
        if not self.dialogs:
            return None
        from PySide6.QtWidgets import QInputDialog

        value, ok = QInputDialog.getDouble(
            self.window, "Pixel size unknown",
            f"{slide_id}: the file states no plausible pixel size.\nMicrometres per pixel at full resolution "
            "(0.25 for a 40x scan, 0.5 for 20x):", 0.5, 0.05, 20.0, 4)
        return float(value) if ok else None

    def _suggested(self, slide_id: str) -> None:
        self.slides.select(slide_id)
        self.open_slide(slide_id)

    # ---- feedback ---------------------------------------------------------------------------------------
    def _project_changed(self, project: Any) -> None:
        title = "PathPT Studio"
        self.window.setWindowTitle(f"{project.root.name} — {title}" if project is not None else title)
        self._update_undo()
        if project is not None and not self.window.views():
            ids = [r.slide_id for r in project.slides.list() if r.exists]
            if ids:  # show a slide at once rather than the empty welcome page
                self.slides.select(ids[0])
                self.open_slide(ids[0])

    def _log_record(self, level: str, text: str) -> None:
        if level in ("warning", "error", "critical"):
            self.log_panel.append(level, text)

    def _message(self, level: str, text: str) -> None:
        self.log_panel.append(level, text)
        self.window.statusBar().showMessage(text, 8000)

    def _job_failed(self, name: str, text: str) -> None:
        self._dialog(f"{name} failed", text)

    def _confirm(self, title: str, text: str) -> bool:
        """Ask yes/no (modal); without dialogs (tests, headless) the answer is no."""
        if not self.dialogs:
            return False
        answer = QMessageBox.question(self.window, title, text, QMessageBox.StandardButton.Yes
                                      | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _dialog(self, title: str, text: str) -> None:
        if not self.dialogs:
            return
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self.window)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()  # not modal-blocking: the event loop (and a running job) keep going

    def shutdown(self) -> None:
        logging.getLogger("pathpt_engine").removeHandler(self.handler)
        self.ctrl.shutdown()

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False


def install_workflow(window: Any, dialogs: bool = True) -> Workflow:
    """Add the workflow panels and Project menu to `window` (a `MainWindow`)."""
    return Workflow(window, dialogs)
