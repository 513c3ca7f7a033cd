"""The GUI shows the slide-level vote numbers as what they are (shares of tile votes), never as probabilities."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFormLayout

from pathpt_engine.prompts.classsets import load_classset
from pathpt_engine.results import TileScores
from pathpt_gui.panels.predictions import PredictionPanel
from pathpt_gui.panels.slides import prediction_badge

CS = load_classset("ucs")
A, B = CS.subtype_names


class _Ctrl(QObject):
    current_run_changed = Signal(str)
    classes_changed = Signal()
    project_changed = Signal(object)
    prediction_added = Signal(str, str)
    message = Signal(str, str)

    def __init__(self, probs: np.ndarray, shares: dict[str, float]) -> None:
        super().__init__()
        n = len(probs)
        self.scores = TileScores("s", np.array([[i * 224, 0] for i in range(n)]), probs, 224, CS.class_names)
        self.pred = SimpleNamespace(predicted=max(shares, key=shares.get), probs=shares, uncertainty=0.3)
        self.project = SimpleNamespace(labels=SimpleNamespace(get=lambda _s: None))
        self.current_run = "r"

    def classset(self):
        return CS

    def predictions(self):
        return {"s": self.pred}

    def tile_scores(self, _slide):
        return self.scores


class _Window(QObject):
    current_view_changed = Signal(object)

    def current_view(self):
        return None


def _panel(qtbot, probs, shares) -> PredictionPanel:
    panel = PredictionPanel(_Ctrl(probs, shares), _Window())
    qtbot.addWidget(panel)
    panel._slide = "s"
    panel._fill_prediction()
    return panel


def _bar_texts(panel: PredictionPanel) -> dict[str, str]:
    out = {}
    for r in range(panel.bars.rowCount()):
        label = panel.bars.itemAt(r, QFormLayout.ItemRole.LabelRole).widget().text()
        out[label] = panel.bars.itemAt(r, QFormLayout.ItemRole.FieldRole).widget().text()
    return out


def _onehot(classes: list[int]) -> np.ndarray:
    return (np.eye(3, dtype=np.float32)[classes] * 0.8 + 0.1).astype(np.float32)


def test_prediction_box_shows_tile_votes_of_tumour_tiles(qtbot) -> None:
    # 27 tiles: 7 Normal, 20 tumour; 13 of those vote A: "65% of tumour tiles", as in the issue
    probs = _onehot([0] * 7 + [1] * 13 + [2] * 7)
    panel = _panel(qtbot, probs, {A: 13 / 20, B: 7 / 20})
    assert panel.bars_box.title() == "Tile votes: share of the 20 tumour tiles"
    assert _bar_texts(panel) == {A: "65% of tumour tiles", B: "35% of tumour tiles"}
    assert "probabilit" not in panel.bars_box.title().lower()
    assert "not probabilities" in panel.bars_box.toolTip()


def test_prediction_box_says_when_every_tile_voted(qtbot) -> None:
    probs = np.array([[0.9, 0.07, 0.03]] * 3 + [[0.9, 0.03, 0.07]], np.float32)  # no tumour tile: fallback
    panel = _panel(qtbot, probs, {A: 0.75, B: 0.25})
    assert panel.bars_box.title().startswith("Tile votes: share of all 4 tiles")
    assert _bar_texts(panel)[A] == "75% of all tiles"


def test_slide_list_badge_names_votes() -> None:
    text, tip = prediction_badge(SimpleNamespace(predicted=A, probs={A: 0.65, B: 0.35}, uncertainty=0.3))
    assert text == f"{A} · 65% of votes"
    assert tip.startswith("Tile votes (share of the voting tiles, not a probability)") and f"{B}: 35%" in tip
