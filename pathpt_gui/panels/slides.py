"""Slide list: thumbnails, label chips, train/held-out, prediction badges, a filter, and keyboard labelling.

Keys (while the list has focus): 1–9 label the selected slides with subtype 1–9, 0 or Delete clears the
label, T / H mark train / held-out, Enter opens the slide. The same actions are in the context menu.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QIcon, QImage, QKeyEvent, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pathpt_engine.errors import PathPTError

from ..project_controller import ProjectController

log = logging.getLogger(__name__)
THUMB = 56
SLIDE_COLUMN_MIN = THUMB + 96  # thumbnail and a readable slide name
FAILED_RED = "#e5484d"
ID_ROLE = Qt.ItemDataRole.UserRole


def _chip_color(hex_color: str | None) -> QColor:
    return QColor(hex_color) if hex_color else QColor(90, 92, 96)


def prediction_badge(pred: Any) -> tuple[str, str]:
    """(badge text, tooltip) of a stored slide call: its numbers are shares of tile votes, not probabilities."""
    p = max(pred.probs.values()) if pred.probs else 0.0
    tip = ("Tile votes (share of the voting tiles, not a probability):\n"
           + "\n".join(f"{k}: {v:.0%}" for k, v in pred.probs.items())
           + f"\nuncertainty {pred.uncertainty:.2f}")
    return f"{pred.predicted} · {p:.0%} of votes", tip


def _thumb_icon(rgb: np.ndarray) -> QIcon:
    arr = np.ascontiguousarray(rgb[..., :3])
    img = QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGB888).copy()
    return QIcon(QPixmap.fromImage(img).scaled(THUMB, THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                               Qt.TransformationMode.SmoothTransformation))


class SlideTable(QTableWidget):
    """The table; digits reach it before the window's magnification shortcuts."""

    key_label = Signal(int)  # 0 = clear, 1..9 = subtype
    key_split = Signal(str)
    resized = Signal()

    def resizeEvent(self, e: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(e)
        self.resized.emit()

    def event(self, e: QEvent) -> bool:  # noqa: D401
        if e.type() == QEvent.Type.ShortcutOverride and isinstance(e, QKeyEvent) and self._ours(e):
            e.accept()
            return True
        return super().event(e)

    @staticmethod
    def _ours(e: QKeyEvent) -> bool:
        return (not e.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
                and (Qt.Key.Key_0 <= e.key() <= Qt.Key.Key_9 or e.key() in (Qt.Key.Key_T, Qt.Key.Key_H,
                                                                              Qt.Key.Key_Delete)))

    def keyPressEvent(self, e: QKeyEvent) -> None:  # noqa: N802
        if self._ours(e):
            if e.key() == Qt.Key.Key_T:
                self.key_split.emit("train")
            elif e.key() == Qt.Key.Key_H:
                self.key_split.emit("heldout")
            else:
                self.key_label.emit(0 if e.key() == Qt.Key.Key_Delete else e.key() - Qt.Key.Key_0)
            return
        super().keyPressEvent(e)


class SlidesPanel(QWidget):
    """Lists the project's slides; emits `open_requested(slide_id)` on double-click / Enter."""

    open_requested = Signal(str)
    COLUMNS = ("Slide", "Label", "Split", "Prediction")

    def __init__(self, ctrl: ProjectController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctrl = ctrl
        self._thumbs: dict[str, QIcon] = {}
        self._pending: list[str] = []
        self._timer = QTimer(self, interval=0, singleShot=True)
        self._timer.timeout.connect(self._load_one_thumb)
        self.filter = QComboBox()
        self.search = QLineEdit(placeholderText="search…", clearButtonEnabled=True)
        self.table = SlideTable(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for col, width in ((1, 100), (2, 58), (3, 104)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.table.setColumnWidth(col, width)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.cellDoubleClicked.connect(lambda r, _c: self._open_row(r))
        self.table.key_label.connect(self._key_label)
        self._label_want = 100
        self.table.resized.connect(self._fit_label_column)
        self.table.key_split.connect(lambda s: self._guard(self.ctrl.set_split, self.selected_ids(), s))
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.hint = QLabel()  # how to label, until the first label is set
        self.hint.setObjectName("labelHint")
        self.hint.setWordWrap(True)
        self.hint.setStyleSheet("color: #3b82c4; font-weight: bold;")  # readable on the light and dark themes
        top = QHBoxLayout()
        top.addWidget(self.filter, 1)
        top.addWidget(self.search, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.hint)
        lay.addWidget(self.summary)
        self.filter.currentIndexChanged.connect(self._apply_filter)
        self.search.textChanged.connect(self._apply_filter)
        for sig in (ctrl.project_changed, ctrl.slides_changed, ctrl.labels_changed, ctrl.classes_changed,
                    ctrl.current_run_changed, ctrl.runs_changed):
            sig.connect(self.refresh)
        ctrl.prediction_added.connect(self._prediction_added)
        self.refresh()

    # ---- data -------------------------------------------------------------------------------------------
    def selected_ids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, 0).data(ID_ROLE) for r in rows]

    def select(self, slide_id: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(ID_ROLE) == slide_id:
                self.table.selectRow(r)
                self.table.scrollToItem(self.table.item(r, 0))
                return

    def refresh(self, *_: Any) -> None:
        proj = self.ctrl.project
        keep = set(self.selected_ids()) if self.table.rowCount() else set()
        self._rebuild_filter()
        self.table.setRowCount(0)
        if proj is None:
            self.summary.setText("No project open.")
            self._show_hint(None, 0, 0)
            return
        cs = self.ctrl.classset()
        colors = {c.name: c.color for c in cs.classes} if cs else {}
        labels, preds = proj.labels.all(), self.ctrl.predictions()
        slides = proj.slides.list()
        self._fit_label_column(list(colors))
        self._show_hint(cs, len(slides), len(labels))
        failed = self.ctrl.failed_slides()
        self.table.setRowCount(len(slides))
        for r, rec in enumerate(slides):
            self._fill_row(r, rec, labels.get(rec.slide_id), preds.get(rec.slide_id), colors)
            if rec.slide_id in failed:
                self._mark_failed(r, failed[rec.slide_id])
        self._reselect(keep)
        self._pending = [s.slide_id for s in slides if s.slide_id not in self._thumbs and s.exists]
        self._timer.start()
        n_lab = sum(1 for s in slides if s.slide_id in labels)
        missing = sum(1 for s in slides if not s.exists)
        self.summary.setText(f"{len(slides)} slides · {n_lab} labelled · {len(preds)} predicted"
                             + (f" · <b style='color:#e8a33c'>{missing} missing</b>" if missing else "")
                             + (f" · <b style='color:{FAILED_RED}'>{len(failed)} failed</b>" if failed else ""))
        self._apply_filter()

    def _show_hint(self, cs: Any, n_slides: int, n_labels: int) -> None:
        """A first-run line on how to label, shown until the project has its first label."""
        if n_labels:
            self.hint.hide()
            return
        if self.ctrl.project is None:
            text = "To start: Project ▸ New Project…, add slides, then label them here."
        elif not n_slides:
            text = "Add slides (Project ▸ Add Slides…), then label them in this list."
        else:
            keys = ", ".join(f"{i} {c.name}" for i, c in enumerate(cs.classes[1:10], 1)) if cs else "1–9 subtype"
            text = (f"To label: select slides, press a key ({keys}; 0 clears; T train, H held-out) "
                    "or right-click.")
        self.hint.setText(text)
        self.hint.show()

    def _fit_label_column(self, names: list[str] | None = None) -> None:
        """Wide enough for the longest class name (up to 240 px), but never so wide that the Slide column loses
        its name beside the thumbnail (`SLIDE_COLUMN_MIN`); what does not fit is elided, with a tooltip."""
        if names is not None:
            fm = self.table.fontMetrics()
            self._label_want = max([fm.horizontalAdvance(n) + 16 for n in names] + [100])
        others = sum(self.table.columnWidth(c) for c in range(2, self.table.columnCount()))
        room = self.table.viewport().width() - others - SLIDE_COLUMN_MIN
        self.table.setColumnWidth(1, max(100, min(self._label_want, 240, room)))

    def _reselect(self, ids: set[str]) -> None:
        from PySide6.QtCore import QItemSelectionModel

        sel = self.table.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(ID_ROLE) in ids:
                sel.select(self.table.model().index(r, 0), flags)

    def _fill_row(self, r: int, rec: Any, lab: Any, pred: Any, colors: dict[str, str]) -> None:
        name = QTableWidgetItem(rec.slide_id if rec.exists else f"{rec.slide_id}  (missing)")
        name.setData(ID_ROLE, rec.slide_id)
        name.setToolTip(str(rec.path))
        if rec.slide_id in self._thumbs:
            name.setIcon(self._thumbs[rec.slide_id])
        if not rec.exists:
            name.setForeground(QBrush(QColor("#e8a33c")))
        chip = QTableWidgetItem(lab.label if lab else "")
        if lab:
            chip.setToolTip(f"{lab.label} ({lab.split})")
            chip.setBackground(QBrush(_chip_color(colors.get(lab.label)).darker(140)))
            chip.setForeground(QBrush(QColor("white")))
        split = QTableWidgetItem({"train": "train", "heldout": "held-out"}.get(lab.split, "") if lab else "")
        badge = QTableWidgetItem("")
        if pred is not None:
            text, tip = prediction_badge(pred)
            badge.setText(text)
            badge.setForeground(QBrush(_chip_color(colors.get(pred.predicted)).lighter(130)))
            badge.setToolTip(tip)
            if lab is not None and lab.label != pred.predicted:
                badge.setText(badge.text() + "  ≠")
        for c, item in enumerate((name, chip, split, badge)):
            item.setData(ID_ROLE, rec.slide_id)
            self.table.setItem(r, c, item)

    def _mark_failed(self, r: int, reason: str) -> None:
        """A red mark on a slide whose feature extraction failed, with the reason as its tooltip."""
        item = self.table.item(r, 0)
        item.setText(f"✗ {item.text()}")
        item.setForeground(QBrush(QColor(FAILED_RED)))
        item.setToolTip(f"{item.toolTip()}\nfeature extraction failed: {reason}")

    def _prediction_added(self, _run: str, _slide: str) -> None:
        self.refresh()

    def _load_one_thumb(self) -> None:
        proj = self.ctrl.project
        if proj is None or not self._pending:
            return
        sid = self._pending.pop(0)
        try:
            from pathpt_engine.slides import open_slide

            with open_slide(proj.slides.get(sid).path) as reader:
                self._thumbs[sid] = _thumb_icon(reader.thumbnail(THUMB * 2))
        except (PathPTError, OSError, ValueError) as exc:
            log.warning("thumbnail of %s: %s", sid, exc)
        else:
            for r in range(self.table.rowCount()):
                if self.table.item(r, 0).data(ID_ROLE) == sid:
                    self.table.item(r, 0).setIcon(self._thumbs[sid])
        if self._pending:
            self._timer.start()

    # ---- filter -----------------------------------------------------------------------------------------
    def _rebuild_filter(self) -> None:
        current = self.filter.currentData()
        self.filter.blockSignals(True)
        self.filter.clear()
        self.filter.addItem("All slides", ("all", ""))
        self.filter.addItem("Unlabelled", ("unlabelled", ""))
        self.filter.addItem("Missing files", ("missing", ""))
        cs = self.ctrl.classset()
        for name in (cs.subtype_names if cs else ()):
            self.filter.addItem(f"Label: {name}", ("label", name))
        for name in (cs.subtype_names if cs else ()):
            self.filter.addItem(f"Predicted: {name}", ("pred", name))
        idx = self.filter.findData(current) if current else 0
        self.filter.setCurrentIndex(max(0, idx))
        self.filter.blockSignals(False)

    def _apply_filter(self, *_: Any) -> None:
        kind, value = self.filter.currentData() or ("all", "")
        text = self.search.text().strip().lower()
        for r in range(self.table.rowCount()):
            label = self.table.item(r, 1).text()
            pred = self.table.item(r, 3).text().split(" ")[0]
            name = self.table.item(r, 0).text()
            show = {"all": True, "unlabelled": not label, "missing": name.endswith("(missing)"),
                    "label": label == value, "pred": pred == value}[kind]
            self.table.setRowHidden(r, not (show and (not text or text in name.lower())))

    # ---- actions ----------------------------------------------------------------------------------------
    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except PathPTError as exc:
            self.ctrl.message.emit("error", str(exc))

    def _key_label(self, k: int) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        if k == 0:
            self._guard(self.ctrl.clear_labels, ids)
            return
        cs = self.ctrl.classset()
        if cs is None or k > len(cs.subtype_names):
            self.ctrl.message.emit("warning", f"no subtype {k} in the class set")
            return
        self._guard(self.ctrl.set_label, ids, cs.subtype_names[k - 1])

    def _open_row(self, row: int) -> None:
        self.open_requested.emit(self.table.item(row, 0).data(ID_ROLE))

    def _context_menu(self, pos: Any) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.open_requested.emit(ids[0]))
        sub = menu.addMenu("Label as")
        cs = self.ctrl.classset()
        for i, name in enumerate(cs.subtype_names if cs else ()):
            act = sub.addAction(f"{name}\t{i + 1}" if i < 9 else name)
            act.triggered.connect(lambda _=False, n=name: self._guard(self.ctrl.set_label, ids, n))
        menu.addAction("Clear label\t0", lambda: self._guard(self.ctrl.clear_labels, ids))
        menu.addSeparator()
        menu.addAction("Use for training\tT", lambda: self._guard(self.ctrl.set_split, ids, "train"))
        menu.addAction("Hold out (validation)\tH", lambda: self._guard(self.ctrl.set_split, ids, "heldout"))
        menu.addSeparator()
        menu.addAction("Pixel size…", lambda: self.ctrl.pixel_size_needed.emit(ids))
        menu.exec(self.table.viewport().mapToGlobal(pos))
