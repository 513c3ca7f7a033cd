"""The app's calm look: a dark-grey Fusion palette and a few style-sheet touches."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

WELCOME_HTML = (
    "<div style='color:#9aa0a6'>"
    "<p style='font-size:22px; color:#d0d3d6'>PathPT Studio</p>"
    "<p style='font-size:14px'>Open a whole-slide image with <b>Ctrl+O</b>, or drop slide files here.</p>"
    "<p style='font-size:12px'>Drag to pan · wheel to zoom · 0 fit · 5 / 1 / 2 / 4 for 5× / 10× / 20× / 40×</p>"
    "</div>"
)

STYLE_SHEET = """
QMainWindow, QStackedWidget { background: #2b2d30; }
QLabel#welcome { background: #2b2d30; }
QTabBar::tab { padding: 5px 14px; }
QStatusBar { color: #c8ccd0; }
QToolBar { border: none; spacing: 6px; padding: 2px 6px; }
QToolButton#tabClose { color: #9aa0a6; border: none; padding: 0 2px; font-size: 11px; }
QToolButton#tabClose:hover { color: #ffffff; background: #5a5d62; border-radius: 3px; }
"""


def apply_style(app: QApplication) -> None:
    """Fusion style with a dark-grey palette (the viewer background matches it)."""
    app.setStyle("Fusion")
    pal = QPalette()
    colors = {
        QPalette.ColorRole.Window: QColor(49, 51, 54),
        QPalette.ColorRole.WindowText: QColor(220, 222, 224),
        QPalette.ColorRole.Base: QColor(36, 38, 41),
        QPalette.ColorRole.AlternateBase: QColor(44, 46, 49),
        QPalette.ColorRole.ToolTipBase: QColor(36, 38, 41),
        QPalette.ColorRole.ToolTipText: QColor(220, 222, 224),
        QPalette.ColorRole.Text: QColor(220, 222, 224),
        QPalette.ColorRole.Button: QColor(56, 58, 62),
        QPalette.ColorRole.ButtonText: QColor(220, 222, 224),
        QPalette.ColorRole.Highlight: QColor(74, 128, 196),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 160, 230),
    }
    for role, color in colors.items():
        pal.setColor(role, color)
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 122, 126))
    app.setPalette(pal)
    app.setStyleSheet(STYLE_SHEET)
