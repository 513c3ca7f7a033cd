"""Prediction panel: the current slide's call with its tile-vote bars (shares of the tumour tiles' votes, not
probabilities), the overlay mode and its legend, tile probabilities under the mouse, the top-scoring tiles per class
(click to jump), and the next slide to label.

It also keeps the overlay of the open slide in sync with the selected run (including while a prediction job is
still running: each slide's heatmap appears as soon as that slide is scored).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from pathpt_engine.colors import class_rgb
from pathpt_engine.errors import PathPTError
from pathpt_engine.ops.vote import TUMOUR, vote_summary
from pathpt_engine.results import ALL_TILE_VOTES, TILE_VOTES, TUMOUR_TILE_VOTES, score_heading, score_text

from ..project_controller import ProjectController
from ..viewer.overlay import TileLookup, lookup_table

log = logging.getLogger(__name__)
TOP_K = 4
GALLERY_PX = 72
VOTE_BOX_TITLE = "Slide call: tile votes"
VOTE_TOOLTIP = ("A slide is called by a vote of its tiles: every tile whose most likely class is a subtype votes "
                "for it, and the subtype with most votes wins.\nThe bars are shares of those votes, not "
                "probabilities. With no tumour tiles, or a tie, every tile votes for its most likely subtype.")


def _qimage(rgb: np.ndarray) -> QImage:
    arr = np.ascontiguousarray(rgb[..., :3]).astype(np.uint8)
    return QImage(arr.data, arr.shape[1], arr.shape[0], arr.strides[0], QImage.Format.Format_RGB888).copy()


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


_LOOKUP: list[Any] = [None, None]  # (scores, TileLookup) of the last slide hovered


def tile_at(scores: Any, x: float, y: float) -> int | None:
    """Index of the tile of `scores` covering level-0 point (x, y), or None (O(1) per call: a grid index built
    once per scores object)."""
    if _LOOKUP[0] is not scores:
        _LOOKUP[:] = [scores, TileLookup(scores.coords, int(scores.tile_size_level0))]
    return _LOOKUP[1].at(x, y)  # type: ignore[no-any-return]


class PredictionPanel(QWidget):
    """Needs the main window for the current slide view (`current_view()`, `current_view_changed`)."""

    open_requested = Signal(str)  # slide id (suggest next)

    def __init__(self, ctrl: ProjectController, window: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctrl, self.window = ctrl, window
        self._view: Any = None
        self._slide = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        self.title = QLabel("No slide")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-size: 15px; font-weight: 600;")
        lay.addWidget(self.title)
        self.bars_box = QGroupBox(VOTE_BOX_TITLE)
        self.bars_box.setToolTip(VOTE_TOOLTIP)
        self.bars = QFormLayout(self.bars_box)
        lay.addWidget(self.bars_box)
        lay.addWidget(self._overlay_box())
        self.hover = QLabel("Hover over the slide to read a tile's probabilities.")
        self.hover.setWordWrap(True)
        self.hover.setStyleSheet("color: #b8bcc0;")
        lay.addWidget(self.hover)
        gal = QGroupBox("Top tiles per class (click to jump)")
        gl = QVBoxLayout(gal)
        self.gallery = QListWidget(viewMode=QListWidget.ViewMode.IconMode, movement=QListWidget.Movement.Static,
                                   resizeMode=QListWidget.ResizeMode.Adjust, wordWrap=True)
        self.gallery.setIconSize(QSize(GALLERY_PX, GALLERY_PX))
        self.gallery.setGridSize(QSize(GALLERY_PX + 26, GALLERY_PX + 34))
        self.gallery.itemClicked.connect(self._jump)
        gl.addWidget(self.gallery)
        lay.addWidget(gal, 1)
        self.suggest_btn = QPushButton("Suggest next slide to label")
        self.suggest_btn.setToolTip("The unlabelled slide the selected run is least certain about")
        self.suggest_btn.clicked.connect(self.suggest)
        lay.addWidget(self.suggest_btn)
        window.current_view_changed.connect(self._view_changed)
        ctrl.current_run_changed.connect(lambda _r: self.refresh())
        ctrl.classes_changed.connect(self._fill_modes)
        ctrl.project_changed.connect(lambda _p: (self._fill_modes(), self.refresh()))
        ctrl.prediction_added.connect(self._prediction_added)
        self._fill_modes()
        self._view_changed(window.current_view())

    def _overlay_box(self) -> QGroupBox:
        box = QGroupBox("Overlay (O toggles; opacity and colormap in the toolbar)")
        v = QVBoxLayout(box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Show"))
        self.mode = QComboBox()
        self.mode.currentIndexChanged.connect(lambda _i: self.apply_overlay())
        row.addWidget(self.mode, 1)
        v.addLayout(row)
        self.legend = QLabel()
        self.legend.setWordWrap(True)
        v.addWidget(self.legend)
        return box

    # ---- slide / overlay --------------------------------------------------------------------------------
    def slide_id_of(self, view: Any) -> str:
        proj = self.ctrl.project
        if view is None or proj is None:
            return ""
        path = str(view.reader.path.resolve())
        for rec in proj.slides.list():
            if str(rec.path) == path:
                return rec.slide_id
        return ""

    def _view_changed(self, view: Any) -> None:
        if self._view is not None:
            try:
                self._view.cursor_moved.disconnect(self._hover)
                self._view.overlay.changed.disconnect(self._overlay_changed)
            except (RuntimeError, TypeError):
                pass
        self._view = view
        if view is not None:
            view.cursor_moved.connect(self._hover)
            view.overlay.changed.connect(self._overlay_changed)
        self.refresh()

    def _overlay_changed(self, kind: str) -> None:
        if kind == "colors":
            self._update_legend()

    def _fill_modes(self) -> None:
        cs = self.ctrl.classset()
        self.mode.blockSignals(True)
        current = self.mode.currentData()
        self.mode.clear()
        self.mode.addItem("Class map (most likely class per tile)", None)
        for name in (cs.class_names if cs else ()):
            self.mode.addItem(f"Probability of {name}", name)
        self.mode.setCurrentIndex(max(0, self.mode.findData(current)) if current else 0)
        self.mode.blockSignals(False)

    def _prediction_added(self, run_id: str, slide_id: str) -> None:
        if run_id == self.ctrl.current_run and slide_id == self._slide:
            self.refresh()

    def refresh(self) -> None:
        self._slide = self.slide_id_of(self._view)
        self.apply_overlay()
        self._fill_prediction()
        self._fill_gallery()

    def current_scores(self) -> Any:
        if not self._slide:
            return None
        try:
            return self.ctrl.tile_scores(self._slide)
        except PathPTError as exc:
            self.ctrl.message.emit("error", str(exc))
            return None

    def apply_overlay(self) -> None:
        view = self._view
        if view is None:
            return
        scores = self.current_scores()
        if scores is None:
            view.overlay.clear()
            self._update_legend()
            return
        cs = self.ctrl.classset()
        colors = {c.name: c.color for c in cs.classes} if cs else {}
        rgb = class_rgb(scores.class_names, colors)  # unset classes: the export palette
        channel = self.mode.currentData()
        if channel is not None and channel not in scores.class_names:
            channel = None
        view.overlay.set_tile_scores(scores, channel, rgb)
        self._update_legend()

    def _update_legend(self) -> None:
        view = self._view
        grid = view.overlay.grid if view is not None else None
        if grid is None:
            self.legend.setText("<i>No predictions for this slide in the selected run.</i>"
                                if self._slide else "<i>Open a slide of the project.</i>")
            return
        if grid.mode == "classmap":
            items = [f"<span style='background:rgb{c}'>&nbsp;&nbsp;&nbsp;&nbsp;</span>&nbsp;{n}"
                     for n, c in zip(view.overlay.class_names, view.overlay.class_colors, strict=True)]
            self.legend.setText("&nbsp;&nbsp; ".join(items))
            return
        lut = lookup_table(view.overlay.colormap)
        stops = ", ".join(f"stop:{i / 4:.2f} rgb({lut[int(i * 63.75)][0]},{lut[int(i * 63.75)][1]},"
                          f"{lut[int(i * 63.75)][2]})" for i in range(5))
        lo, hi = view.overlay.value_range
        self.legend.setText(f"{view.overlay.label} — {view.overlay.colormap}: {lo:.1f} "
                            f"<span style='color:#888'>→</span> {hi:.1f}")
        self.legend.setStyleSheet(f"QLabel {{ border-bottom: 8px solid qlineargradient(x1:0, y1:0, x2:1, y2:0, "
                                  f"{stops}); padding-bottom: 2px; }}")

    # ---- prediction, hover, gallery ---------------------------------------------------------------------
    def _fill_prediction(self) -> None:
        while self.bars.rowCount():
            self.bars.removeRow(0)
        self.bars_box.setTitle(VOTE_BOX_TITLE)
        pred = self.ctrl.predictions().get(self._slide) if self._slide else None
        if pred is None:
            self.title.setText(self._slide or "No project slide open")
            return
        lab = self.ctrl.project.labels.get(self._slide) if self.ctrl.project else None
        truth = f" · labelled {lab.label}" if lab else ""
        self.title.setText(f"{self._slide}: <span style='color:#7fc4ff'>{pred.predicted}</span>{truth}")
        cs = self.ctrl.classset()
        colors = {c.name: c.color for c in cs.classes} if cs else {}
        kind, n_voters = self._vote_kind()
        self.bars_box.setTitle(_capital(score_heading(kind, n_voters)))
        for name, p in sorted(pred.probs.items(), key=lambda kv: -kv[1]):
            bar = QProgressBar(minimum=0, maximum=1000, value=int(p * 1000), textVisible=True)
            bar.setFormat(score_text(kind, p))  # "65% of tumour tiles" (no %p/%v/%m placeholder in it)
            bar.setMaximumHeight(16)
            bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colors.get(name, '#4a80c4')}; }}")
            self.bars.addRow(name, bar)

    def _vote_kind(self) -> tuple[str, int | None]:
        """Which tiles voted for the current slide (recounted from its tile scores; the store keeps the shares)."""
        scores = self.current_scores()
        if scores is None or not len(scores.probs) or scores.probs.shape[1] < 2:
            return TILE_VOTES, None
        vote = vote_summary(scores.probs)
        return (TUMOUR_TILE_VOTES if vote.basis == TUMOUR else ALL_TILE_VOTES), vote.n_voters

    def _hover(self, x: float, y: float) -> None:
        scores = self.current_scores()
        i = tile_at(scores, x, y) if scores is not None else None
        if i is None:
            self.hover.setText("")
            return
        probs = scores.probs[i]
        order = np.argsort(-probs)
        self.window.statusBar().showMessage("tile: " + ", ".join(f"{scores.class_names[j]} {probs[j]:.2f}"
                                                                 for j in order), 3000)
        self.hover.setText(f"Tile at ({scores.coords[i][0]}, {scores.coords[i][1]}): "
                           + " · ".join(f"<b>{scores.class_names[j]}</b> {probs[j]:.2f}" if k == 0 else
                                        f"{scores.class_names[j]} {probs[j]:.2f}" for k, j in enumerate(order)))

    def _fill_gallery(self) -> None:
        self.gallery.clear()
        scores = self.current_scores()
        if scores is None or self._view is None or not len(scores.coords):
            return
        reader, t = self._view.reader, int(scores.tile_size_level0)
        level = reader.best_level_for_downsample(max(1.0, t / GALLERY_PX))
        ds = reader.level_downsamples[level]
        size = max(1, int(round(t / ds)))
        for c, name in enumerate(scores.class_names):
            for i in np.argsort(-scores.probs[:, c])[:TOP_K]:
                x, y = (int(v) for v in scores.coords[i])
                try:
                    img = reader.read_region((x, y), level, (size, size))
                except PathPTError as exc:
                    log.warning("gallery tile: %s", exc)
                    continue
                item = QListWidgetItem(QIcon(QPixmap.fromImage(_qimage(img))), f"{name}\n{scores.probs[i, c]:.2f}")
                item.setData(Qt.ItemDataRole.UserRole, (x + t / 2, y + t / 2, t))
                item.setToolTip(f"{name} p={scores.probs[i, c]:.3f} at ({x}, {y})")
                self.gallery.addItem(item)

    def _jump(self, item: QListWidgetItem) -> None:
        cx, cy, t = item.data(Qt.ItemDataRole.UserRole)
        if self._view is not None:
            side = max(1, min(self._view.width(), self._view.height()))
            self._view.model.set_view(cx, cy, min(4.0, side / (4.0 * t)))

    def suggest(self) -> str | None:
        try:
            sid = self.ctrl.suggest_next()
        except PathPTError as exc:
            self.ctrl.message.emit("error", str(exc))
            return None
        if sid is None:
            self.ctrl.message.emit("info", "no suggestion: select a run with predictions for unlabelled slides")
            return None
        self.ctrl.info(f"suggested next slide to label: {sid} (the selected run is least certain about it)")
        self.open_requested.emit(sid)
        return sid
