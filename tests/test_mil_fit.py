"""TransMIL and DGRMIL, with their own optimisers, learning rates and schedules, fit an easy bag task.

Guards against a baseline that cannot learn (it would sit at chance in the few-shot table for the wrong reason).
The task: 3 classes, 4 bags each, 6-17 tiles per bag of 32-d noise; in every bag a few tiles carry the class's own
direction. Training accuracy is measured on the training bags in eval mode (no test set is involved).
"""

from __future__ import annotations

import numpy as np
import pytest

from pathpt_engine.baselines.dgrmil import DGRMILConfig, train_dgrmil
from pathpt_engine.baselines.train import MILConfig, predict_mil, train_mil
from pathpt_engine.jobs import collect


def _easy_bags(seed: int = 0, n_classes: int = 3, per_class: int = 4, dim: int = 32) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(n_classes, dim))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    bags = []
    for y in range(n_classes):
        for _ in range(per_class):
            n = int(rng.integers(6, 18))
            x = rng.normal(scale=0.5, size=(n, dim))
            hot = rng.choice(n, size=max(2, n // 3), replace=False)
            x[hot] += 2.0 * dirs[y]
            bags.append((x.astype(np.float32), y))
    return bags


def _train_accuracy(model, bags) -> float:  # noqa: ANN001
    return float(np.mean([predict_mil(model, x)[0].argmax() == y for x, y in bags]))


@pytest.mark.parametrize("seed", [0])
def test_transmil_fits_an_easy_bag_task(seed):
    bags = _easy_bags(seed)
    cfg = MILConfig(model="transmil", epochs=25, seed=seed)  # Lookahead(RAdam) lr 2e-4, wd 1e-5, accumulation 2
    assert (cfg.lr, cfg.weight_decay) == (2e-4, 1e-5)
    model, events = collect(train_mil(cfg, 3, bags))
    assert _train_accuracy(model, bags) >= 11 / 12
    assert events[-1].metrics["loss"] < 0.5 * events[0].metrics["loss"]


@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_dgrmil_fits_an_easy_bag_task(mode):
    bags = _easy_bags(2)
    # the reference optimiser and schedule (SGD 0.9, lr 5e-4, wd 1e-4; lr 0 at epoch 1, warm-up to epoch 10,
    # cosine to 1e-5), full width 512, a shorter budget; the extra losses switch on at epoch 10
    cfg = DGRMILConfig(epochs=30, mode=mode, seed=0)
    assert (cfg.lr, cfg.weight_decay, cfg.warmup_epochs, cfg.dim) == (5e-4, 1e-4, 10, 512)
    model, events = collect(train_dgrmil(cfg, 3, bags))
    assert _train_accuracy(model, bags) >= 11 / 12
    assert events[-1].metrics["loss"] < 0.5 * events[1].metrics["loss"]
