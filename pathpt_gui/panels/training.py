"""Training panel: backbone + device, job buttons with progress/ETA/Cancel, recipe settings, live curves, runs."""

from __future__ import annotations

import logging
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from pathpt_engine.errors import PathPTError

from ..project_controller import ProjectController
from ..project_jobs import BackboneChoice
from ..workers import format_eta

log = logging.getLogger(__name__)
CURVES = (("loss", "#e0e0e0"), ("labelled", "#4a90d9"), ("candidate", "#e8a33c"), ("pseudo", "#b06ad9"))


def device_choices() -> list[tuple[str, str]]:
    """(device string, label) for Auto, CPU and every visible CUDA GPU (name and memory)."""
    import os

    import torch

    out = [("auto", "Auto (GPU if available)"), ("cpu", f"CPU ({os.cpu_count()} cores)")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            out.append((f"cuda:{i}", f"GPU {i}: {p.name} ({p.total_memory / 2**30:.0f} GiB)"))
    return out


class TrainingPanel(QWidget):
    """Everything to go from labelled slides to a trained run."""

    def __init__(self, ctrl: ProjectController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctrl = ctrl
        self._history: dict[str, list[float]] = {}
        self._epochs = 1
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self._model_box())
        lay.addWidget(self._jobs_box())
        lay.addWidget(self._plot_box(), 1)
        lay.addWidget(self._runs_box(), 1)
        ctrl.project_changed.connect(self._reload)
        ctrl.backbone_changed.connect(self._reload)
        ctrl.runs_changed.connect(self._fill_runs)
        ctrl.current_run_changed.connect(self._fill_runs)
        ctrl.current_run_changed.connect(self._show_history)
        ctrl.slides_changed.connect(self._update_buttons)
        ctrl.labels_changed.connect(self._fill_runs)
        ctrl.job_started.connect(self._job_started)
        ctrl.job_progress.connect(self._job_progress)
        ctrl.job_finished.connect(lambda n, _r: self._job_ended(n, True, "done"))
        ctrl.job_failed.connect(lambda n, msg: self._job_ended(n, False, f"failed: {msg}"))
        ctrl.job_cancelled.connect(lambda n: self._job_ended(n, False, "cancelled"))
        self._reload()

    # ---- widgets ----------------------------------------------------------------------------------------
    def _model_box(self) -> QGroupBox:
        from pathpt_engine.backbones import available_backbones

        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.backbone = QComboBox()
        self._backbone_info: dict[str, str] = {}
        for spec in available_backbones():
            info = f"{spec.description}\nLicence: {spec.licence}\nGet it: {spec.download}"
            self._backbone_info[spec.name] = info
            self.backbone.addItem(spec.name, spec.name)
            self.backbone.setItemData(self.backbone.count() - 1, info, Qt.ItemDataRole.ToolTipRole)
        self.backbone_licence = QLabel()
        self.backbone_licence.setWordWrap(True)
        self.backbone_licence.setStyleSheet("color: #9a9a9a; font-size: 11px;")
        self.weights_btn = QPushButton("Default weights")
        self.weights_btn.setToolTip("Choose the model folder (KEEP or a CLIP-family HF folder)")
        self.weights_btn.clicked.connect(self._choose_weights)
        self.download_btn = QPushButton("Download weights…")
        self.download_btn.setToolTip("Download the selected model's weights from Hugging Face (needs the network; "
                                     "CONCH and MUSK need an accepted licence and a log-in)")
        self.download_btn.clicked.connect(lambda: self._guard(self.ctrl.download_weights,
                                                              self.backbone.currentData()))
        row = QHBoxLayout()
        row.addWidget(self.backbone, 1)
        row.addWidget(self.weights_btn, 1)
        row.addWidget(self.download_btn)
        form.addRow("Backbone", row)
        form.addRow("", self.backbone_licence)
        self.device = QComboBox()
        for dev, label in device_choices():
            self.device.addItem(label, dev)
        form.addRow("Device", self.device)
        self.backbone.activated.connect(lambda _i: self._store_backbone(self.backbone.currentData(), None))
        self.device.activated.connect(lambda _i: self._store_backbone(self.backbone.currentData(),
                                                                      self.ctrl.backbone().weights))
        return box

    def _jobs_box(self) -> QGroupBox:
        box = QGroupBox("Run")
        grid = QGridLayout(box)
        self.recipe = QComboBox()
        self.recipe.addItem("clean (validation selects the epoch)", "clean")
        self.recipe.addItem("paper (as published)", "paper")
        self.epochs = QSpinBox(minimum=1, maximum=200, value=20)
        self.lr = QDoubleSpinBox(decimals=5, minimum=1e-5, maximum=1e-2, singleStep=1e-4, value=3e-4)
        grid.addWidget(QLabel("Recipe"), 0, 0)
        grid.addWidget(self.recipe, 0, 1, 1, 3)
        grid.addWidget(QLabel("Epochs"), 1, 0)
        grid.addWidget(self.epochs, 1, 1)
        grid.addWidget(QLabel("LR"), 1, 2)
        grid.addWidget(self.lr, 1, 3)
        self.btn_extract = QPushButton("1 · Extract features")
        self.btn_zeroshot = QPushButton("2 · Zero-shot")
        self.btn_train = QPushButton("3 · Train PathPT")
        self.btn_predict = QPushButton("Predict again")
        self.btn_cancel = QPushButton("Cancel")
        self.btn_train.setDefault(True)
        for i, b in enumerate((self.btn_extract, self.btn_zeroshot, self.btn_train, self.btn_predict)):
            grid.addWidget(b, 2 + i // 2, (i % 2) * 2, 1, 2)
        self.btn_extract.clicked.connect(lambda: self._guard(self.ctrl.extract_features))
        self.btn_zeroshot.clicked.connect(lambda: self._guard(self.ctrl.zero_shot))
        self.btn_train.clicked.connect(lambda: self._guard(self.ctrl.train, self.config()))
        self.btn_predict.clicked.connect(lambda: self._guard(self.ctrl.predict))
        self.btn_cancel.clicked.connect(self.ctrl.cancel_job)
        self.progress = QProgressBar(textVisible=True)
        self.status = QLabel("Idle")
        self.status.setWordWrap(True)
        grid.addWidget(self.progress, 4, 0, 1, 3)
        grid.addWidget(self.btn_cancel, 4, 3)
        grid.addWidget(self.status, 5, 0, 1, 4)
        return box

    def _plot_box(self) -> QGroupBox:
        box = QGroupBox("Training curves")
        lay = QVBoxLayout(box)
        self.plot = pg.PlotWidget(background="#242629")
        self.plot.setMinimumHeight(150)
        self.plot.addLegend(offset=(5, 2), labelTextSize="8pt", colCount=3, brush=pg.mkBrush(36, 38, 41, 200))
        self.plot.setLabel("bottom", "epoch")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.curves = {k: self.plot.plot([], [], pen=pg.mkPen(c, width=1.5), name=k) for k, c in CURVES}
        self.curves["train acc"] = self.plot.plot([], [], pen=pg.mkPen("#5cc26a", width=1, style=Qt.PenStyle.DashLine),
                                                  symbol="o", symbolSize=7, symbolBrush="#5cc26a",
                                                  name="train acc")
        self.curves["val bacc"] = self.plot.plot([], [], pen=pg.mkPen("#e05d8c", width=1, style=Qt.PenStyle.DashLine),
                                                 symbol="s", symbolSize=7, symbolBrush="#e05d8c", name="val bacc")
        lay.addWidget(self.plot)
        return box

    def _runs_box(self) -> QGroupBox:
        box = QGroupBox("Runs (select one to show its predictions)")
        lay = QVBoxLayout(box)
        self.runs = QTableWidget(0, 4)
        self.runs.setHorizontalHeaderLabels(("Started", "Method", "Status", "Result"))
        self.runs.setWordWrap(True)
        self.runs.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.runs.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.runs.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.runs.verticalHeader().setVisible(False)
        self.runs.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.runs.itemSelectionChanged.connect(self._run_selected)
        lay.addWidget(self.runs)
        return box

    # ---- state ------------------------------------------------------------------------------------------
    def config(self) -> Any:
        from pathpt_engine.pathpt.model import PathPTConfig

        return PathPTConfig(recipe=self.recipe.currentData(), epochs=self.epochs.value(), lr=self.lr.value(),
                            early_stop=0)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (PathPTError, ValueError) as exc:
            self.ctrl.message.emit("error", str(exc))
            self.ctrl.job_failed.emit("Start", str(exc))

    def _reload(self, *_: Any) -> None:
        choice = self.ctrl.backbone()
        i = self.backbone.findData(choice.name)
        self.backbone.setCurrentIndex(max(0, i))
        self.backbone_licence.setText(self._backbone_info.get(str(self.backbone.currentData()), "").split("\n", 1)[-1])
        self.weights_btn.setText(_short(choice.weights) if choice.weights else "Default weights")
        self.weights_btn.setToolTip(choice.weights or "the registry default folder / environment variable")
        j = self.device.findData(choice.device)
        self.device.setCurrentIndex(max(0, j))
        self._fill_runs()
        self._show_history(self.ctrl.current_run)
        self._update_buttons()

    def _store_backbone(self, name: str, weights: str | None) -> None:
        try:
            self.ctrl.set_backbone(BackboneChoice(name, weights, self.device.currentData()))
        except (PathPTError, ValueError) as exc:
            self.ctrl.message.emit("error", str(exc))

    def _choose_weights(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, f"{self.backbone.currentData()} model folder")
        if folder:
            self._store_backbone(self.backbone.currentData(), folder)

    def _update_buttons(self, *_: Any) -> None:
        has_proj, busy = self.ctrl.project is not None, self.ctrl.busy
        feats = has_proj and self.ctrl.has_features()
        labelled = has_proj and bool(self.ctrl.project.labels.all())  # type: ignore[union-attr]
        self.btn_extract.setEnabled(has_proj and not busy)
        self.btn_zeroshot.setEnabled(feats and not busy)
        self.btn_train.setEnabled(feats and labelled and not busy)
        self.btn_predict.setEnabled(bool(self.ctrl.current_run) and not busy)
        self.btn_cancel.setEnabled(busy)
        self.btn_train.setToolTip("" if labelled else "label a few slides first (select, then press 1–9)")
        self.btn_zeroshot.setToolTip("" if feats else "extract features first")

    def _fill_runs(self, *_: Any) -> None:
        proj = self.ctrl.project
        runs = proj.runs.list() if proj is not None else []
        self.runs.blockSignals(True)
        self.runs.setRowCount(len(runs))
        for r, run in enumerate(runs):
            preds = proj.runs.predictions(run.run_id) if proj is not None else {}
            labels = proj.labels.all() if proj is not None else {}
            judged = [s for s in preds if s in labels]
            agree = sum(preds[s].predicted == labels[s].label for s in judged)
            when = run.created[5:16].replace("T", " ")
            cells = (when, run.recipe, run.status, f"{len(preds)} slides predicted"
                     + (f", agrees with {agree}/{len(judged)} labels" if judged else "") + f" · {run.message}")
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, run.run_id)
                item.setToolTip(f"run {run.run_id} ({run.backbone})\n{run.message}")
                if c == 2:
                    item.setForeground(QColor({"done": "#5cc26a", "failed": "#ff7b72", "cancelled": "#e8a33c",
                                               "interrupted": "#e8a33c"}
                                              .get(run.status, "#c8ccd0")))
                self.runs.setItem(r, c, item)
            if run.run_id == self.ctrl.current_run:
                self.runs.selectRow(r)
        for c in range(3):
            self.runs.resizeColumnToContents(c)
        self.runs.blockSignals(False)
        self._update_buttons()

    def _run_selected(self) -> None:
        items = self.runs.selectedItems()
        if items:
            self.ctrl.set_current_run(items[0].data(Qt.ItemDataRole.UserRole))

    # ---- job feedback -----------------------------------------------------------------------------------
    def _job_started(self, name: str) -> None:
        self.status.setText(f"{name}…")
        self.progress.setRange(0, 0)
        if name.startswith("Train"):
            self._epochs = self.epochs.value()
            self._history = {k: [] for k in (*dict(CURVES), "train acc", "val bacc")}
            self._history.update({k + "_x": [] for k in list(self._history)})
            for c in self.curves.values():
                c.setData([], [])
        self._update_buttons()

    def _job_progress(self, event: Any, fraction: Any, eta: Any) -> None:
        if fraction is None:
            self.progress.setRange(0, 0)
        else:
            self.progress.setRange(0, 1000)
            self.progress.setValue(int(fraction * 1000))
        total = f"/{event.total}" if event.total else ""
        self.progress.setFormat(f"{event.stage} {event.done}{total}  {format_eta(eta)}")
        self.status.setText(f"{event.stage}: {event.message}")
        if event.stage == "train" and self._history:
            self._add_metrics(event)

    def _add_metrics(self, event: Any) -> None:
        m = event.metrics
        x = event.done * self._epochs / event.total if event.total else float(event.done)
        if "train_acc" in m:
            m = {"train acc": m["train_acc"], **({"val bacc": m["val_bacc"]} if "val_bacc" in m else {})}
            keys = list(m)
        else:
            keys = [k for k, _c in CURVES if k in m]
        for k in keys:
            self._history[k].append(m[k])
            self._history[k + "_x"].append(x)
            self.curves[k].setData(self._history[k + "_x"], self._history[k])

    def _show_history(self, run_id: str) -> None:
        """Per-epoch curves of a finished run, from its checkpoint (empty for zero-shot runs)."""
        import json

        if self.ctrl.busy and self._history:
            return  # the live curves of the running job stay
        for c in self.curves.values():
            c.setData([], [])
        proj = self.ctrl.project
        meta = proj.root / "runs" / run_id / "checkpoint.json" if proj is not None and run_id else None
        if meta is None or not meta.is_file():
            return
        try:
            history = json.loads(meta.read_text(encoding="utf-8")).get("history") or []
        except (OSError, ValueError) as exc:
            log.warning("%s: %s", meta, exc)
            return
        x = [h.get("epoch", i) + 1 for i, h in enumerate(history)]
        for key, field in [*((k, k) for k, _c in CURVES), ("train acc", "train_acc"), ("val bacc", "val_bacc")]:
            pts = [(xi, h[field]) for xi, h in zip(x, history, strict=True) if field in h]
            self.curves[key].setData([p[0] for p in pts], [p[1] for p in pts])

    def _job_ended(self, name: str, ok: bool, text: str) -> None:
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000 if ok else 0)
        self.progress.setFormat(text if ok else "stopped")
        self.status.setText(f"{name}: {text}")
        self._update_buttons()


def _short(path: str, n: int = 28) -> str:
    return path if len(path) <= n else "…" + path[-(n - 1):]
