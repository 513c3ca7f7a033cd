"""The main window: slides in tabs, menus a pathologist expects, status bar, and dock areas for panels.

Later panels (slide list + labels, training, predictions) dock with `MainWindow.add_panel`; they reach the
current slide through `current_view()` and the `current_view_changed` signal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QTabBar,
    QTabWidget,
    QToolButton,
    QWidget,
)

from pathpt_engine.errors import PathPTError
from pathpt_engine.slides import open_slide
from pathpt_engine.slides.discover import expand_paths, file_dialog_filter

from .dialogs import PreferencesDialog, SlidePropertiesDialog
from .imageio import save_png_atomic
from .menus import build_menus
from .settings import AppSettings
from .style import WELCOME_HTML
from .viewer.decor import format_magnification
from .viewer.view import SlideView

log = logging.getLogger(__name__)

SLIDE_FILTER = file_dialog_filter()  # every extension OpenSlide reads, .dcm included


class MainWindow(QMainWindow):
    """Top-level window; owns one `SlideView` per open slide."""

    current_view_changed = Signal(object)  # SlideView | None
    slide_opened = Signal(object)  # SlideView

    def __init__(self, settings: AppSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or AppSettings()
        self.setWindowTitle("PathPT Studio")
        self.open_failures_box: QMessageBox | None = None  # the last "cannot open" message (non-blocking)
        self.resize(1600, 1000)
        self.setAcceptDrops(True)
        self.setDockNestingEnabled(True)
        self.tabs = QTabWidget(documentMode=True, tabsClosable=True, movable=True)
        self.tabs.tabCloseRequested.connect(self.close_tab)
        self.tabs.currentChanged.connect(self._on_current_changed)
        welcome = QLabel(WELCOME_HTML, alignment=Qt.AlignmentFlag.AlignCenter, objectName="welcome")
        self.stack = QStackedWidget()
        self.stack.addWidget(welcome)
        self.stack.addWidget(self.tabs)
        self.setCentralWidget(self.stack)
        self._cursor_label = QLabel()
        self._view_label = QLabel()
        for w in (self._cursor_label, self._view_label):
            self.statusBar().addPermanentWidget(w)
        self.panels_menu = None
        self.actions: dict[str, QAction] = {}
        build_menus(self)
        self._update_actions()

    # slides --------------------------------------------------------------------------------------------
    def views(self) -> list[SlideView]:
        return [self.tabs.widget(i) for i in range(self.tabs.count())]  # type: ignore[misc]

    def current_view(self) -> SlideView | None:
        w = self.tabs.currentWidget()
        return w if isinstance(w, SlideView) else None

    def open_paths(self, paths: list[str | Path]) -> list[SlideView]:
        """Open the slides among `paths` (files or folders: a DICOM folder or an MRXS with its data folder is one
        slide); files that are not slides are listed in the log and the status bar."""
        found = expand_paths(paths)
        for path, why in found.skipped:
            log.warning("skipped %s: %s", path, why)
        if found.skipped:
            names = ", ".join(p.name for p, _ in found.skipped[:3]) + ("…" if len(found.skipped) > 3 else "")
            self.statusBar().showMessage(f"Skipped {len(found.skipped)} file(s) that are not slides: {names} "
                                         f"({found.skipped[0][1]})", 15000)
        failures: list[str] = []
        views = [v for v in (self.open_slide(p, failures=failures) for p in found.slides) if v is not None]
        if failures:
            self._show_open_failures(failures)
        return views

    def _show_open_failures(self, failures: list[str]) -> None:
        """One non-blocking message listing every slide that could not be opened (the others are open)."""
        n = len(failures)
        box = QMessageBox(QMessageBox.Icon.Warning, f"Cannot open {n} slide{'s' if n > 1 else ''}",
                          "\n".join(failures), QMessageBox.StandardButton.Ok, self)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.open_failures_box = box
        box.show()

    def open_slide(self, path: str | Path, remember: bool = True,
                   failures: list[str] | None = None) -> SlideView | None:
        """Open a slide in a new tab (or switch to it); a bad file shows one dialog (or, given `failures`, is
        added to that list) and returns None.

        Args:
            path: the slide file.
            remember: add it to the recent-files list.
            failures: collect the error instead of showing it (opening several slides: one message at the end).
        """
        path = Path(path)
        for i, view in enumerate(self.views()):
            if view.reader.path.resolve() == path.resolve():
                self.tabs.setCurrentIndex(i)
                return view
        try:
            reader = open_slide(path)
        except PathPTError as exc:
            log.warning("%s", exc)
            if failures is not None:
                failures.append(str(exc))
            else:
                QMessageBox.critical(self, "Cannot open slide", str(exc))
            return None
        view = SlideView(reader, cache_bytes=self.settings.cache_mb * 2**20,
                         threads=self.settings.reader_threads)
        view.overlay.load_ground_truth(path)  # a synthetic cohort's tumour mask, outlined when present
        self._apply_overlay_settings(view)
        view.cursor_moved.connect(self._show_cursor)
        view.view_changed.connect(self._show_view_info)
        view.tile_error.connect(self._on_tile_error)
        view.overlay.changed.connect(lambda _kind, v=view: self._sync_overlay_controls() if v is
                                     self.current_view() else None)
        index = self.tabs.addTab(view, path.name)
        self.tabs.setTabToolTip(index, str(path))
        close = QToolButton(self.tabs, text="✕", autoRaise=True, toolTip="Close slide (Ctrl+W)")
        close.setObjectName("tabClose")
        close.clicked.connect(lambda _=False, v=view: self.close_tab(self.tabs.indexOf(v)))
        self.tabs.tabBar().setTabButton(index, QTabBar.ButtonPosition.RightSide, close)
        self.tabs.setCurrentIndex(index)
        self.stack.setCurrentIndex(1)
        if remember:
            self.settings.add_recent(path)
            self._rebuild_recent()
        self.slide_opened.emit(view)
        view.setFocus()
        return view

    def close_tab(self, index: int) -> None:
        view = self.tabs.widget(index)
        self.tabs.removeTab(index)
        if isinstance(view, SlideView):
            view.shutdown()
            view.deleteLater()
        if self.tabs.count() == 0:
            self.stack.setCurrentIndex(0)
            self._on_current_changed(-1)

    def close_current(self) -> None:
        if self.tabs.count():
            self.close_tab(self.tabs.currentIndex())

    def closeEvent(self, event: object) -> None:  # noqa: N802
        for view in self.views():
            view.shutdown()
        self.settings.sync()
        super().closeEvent(event)  # type: ignore[arg-type]

    # panels --------------------------------------------------------------------------------------------
    def add_panel(self, widget: QWidget, title: str,
                  area: Qt.DockWidgetArea = Qt.DockWidgetArea.LeftDockWidgetArea) -> QDockWidget:
        """Dock a side panel (slide list, training, predictions); it gets a toggle in View › Panels."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if self.panels_menu is not None:
            self.panels_menu.addAction(dock.toggleViewAction())
            self.panels_menu.menuAction().setVisible(True)
        return dock

    # actions -------------------------------------------------------------------------------------------
    def choose_and_open(self) -> None:
        recent = self.settings.recent_files()
        start = str(Path(recent[0]).parent) if recent else ""
        paths, _ = QFileDialog.getOpenFileNames(self, "Open slides", start, SLIDE_FILTER)
        self.open_paths(paths)

    def _rebuild_recent(self) -> None:
        menu = self.recent_menu
        menu.clear()
        files = self.settings.recent_files()
        for f in files:
            act = menu.addAction(Path(f).name)
            act.setToolTip(f)
            act.triggered.connect(lambda _=False, f=f: self.open_slide(f))
        menu.addSeparator()
        clear = menu.addAction("Clear Recent")
        clear.triggered.connect(lambda: (self.settings.clear_recent(), self._rebuild_recent()))
        menu.setEnabled(bool(files))

    def zoom(self, factor: float) -> None:
        if (v := self.current_view()) is not None:
            v.model.zoom_at(factor)

    def fit(self) -> None:
        if (v := self.current_view()) is not None:
            v.model.fit()

    def set_magnification(self, mag: float) -> None:
        v = self.current_view()
        if v is not None and v.model.base_magnification is not None:
            v.model.set_magnification(mag)

    def toggle_minimap(self, on: bool) -> None:
        for v in self.views():
            v.minimap.setVisible(on)

    def toggle_overlay(self, on: bool) -> None:
        if (v := self.current_view()) is not None:
            v.overlay.visible = on

    # the overlay look the user picks is kept between launches (AppSettings) and given to every new slide
    def set_overlay_smooth(self, on: bool) -> None:
        self.settings.overlay_smooth = on
        if (v := self.current_view()) is not None:
            v.overlay.smooth = on

    def set_overlay_opacity(self, percent: int) -> None:
        self.settings.overlay_opacity = percent / 100.0
        if (v := self.current_view()) is not None:
            v.overlay.opacity = percent / 100.0

    def set_overlay_colormap(self, name: str) -> None:
        self.settings.overlay_colormap = name
        if (v := self.current_view()) is not None:
            v.overlay.colormap = name

    def _apply_overlay_settings(self, view: SlideView) -> None:
        ov, st = view.overlay, self.settings
        ov.opacity, ov.smooth = st.overlay_opacity, st.overlay_smooth
        try:
            ov.colormap = st.overlay_colormap
        except ValueError:  # a colormap this matplotlib lacks: keep the default
            log.warning("stored overlay colormap %r unknown; using %s", st.overlay_colormap, ov.colormap)

    def show_properties(self) -> None:
        if (v := self.current_view()) is not None:
            SlidePropertiesDialog(v.reader, self).exec()

    def show_preferences(self) -> None:
        PreferencesDialog(self.settings, self).exec()

    def save_view_png(self) -> None:
        v = self.current_view()
        if v is None:
            return
        default = str(v.reader.path.with_suffix(".view.png"))
        path, _ = QFileDialog.getSaveFileName(self, "Save view as PNG", default, "PNG image (*.png)")
        if path:
            try:
                save_png_atomic(v.grab(), path)
            except PathPTError as exc:
                QMessageBox.critical(self, "Cannot save image", str(exc))
            else:
                self.statusBar().showMessage(f"Saved {path}", 5000)

    # status --------------------------------------------------------------------------------------------
    def _on_current_changed(self, index: int) -> None:
        self._update_actions()
        self._show_view_info()
        self._cursor_label.setText("")
        v = self.current_view()
        self.setWindowTitle(f"{v.reader.path.name} — PathPT Studio" if v else "PathPT Studio")
        self.current_view_changed.emit(v)

    def _update_actions(self) -> None:
        v = self.current_view()
        has_view = v is not None
        for name in ("close", "save_png", "zoom_in", "zoom_out", "fit", "properties"):
            self.actions[name].setEnabled(has_view)
        has_mag = has_view and v.model.base_magnification is not None
        for act in self.mag_actions:
            act.setEnabled(has_mag)
        self._sync_overlay_controls()

    def _sync_overlay_controls(self) -> None:
        """Show the current slide's overlay settings in the toolbar (without feeding them back)."""
        v = self.current_view()
        has = v is not None and v.overlay.grid is not None
        scalar = has and v.overlay.grid.mode == "scalar"
        for w in (self.opacity_slider, self.actions["overlay"], self.actions["smooth"]):
            w.setEnabled(has)
        self.cmap_combo.setEnabled(scalar)  # the toolbar stays shown (greyed out): hiding it shifted the layout
        if v is None:
            return
        for w in (self.opacity_slider, self.cmap_combo):
            w.blockSignals(True)
        self.opacity_slider.setValue(round(v.overlay.opacity * 100))
        if self.cmap_combo.findText(v.overlay.colormap) < 0:
            self.cmap_combo.addItem(v.overlay.colormap)
        self.cmap_combo.setCurrentText(v.overlay.colormap)
        for w in (self.opacity_slider, self.cmap_combo):
            w.blockSignals(False)
        self.actions["overlay"].setChecked(v.overlay.visible)
        self.actions["smooth"].setChecked(v.overlay.smooth)

    def view_info_text(self) -> str:
        """The status bar's view part: magnification, level and zoom of the current view."""
        return self._view_label.text()

    def cursor_text(self) -> str:
        """The status bar's cursor part: slide position in pixels and µm."""
        return self._cursor_label.text()

    def _show_view_info(self) -> None:
        v = self.current_view()
        if v is None:
            self._view_label.setText("")
            return
        mag = format_magnification(v.model.magnification)
        level = v.target_level()
        ds = max(v.layout.levels[level].downsample)
        self._view_label.setText(f"  {mag}  ·  level {level} (÷{ds:.3g})  ·  zoom {v.model.scale:.3g}  ")

    def _show_cursor(self, x: float, y: float) -> None:
        v = self.current_view()
        if v is None:
            return
        w, h = v.model.slide_size
        if not (0 <= x < w and 0 <= y < h):
            self._cursor_label.setText("")
            return
        text = f"x {x:,.0f}  y {y:,.0f} px"
        if v.mpp:  # the slide's own pixel size, or the one given for it in the project
            text += f"  ·  {x * v.mpp[0]:,.1f}, {y * v.mpp[1]:,.1f} µm"
        self._cursor_label.setText(text + "  ")

    def _on_tile_error(self, message: str) -> None:
        self.statusBar().showMessage(f"Some regions could not be read and are shown hatched: {message}", 10000)

    # drag and drop -------------------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        event.acceptProposedAction()
        self.open_paths(paths)

