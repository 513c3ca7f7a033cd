"""The Annotations panel: tools, region class, brush size, undo/redo, the slide's regions (class, area in mm²,
tile count; click to jump), QuPath GeoJSON import/export, and "where to look next" (click to jump)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

TOOL_BUTTONS = (("move", "Move", "V"), ("rectangle", "Rect", "R"), ("ellipse", "Ellipse", "E"),
                ("polygon", "Polygon", "P"), ("brush", "Brush", "B"))
COLUMNS = ("Class", "Area (mm²)", "Tiles", "Tool")


class AnnotationPanel(QWidget):
    """Widgets only; the `AnnotationController` fills and connects them."""

    tool_chosen = Signal(str)
    row_clicked = Signal(str)  # region id
    review_clicked = Signal(object)  # ReviewItem

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.status = QLabel("Open a slide of the project to annotate it.")
        self.status.setWordWrap(True)
        lay.addWidget(self.status)
        tools = QHBoxLayout()
        self.tool_group = QButtonGroup(self)
        self.tool_buttons: dict[str, QToolButton] = {}
        for name, text, key in TOOL_BUTTONS:
            b = QToolButton(text=f"{text} ({key})", checkable=True, toolTip=f"{text} tool — key {key}")
            b.clicked.connect(lambda _=False, n=name: self.tool_chosen.emit(n))
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
            tools.addWidget(b)
        self.tool_buttons["move"].setChecked(True)
        lay.addLayout(tools)
        row = QHBoxLayout()
        row.addWidget(QLabel("Class"))
        self.class_combo = QComboBox(toolTip="Class of new regions and of Ctrl+click tile corrections")
        row.addWidget(self.class_combo, 1)
        row.addWidget(QLabel("Brush"))
        self.brush_size = QSpinBox(minimum=4, maximum=400, value=30, suffix=" px",
                                   toolTip="Brush diameter on screen")
        row.addWidget(self.brush_size)
        lay.addLayout(row)
        lay.addLayout(self._edit_row())
        hint = QLabel("Ctrl+click a heatmap tile: set its class · Ctrl+Shift+click: clear · Esc: stop drawing · "
                      "Enter or double-click: close a polygon")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #9aa0a6;")
        lay.addWidget(hint)
        lay.addWidget(self._region_table(), 2)
        box = QGroupBox("Where to look next (least certain, or unlike zero-shot / your regions)")
        bl = QVBoxLayout(box)
        self.review = QListWidget()
        self.review.itemClicked.connect(lambda it: self.review_clicked.emit(it.data(Qt.ItemDataRole.UserRole)))
        bl.addWidget(self.review)
        lay.addWidget(box, 1)

    def _edit_row(self) -> QHBoxLayout:
        edit = QHBoxLayout()
        self.undo_btn = QPushButton("Undo")
        self.redo_btn = QPushButton("Redo")
        self.delete_btn = QPushButton("Delete (Del)")
        self.import_btn = QPushButton("Import GeoJSON…")
        self.export_btn = QPushButton("Export GeoJSON…")
        for b in (self.undo_btn, self.redo_btn, self.delete_btn, self.import_btn, self.export_btn):
            edit.addWidget(b)
        return edit

    def _region_table(self) -> QTableWidget:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.cellClicked.connect(lambda r, _c: self.row_clicked.emit(
            self.table.item(r, 0).data(Qt.ItemDataRole.UserRole)))
        return self.table

    def set_classes(self, names: list[str], colors: dict[str, str]) -> None:
        current = self.class_combo.currentText()
        self.class_combo.clear()
        for n in names:
            self.class_combo.addItem(n)
            self.class_combo.setItemData(self.class_combo.count() - 1, QColor(colors.get(n, "#ffffff")),
                                         Qt.ItemDataRole.DecorationRole)
        if current in names:
            self.class_combo.setCurrentText(current)
        elif len(names) > 1:
            self.class_combo.setCurrentIndex(1)  # the first subtype

    def set_rows(self, rows: list[tuple[str, str, str, str, str]], selected: str | None) -> None:
        """rows: (region id, class, area, tiles, tool)."""
        self.table.setRowCount(len(rows))
        for i, (rid, *cells) in enumerate(rows):
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, rid)
                self.table.setItem(i, j, item)
            if rid == selected:
                self.table.selectRow(i)

    def set_review(self, items: list[Any]) -> None:
        self.review.clear()
        for it in items:
            li = QListWidgetItem(f"{'▣' if it.kind == 'region' else '□'} {it.reason}")
            li.setData(Qt.ItemDataRole.UserRole, it)
            self.review.addItem(li)

    def set_tool(self, tool: str) -> None:
        self.tool_buttons[tool].setChecked(True)
