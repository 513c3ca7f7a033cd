"""Export dialog (Ctrl+E): which slides, run, layer, colormap, opacity, resolution and formats, then one call to
the engine's `export_run` (through `ProjectController.export`). The choices are remembered per project (the
project's settings table, key `gui.export`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QWidget,
)

from pathpt_engine.export.captions import Caption
from pathpt_engine.export.png import OverlayStyle
from pathpt_engine.workflow import ExportOptions
from pathpt_engine.workflow.export import DEFAULT_KINDS, KINDS

from .menus import COLORMAPS

SETTING_KEY = "gui.export"
SCOPES = (("current", "Current slide"), ("selected", "Selected slides"), ("all", "All predicted slides"))
KIND_LABELS = {"overlay_png": "Overlay PNG (slide + heatmap)", "heatmap_png": "Heatmap PNG with legend",
               "geojson": "QuPath GeoJSON (tiles)", "scores_h5": "Tile scores (h5)",
               "overlay_tiff": "Aligned TIFF overlay (ASAP / OpenSlide)",
               "regions_geojson": "QuPath GeoJSON (class regions)",
               "figure_png": "Figure PNG (thumbnail, heatmap, legend, scale bar, caption)",
               "figure_svg": "Figure SVG", "figure_pdf": "Figure PDF"}
ARGMAX = "argmax"


def kind_label(kind: str) -> str:
    """A reader's name for an export kind (kinds the engine adds later get their own name, tidied)."""
    return KIND_LABELS.get(kind, kind.replace("_", " "))


@dataclass
class ExportChoices:
    """What the dialog asks; JSON-friendly (`to_dict` / `from_dict`) so a project can keep it."""

    scope: str = "all"
    run_id: str = ""
    layer: str = ARGMAX  # "argmax" (class map) or a class name (its probability)
    cmap: str = "viridis"
    opacity: float = 0.5
    by_mpp: bool = False
    downsample: float = 8.0
    mpp: float = 2.0
    kinds: tuple[str, ...] = DEFAULT_KINDS
    folder: str = ""
    tiff_variant: str = "gray"
    dpi: int = 150
    legend_strip: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["kinds"] = list(self.kinds)
        return d

    @classmethod
    def from_dict(cls, d: Any) -> ExportChoices:
        """Stored choices, each bad or unknown entry replaced by its default (a setting never breaks the dialog)."""
        out = cls()
        if not isinstance(d, dict):
            return out
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value, default = d[f.name], getattr(out, f.name)
            if f.name == "kinds" and isinstance(value, list):
                setattr(out, f.name, tuple(k for k in value if k in KINDS))
            elif type(value) is type(default) and type(default) in (bool, int, str):
                setattr(out, f.name, value)
            elif isinstance(default, float) and type(value) in (int, float):
                setattr(out, f.name, float(value))
        return out

    def options(self, out: Path, slide_ids: tuple[str, ...] | None, caption: Caption | None = None) -> ExportOptions:
        """The engine's options for these choices (raises ValueError for values it refuses)."""
        style = OverlayStyle(self.layer, self.cmap, self.opacity)
        return ExportOptions(out, kinds=self.kinds, style=style, downsample=self.downsample,
                             mpp=self.mpp if self.by_mpp else None, slide_ids=slide_ids,
                             tiff_variant=self.tiff_variant, caption=caption or Caption(), dpi=self.dpi,
                             legend_strip=self.legend_strip)


class ExportDialog(QDialog):
    """The choices; `choices()` reads them back. `runs`: (run id, what it is) newest first; `classes`: class
    names; `counts`: slides per scope."""

    def __init__(self, choices: ExportChoices, runs: list[tuple[str, str]], classes: list[str],
                 counts: dict[str, int],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export results")
        form = QFormLayout(self)
        self.scope_group = QButtonGroup(self)
        row = QHBoxLayout()
        for i, (key, text) in enumerate(SCOPES):
            b = QRadioButton(f"{text} ({counts.get(key, 0)})")
            b.setProperty("scope", key)
            b.setEnabled(counts.get(key, 0) > 0)
            self.scope_group.addButton(b, i)
            row.addWidget(b)
        form.addRow("Slides", row)
        self.run = QComboBox()
        for rid, what in runs:
            self.run.addItem(f"{rid} · {what}" if what else rid, rid)
        form.addRow("Run", self.run)
        self.layer = QComboBox()
        self.layer.addItem("Class map (tile votes)", ARGMAX)
        for name in classes:
            self.layer.addItem(f"Probability of {name}", name)
        form.addRow("Layer", self.layer)
        self.cmap = QComboBox()
        self.cmap.addItems(COLORMAPS)
        form.addRow("Colormap", self.cmap)
        self.opacity = QSpinBox(minimum=0, maximum=100, suffix=" %")
        form.addRow("Opacity", self.opacity)
        form.addRow("Resolution", self._resolution_row())
        form.addRow("Formats", self._formats_box())
        self.tiff_variant = QComboBox()
        self.tiff_variant.addItem("one channel (class index / probability)", "gray")
        self.tiff_variant.addItem("RGBA colours", "rgba")
        form.addRow("TIFF overlay", self.tiff_variant)
        self.dpi = QSpinBox(minimum=50, maximum=1200, singleStep=50, suffix=" dpi")
        self.legend_strip = QCheckBox("legend strip under the overlay PNG")
        extra = QHBoxLayout()
        extra.addWidget(QLabel("Figure"))
        extra.addWidget(self.dpi)
        extra.addWidget(self.legend_strip, 1)
        form.addRow("Pictures", extra)
        self.folder = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        frow = QHBoxLayout()
        frow.addWidget(self.folder, 1)
        frow.addWidget(browse)
        form.addRow("Into folder", frow)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.layer.currentIndexChanged.connect(self._sync_enabled)
        self.by_mpp.toggled.connect(self._sync_enabled)
        self.set_choices(choices)

    def _resolution_row(self) -> QHBoxLayout:
        self.by_mpp = QCheckBox("in µm/px")
        self.downsample = QDoubleSpinBox(minimum=1.0, maximum=256.0, decimals=1, prefix="downsample ")
        self.mpp = QDoubleSpinBox(minimum=0.05, maximum=100.0, decimals=2, suffix=" µm/px")
        row = QHBoxLayout()
        for w in (self.downsample, self.by_mpp, self.mpp):
            row.addWidget(w)
        return row

    def _formats_box(self) -> QGridLayout:
        grid = QGridLayout()
        self.kind_boxes: dict[str, QCheckBox] = {}
        for i, kind in enumerate(KINDS):
            box = QCheckBox(kind_label(kind))
            box.setToolTip(kind)
            self.kind_boxes[kind] = box
            grid.addWidget(box, i // 2, i % 2)
        return grid

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into folder", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def _sync_enabled(self) -> None:
        self.cmap.setEnabled(self.layer.currentData() != ARGMAX)  # the class map uses the class colours
        self.mpp.setEnabled(self.by_mpp.isChecked())
        self.downsample.setEnabled(not self.by_mpp.isChecked())

    def set_choices(self, c: ExportChoices) -> None:
        buttons = self.scope_group.buttons()
        usable = [b for b in buttons if b.isEnabled()]
        pick = next((b for b in usable if b.property("scope") == c.scope), usable[-1] if usable else buttons[-1])
        pick.setChecked(True)
        if c.run_id and self.run.findData(c.run_id) >= 0:
            self.run.setCurrentIndex(self.run.findData(c.run_id))
        self.layer.setCurrentIndex(max(0, self.layer.findData(c.layer)))
        if self.cmap.findText(c.cmap) < 0:
            self.cmap.addItem(c.cmap)
        self.cmap.setCurrentText(c.cmap)
        self.opacity.setValue(round(c.opacity * 100))
        self.by_mpp.setChecked(c.by_mpp)
        self.downsample.setValue(c.downsample)
        self.mpp.setValue(c.mpp)
        for kind, box in self.kind_boxes.items():
            box.setChecked(kind in c.kinds)
        self.tiff_variant.setCurrentIndex(max(0, self.tiff_variant.findData(c.tiff_variant)))
        self.dpi.setValue(c.dpi)
        self.legend_strip.setChecked(c.legend_strip)
        self.folder.setText(c.folder)
        self._sync_enabled()

    def choices(self) -> ExportChoices:
        checked = self.scope_group.checkedButton()
        return ExportChoices(
            scope=str(checked.property("scope")) if checked else "all", run_id=str(self.run.currentData() or ""),
            layer=str(self.layer.currentData()), cmap=self.cmap.currentText(), opacity=self.opacity.value() / 100,
            by_mpp=self.by_mpp.isChecked(), downsample=self.downsample.value(), mpp=self.mpp.value(),
            kinds=tuple(k for k, b in self.kind_boxes.items() if b.isChecked()), folder=self.folder.text().strip(),
            tiff_variant=str(self.tiff_variant.currentData()), dpi=self.dpi.value(),
            legend_strip=self.legend_strip.isChecked())


# ---- glue with the workflow panel ------------------------------------------------------------------------------
def make_export_dialog(wf: Any) -> ExportDialog:
    """The dialog for the workflow panel `wf`, filled with the project's remembered choices (first time: the
    current overlay's look and the current run)."""
    from pathpt_engine.errors import PathPTError

    ctrl = wf.ctrl
    proj = ctrl.require()
    records = proj.runs.list()
    runs = [(r.run_id, f"{r.recipe}, {r.backbone}") for r in records]
    if not runs:
        raise PathPTError("no run yet; train or run zero-shot first, then export")
    stored = proj.get_setting(SETTING_KEY)
    choices = ExportChoices.from_dict(stored)
    view = wf.window.current_view()
    if stored is None and view is not None:  # first export of this project: what the viewer shows
        ov = view.overlay
        choices.cmap, choices.opacity = ov.colormap, ov.opacity
        mode = wf.predictions.mode.currentData()
        choices.layer = str(mode) if mode else ARGMAX
    choices.run_id = ctrl.current_run or choices.run_id
    choices.folder = choices.folder or str(proj.exports_dir)
    current = wf.predictions.slide_id_of(view)
    counts = {"current": int(bool(current)), "selected": len(wf.slides.selected_ids()),
              "all": len(ctrl.predictions(choices.run_id or runs[0][0]))}
    cs = ctrl.classset()
    classes = [c.name for c in cs.classes] if cs else []
    return ExportDialog(choices, runs, classes, counts, wf.window)


def start_export(wf: Any, choices: ExportChoices) -> bool:
    """Remember `choices` in the project and start the export job (into a new dated subfolder of the folder)."""
    from pathpt_engine.errors import PathPTError

    ctrl = wf.ctrl
    proj = ctrl.require()
    if not choices.kinds:
        raise PathPTError("choose at least one format to export")
    if not choices.folder:
        raise PathPTError("choose a folder to export into")
    preds = ctrl.predictions(choices.run_id)
    ids: tuple[str, ...] | None = None
    if choices.scope == "current":
        ids = tuple(s for s in [wf.predictions.slide_id_of(wf.window.current_view())] if s)
    elif choices.scope == "selected":
        ids = tuple(s for s in wf.slides.selected_ids() if s in preds)
    if ids is not None and not ids:
        raise PathPTError(f"run {choices.run_id}: no prediction for the {choices.scope} slide(s); "
                          "choose other slides or run prediction first")
    rec = proj.runs.get(choices.run_id)  # the caption says which run, method and backbone made the pictures
    caption = Caption(run=rec.run_id, method=rec.recipe, backbone=rec.backbone)
    opts = choices.options(Path(choices.folder), ids, caption)  # ValueError for values the engine refuses
    proj.set_setting(SETTING_KEY, choices.to_dict())
    return bool(ctrl.export(opts, run_id=choices.run_id))
