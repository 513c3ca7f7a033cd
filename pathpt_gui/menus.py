"""Menus, shortcuts and the overlay toolbar of the main window (kept apart so main_window stays small)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QComboBox, QLabel, QMessageBox, QSlider

if TYPE_CHECKING:
    from .main_window import MainWindow

COLORMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "coolwarm", "RdYlBu_r", "jet", "turbo")
MAGNIFICATIONS = ((5, "5"), (10, "1"), (20, "2"), (40, "4"))

SHORTCUTS_HTML = """<table cellpadding=3>
<tr><td><b>Drag</b></td><td>pan</td></tr><tr><td><b>Wheel</b></td><td>zoom around the cursor</td></tr>
<tr><td><b>Double-click</b> / Shift+double-click</td><td>zoom in / out 2×</td></tr>
<tr><td><b>Arrows</b></td><td>pan a quarter view</td></tr><tr><td><b>+ / −</b></td><td>zoom in / out</td></tr>
<tr><td><b>0</b></td><td>fit slide</td></tr><tr><td><b>5, 1, 2, 4</b></td><td>5×, 10×, 20×, 40×</td></tr>
<tr><td><b>M</b></td><td>overview on/off</td></tr><tr><td><b>O</b></td><td>overlay on/off</td></tr>
<tr><td><b>Ctrl+I</b></td><td>slide properties</td></tr><tr><td><b>Ctrl+O / Ctrl+W</b></td><td>open / close</td></tr>
<tr><td colspan=2><b>Annotate</b> (QuPath keys)</td></tr>
<tr><td><b>V</b> / <b>Esc</b></td><td>move / select regions (Esc stops drawing)</td></tr>
<tr><td><b>R, E, P, B</b></td><td>rectangle, ellipse, polygon, brush</td></tr>
<tr><td><b>Enter</b> / double-click</td><td>close the polygon</td></tr>
<tr><td><b>Delete</b></td><td>delete the selected region</td></tr>
<tr><td><b>Ctrl+click</b> / Ctrl+Shift+click</td><td>set / clear a heatmap tile's class</td></tr>
<tr><td><b>Ctrl+Alt+Z</b> / Ctrl+Alt+Shift+Z</td><td>undo / redo an annotation edit</td></tr>
</table>"""


def _action(win: MainWindow, menu, text: str, slot, shortcut=None, name: str | None = None,  # noqa: ANN001
            checkable: bool = False, checked: bool = False) -> QAction:
    act = QAction(text, win)
    if shortcut is not None:
        act.setShortcuts(shortcut if isinstance(shortcut, list) else [QKeySequence(shortcut)])
    act.setCheckable(checkable)
    if checkable:
        act.setChecked(checked)
    act.triggered.connect(slot)
    menu.addAction(act)
    if name:
        win.actions[name] = act
    return act


def build_menus(win: MainWindow) -> None:
    """File, View, Slide and Help menus plus the overlay toolbar."""
    bar = win.menuBar()
    f = bar.addMenu("&File")
    _action(win, f, "&Open Slides…", win.choose_and_open, QKeySequence.StandardKey.Open, "open")
    win.recent_menu = f.addMenu("Open &Recent")
    win._rebuild_recent()
    _action(win, f, "&Close Slide", win.close_current, QKeySequence.StandardKey.Close, "close")
    f.addSeparator()
    _action(win, f, "&Save View as PNG…", win.save_view_png, "Ctrl+Shift+S", "save_png")
    _action(win, f, "&Preferences…", win.show_preferences, QKeySequence.StandardKey.Preferences, "prefs")
    f.addSeparator()
    _action(win, f, "&Quit", win.close, QKeySequence.StandardKey.Quit, "quit")

    v = bar.addMenu("&View")
    _action(win, v, "Zoom &In", lambda: win.zoom(2.0), [QKeySequence("+"), QKeySequence("="),
                                                         QKeySequence.StandardKey.ZoomIn], "zoom_in")
    _action(win, v, "Zoom &Out", lambda: win.zoom(0.5), [QKeySequence("-"), QKeySequence.StandardKey.ZoomOut],
            "zoom_out")
    _action(win, v, "&Fit Slide", win.fit, "0", "fit")
    mag = v.addMenu("&Magnification")
    win.mag_actions = [_action(win, mag, f"{m}×", lambda _=False, m=m: win.set_magnification(m), key)
                       for m, key in MAGNIFICATIONS]
    v.addSeparator()
    _action(win, v, "Show O&verview", win.toggle_minimap, "M", "minimap", checkable=True, checked=True)
    _action(win, v, "Show Heatmap &Overlay", win.toggle_overlay, "O", "overlay", checkable=True, checked=True)
    _action(win, v, "&Smooth Heatmap", win.set_overlay_smooth, None, "smooth", checkable=True)
    v.addSeparator()
    win.panels_menu = v.addMenu("&Panels")
    win.panels_menu.menuAction().setVisible(False)
    _action(win, v, "F&ull Screen", lambda on: win.showFullScreen() if on else win.showNormal(),
            QKeySequence.StandardKey.FullScreen, "fullscreen", checkable=True)

    s = bar.addMenu("&Slide")
    _action(win, s, "&Properties and Associated Images…", win.show_properties, "Ctrl+I", "properties")
    _action(win, s, "&Next Slide", lambda: win.tabs.setCurrentIndex((win.tabs.currentIndex() + 1)
                                                                    % max(1, win.tabs.count())),
            QKeySequence.StandardKey.NextChild, "next")

    h = bar.addMenu("&Help")
    _action(win, h, "&Keyboard Shortcuts", lambda: QMessageBox.information(win, "Keyboard shortcuts",
                                                                           SHORTCUTS_HTML), "F1", "help")
    _action(win, h, "&About PathPT Studio", lambda: QMessageBox.about(
        win, "About PathPT Studio", "PathPT Studio: few-shot prompt tuning of pathology vision-language "
        "models, with a tiled whole-slide viewer."), None, "about")
    _build_overlay_toolbar(win)


def _build_overlay_toolbar(win: MainWindow) -> None:
    tb = win.heatmap_toolbar = win.addToolBar("Heatmap")
    tb.setObjectName("heatmap-toolbar")
    tb.setMovable(False)
    tb.addWidget(QLabel(" Heatmap opacity "))
    win.opacity_slider = QSlider(Qt.Orientation.Horizontal, minimum=0, maximum=100, value=45)
    win.opacity_slider.setFixedWidth(140)
    win.opacity_slider.valueChanged.connect(win.set_overlay_opacity)
    tb.addWidget(win.opacity_slider)
    tb.addWidget(QLabel("  Colormap "))
    win.cmap_combo = QComboBox()
    win.cmap_combo.addItems(COLORMAPS)
    win.cmap_combo.currentTextChanged.connect(win.set_overlay_colormap)
    tb.addWidget(win.cmap_combo)
    tb.addAction(win.actions["smooth"])
