"""Dialogs: slide properties with associated images, and preferences."""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from pathpt_engine.errors import SlideError
from pathpt_engine.slides.base import SlideReader

from .settings import CACHE_MB_RANGE, THREADS_RANGE, AppSettings
from .viewer.loader import array_to_qimage

log = logging.getLogger(__name__)


def slide_summary(reader: SlideReader) -> list[tuple[str, str]]:
    """Human-readable key facts of a slide."""
    w, h = reader.dimensions
    mpp = reader.mpp
    rows = [
        ("File", str(reader.path)),
        ("Format", reader.format),
        ("Dimensions", f"{w:,} × {h:,} px"),
        ("Levels", ", ".join(f"{a}×{b}" for a, b in reader.level_dimensions)),
        ("Pixel size", f"{mpp[0]:.4g} × {mpp[1]:.4g} µm/px" if mpp else _unknown_mpp(reader)),
        ("Objective", f"{reader.objective_power:g}×" if reader.objective_power else "unknown"),
    ]
    if mpp:
        rows.append(("Physical size", f"{w * mpp[0] / 1000:.2f} × {h * mpp[1] / 1000:.2f} mm"))
    return rows


def _unknown_mpp(reader: SlideReader) -> str:
    stated = getattr(reader, "reported_mpp", None)
    if stated is None:
        return "unknown (the file does not state it)"
    return f"unknown (the file states {stated[0]:.4g} µm/px, outside the plausible 0.05–20)"


class SlidePropertiesDialog(QDialog):
    """Key facts, every OpenSlide property, and the associated images (label, macro, thumbnail)."""

    def __init__(self, reader: SlideReader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"Slide properties: {reader.path.name}")
        self.resize(760, 560)
        tabs = QTabWidget(self)
        facts = slide_summary(reader)
        tabs.addTab(self._table(facts), "Summary")
        tabs.addTab(self._table(sorted(reader.properties.items())), "All properties")
        for name in reader.associated_image_names:
            tabs.addTab(self._image_tab(reader, name), name.capitalize())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addWidget(tabs)
        lay.addWidget(buttons)
        self.tabs = tabs

    @staticmethod
    def _table(rows: list[tuple[str, str]]) -> QTableWidget:
        t = QTableWidget(len(rows), 2)
        t.setHorizontalHeaderLabels(["Property", "Value"])
        t.verticalHeader().setVisible(False)
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setStretchLastSection(True)
        t.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for i, (k, v) in enumerate(rows):
            t.setItem(i, 0, QTableWidgetItem(str(k)))
            t.setItem(i, 1, QTableWidgetItem(str(v)))
        return t

    @staticmethod
    def _image_tab(reader: SlideReader, name: str) -> QWidget:
        label = QLabel()
        label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        try:
            img = array_to_qimage(reader.associated_image(name))
            pix = QPixmap.fromImage(img)
            if pix.width() > 700 or pix.height() > 440:
                pix = pix.scaled(700, 440, Qt.AspectRatioMode.KeepAspectRatio,
                                 Qt.TransformationMode.SmoothTransformation)
            label.setPixmap(pix)
        except SlideError as exc:
            log.warning("%s", exc)
            label.setText(str(exc))
        area = QScrollArea()
        area.setWidget(label)
        area.setWidgetResizable(True)
        return area


class PreferencesDialog(QDialog):
    """Tile-cache budget and reader threads (applied to slides opened afterwards)."""

    def __init__(self, settings: AppSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.settings = settings
        self.cache = QSpinBox(minimum=CACHE_MB_RANGE[0], maximum=CACHE_MB_RANGE[1], singleStep=64,
                              suffix=" MiB", value=settings.cache_mb)
        self.threads = QSpinBox(minimum=THREADS_RANGE[0], maximum=THREADS_RANGE[1],
                                value=settings.reader_threads)
        form = QFormLayout()
        form.addRow("Tile cache per slide", self.cache)
        form.addRow("Reader threads", self.threads)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(QLabel("New values apply to slides opened afterwards."))
        lay.addWidget(buttons)

    def accept(self) -> None:
        self.settings.cache_mb = self.cache.value()
        self.settings.reader_threads = self.threads.value()
        self.settings.sync()
        super().accept()
