"""Model selection of the MIL baselines: ``-clean`` picks the lowest bag CE on held-out pool slides, never test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pathpt_engine import evaluate
from pathpt_engine.baselines.models import build_mil
from pathpt_engine.baselines.train import MILConfig, train_mil
from pathpt_engine.evaluate import EvalConfig, FoldRunner
from pathpt_engine.jobs import collect
from pathpt_engine.pathpt.splits import Fold
from pathpt_engine.pathpt.trainer import SlideData
from pathpt_engine.prompts.classsets import load_classset


def _bags(seed: int, n: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    return [(rng.normal(size=(int(rng.integers(3, 9)), 8)).astype(np.float32), i % 2) for i in range(n)]


def _ce(model: torch.nn.Module, bags: list[tuple[np.ndarray, int]]) -> float:
    with torch.no_grad():
        return float(np.mean([F.cross_entropy(model(torch.as_tensor(x))["logits"], torch.tensor([y])).item()
                              for x, y in bags]))


@pytest.mark.parametrize("name", ["abmil", "transmil"])
def test_val_selection_returns_the_lowest_val_ce_epoch(name):
    train, val = _bags(0, 4), _bags(1, 4)
    model, events = collect(train_mil(MILConfig(model=name, epochs=8, lr=3e-3, selection="val"), 2, train, val))
    curve = [e.metrics["val_ce"] for e in events]
    assert len(set(np.round(curve, 6))) > 1  # the curve moves, so picking the minimum is a real choice
    assert _ce(model.eval(), val) == pytest.approx(min(curve), rel=1e-5)


def _slides(ids: list[str]) -> dict[str, SlideData]:
    rng = np.random.default_rng(2)
    return {s: SlideData(s, rng.normal(size=(6, 8)).astype(np.float32), np.zeros((6, 2), dtype=np.int64))
            for s in ids}


@pytest.mark.parametrize("method", ["abmil", "abmil-clean", "clam-clean", "transmil-clean", "dgrmil",
                                    "dgrmil-clean"])
def test_clean_methods_select_on_pool_slides_and_paper_on_the_last_epoch(method, monkeypatch):
    seen: dict = {}

    def fake_train(cfg, n_classes, train, val=None, cancel=None):  # noqa: ANN001, ANN202
        seen.update(cfg=cfg, train=train, val=val)
        yield from ()
        return build_mil("abmil", 8, n_classes).eval()

    monkeypatch.setattr(evaluate, "train_mil", fake_train)
    monkeypatch.setattr(evaluate, "train_dgrmil", fake_train)
    fold = Fold(0, 1, train={"a": 0, "b": 1, "c": 2}, val={"d": 0, "e": 1}, test={"t1": 0, "t2": 1, "t3": 2})
    slides = _slides(["a", "b", "c", "d", "e", "t1", "t2", "t3"])
    runner = FoldRunner(None, load_classset("synthetic"), EvalConfig(methods=(method,), mil_epochs=7), None)
    outs, _ = collect(runner.run(method, fold, slides))
    assert len(outs) == 3
    cfg = seen["cfg"]
    assert cfg.epochs == 7 and cfg.seed == 0
    assert cfg.selection == ("val" if method.endswith("-clean") else "last")
    test_ids = {id(slides[s].features) for s in fold.test}
    assert not test_ids & {id(x) for x, _ in seen["train"] + seen["val"]}
    assert [id(x) for x, _ in seen["val"]] == [id(slides[s].features) for s in fold.val]
    if method.startswith("dgrmil"):
        assert cfg.mode == ("clean" if method == "dgrmil-clean" else "paper")
    else:
        assert cfg.model == method.removesuffix("-clean")
