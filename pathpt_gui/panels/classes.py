"""Classes & prompts editor: load a shipped class set, or edit names, synonyms (prompt class names) and colours.

The first row is the Normal class (explicit, marked); the others are the subtypes, numbered as the 1–9 label
keys. "Apply" validates the table into a `ClassSet` and stores it in the project.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pathpt_engine.errors import PathPTError

from ..project_controller import ProjectController

log = logging.getLogger(__name__)
COLUMNS = ("Key", "Class", "Synonyms (; between)", "Colour")


class ClassesPanel(QWidget):
    def __init__(self, ctrl: ProjectController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctrl = ctrl
        from pathpt_engine.prompts.classsets import list_classsets

        self.sets = QComboBox()
        self.sets.addItems(list_classsets())
        self.sets.setPlaceholderText("choose a set…")
        load = QPushButton("Load set")
        load.clicked.connect(self.load_shipped)
        self.current = QLabel()  # which class set the project uses (the combo only offers shipped ones)
        self.current.setObjectName("classsetInUse")
        top = QHBoxLayout()
        top.addWidget(QLabel("Replace with a shipped set:"))
        top.addWidget(self.sets, 1)
        top.addWidget(load)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setColumnWidth(0, 56)
        self.table.setColumnWidth(1, 130)
        self.table.setColumnWidth(3, 76)
        self.table.horizontalHeaderItem(2).setToolTip("Names the prompts use for the class, separated by ';' "
                                                      "(the first one is the learnable prompt's class name)")
        self.table.horizontalHeaderItem(3).setToolTip("Double-click to choose the colour")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.cellDoubleClicked.connect(self._maybe_color)
        add, remove, apply = QPushButton("Add subtype"), QPushButton("Remove"), QPushButton("Apply")
        add.clicked.connect(self._add_row)
        remove.clicked.connect(self._remove_rows)
        apply.clicked.connect(self.apply)
        bottom = QHBoxLayout()
        for b in (add, remove):
            bottom.addWidget(b)
        bottom.addStretch(1)
        bottom.addWidget(apply)
        self.note = QLabel()
        self.note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.current)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addLayout(bottom)
        lay.addWidget(self.note)
        ctrl.project_changed.connect(lambda _p: self.refresh())
        ctrl.classes_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        cs = self.ctrl.classset()
        self.table.setRowCount(0)
        if cs is None:
            self.current.setText("This project has no class set yet.")
            self.note.setText("No classes yet: load a shipped set or add your own, then Apply.")
            return
        self._template = cs
        shipped = self.sets.findText(cs.name) >= 0
        if shipped:
            self.sets.setCurrentText(cs.name)
        else:  # never show a shipped set's name beside a project that uses another set
            self.sets.setCurrentIndex(-1)
        self.current.setText(f"This project uses the class set <b>{cs.name}</b> ({len(cs.classes)} classes"
                             f"{'' if shipped else ', not a shipped set'}).")
        for c in cs.classes:
            self._append(c.name, "; ".join(c.synonyms), c.color, c.normal)
        self.note.setText(f"<b>{cs.name}</b>: {cs.description[:160]}")

    def _append(self, name: str, synonyms: str, color: str, normal: bool) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        key = QTableWidgetItem("Normal" if normal else str(r if r <= 9 else ""))
        key.setFlags(Qt.ItemFlag.ItemIsEnabled)
        col = QTableWidgetItem(color)
        col.setBackground(QBrush(QColor(color)))
        col.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable)
        for c, item in enumerate((key, QTableWidgetItem(name), QTableWidgetItem(synonyms), col)):
            self.table.setItem(r, c, item)

    def _add_row(self) -> None:
        self._append(f"subtype_{self.table.rowCount()}", f"subtype {self.table.rowCount()}", "#4a90d9", False)

    def _remove_rows(self) -> None:
        for r in sorted({i.row() for i in self.table.selectedIndexes()}, reverse=True):
            if r > 0:
                self.table.removeRow(r)

    def _maybe_color(self, row: int, col: int) -> None:
        if col != 3:
            return
        color = QColorDialog.getColor(QColor(self.table.item(row, 3).text()), self, "Class colour")
        if color.isValid():
            self.table.item(row, 3).setText(color.name())
            self.table.item(row, 3).setBackground(QBrush(color))

    def load_shipped(self) -> None:
        from pathpt_engine.prompts.classsets import load_classset

        if not self.sets.currentText():
            self.ctrl.message.emit("error", "choose a shipped class set first")
            return
        try:
            self.ctrl.set_classset(load_classset(self.sets.currentText()))
        except PathPTError as exc:
            self.ctrl.message.emit("error", str(exc))

    def apply(self) -> Any:
        """Build a ClassSet from the table (first row = Normal) and store it in the project."""
        from pathpt_engine.prompts.classsets import ClassInfo, ClassSet, load_classset

        base = getattr(self, "_template", None) or load_classset("ucs")
        try:
            classes = []
            for r in range(self.table.rowCount()):
                syn = tuple(s.strip() for s in self.table.item(r, 2).text().split(";") if s.strip())
                name = self.table.item(r, 1).text().strip()
                classes.append(ClassInfo(name=name, display_name=name, synonyms=syn,
                                         color=self.table.item(r, 3).text().strip(), normal=(r == 0)))
            cs = dataclasses.replace(base, classes=tuple(classes))
            if not isinstance(cs, ClassSet):
                raise ValueError("not a class set")
            self.ctrl.set_classset(cs)
            return cs
        except (ValueError, PathPTError) as exc:
            self.ctrl.message.emit("error", f"class set not applied: {exc}")
            return None
