"""DGRMIL baseline: shapes, parameter count, losses and their schedule, centres, lr schedule, training smoke."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from pathpt_engine.baselines.dgrmil import DGRMIL, DGRMILConfig, lr_at, patch_dropout, train_dgrmil
from pathpt_engine.baselines.train import predict_mil
from pathpt_engine.errors import JobCancelled
from pathpt_engine.jobs import collect


@pytest.mark.parametrize("n", [1, 2, 7, 300])
@pytest.mark.parametrize("c", [2, 5])
def test_shapes_and_heat_map(n, c):
    torch.manual_seed(0)
    model = DGRMIL(24, c, dim=64).eval()
    with torch.no_grad():
        out = model(torch.randn(n, 24))
    assert out["logits"].shape == (1, c)
    assert out["tile_scores"].shape == (n,)
    assert out["tile_scores"].sum().item() == pytest.approx(1.0, abs=1e-5)
    assert out["global"].shape == (5, 64) and (out["global"] >= 0).all()


def test_reference_width_forward():
    torch.manual_seed(0)
    with torch.no_grad():
        out = DGRMIL(1024, 3).eval()(torch.randn(50, 1024))
    assert out["logits"].shape == (1, 3) and out["tile_scores"].shape == (50,)


def test_parameter_count_matches_the_reference_layout():
    """mil-baselines.md §8: ≈4.34 M at D=1024, C=2, of which 131,072 (two unused 256x256 Linformer matrices) we omit."""
    n = sum(p.numel() for p in DGRMIL(1024, 2).parameters())
    assert n == 4_211_218
    assert round((n + 131_072) / 1e6, 2) == 4.34


def test_order_dependent_in_eval():
    torch.manual_seed(1)
    m = DGRMIL(16, 2, dim=64).eval()
    x = torch.randn(40, 16)
    with torch.no_grad():
        assert not torch.allclose(m(x)["logits"], m(x.flip(0))["logits"])


def test_extra_losses_switch_on_at_epoch_10():
    torch.manual_seed(2)
    m = DGRMIL(16, 3, dim=64).eval()
    out = m(torch.randn(12, 16))
    bce = F.binary_cross_entropy_with_logits(out["logits"], torch.tensor([[0.0, 1.0, 0.0]]))
    assert m.loss(out, 1, 9).item() == pytest.approx(bce.item(), rel=1e-6)
    extra = m.diversity_loss(out["global"]) + m.align_loss(out["global"], 1)
    assert torch.isfinite(extra)
    assert m.loss(out, 1, 10).item() == pytest.approx((bce + 0.1 * extra).item(), rel=1e-5)


def test_diversity_loss_rewards_orthogonal_vectors():
    m = DGRMIL(8, 2)
    assert m.diversity_loss(torch.eye(5, 512) * 3.0).item() == pytest.approx(0.0, abs=1e-5)
    near = torch.ones(5, 512) + 1e-3 * torch.randn(5, 512)
    assert m.diversity_loss(near).item() > 10.0


def test_centres_move_only_by_the_ema():
    torch.manual_seed(3)
    m = DGRMIL(16, 4, dim=64, mode="paper").train()
    before = m.centres.clone()
    out = m(torch.randn(10, 16))
    m.loss(out, 3, 12).backward()
    assert "centres" in dict(m.named_buffers()) and torch.equal(m.centres, before)
    m.update_centres(out["bag_mean"], 3)  # paper: any subtype but 0 -> the "positive" centre (row 1)
    assert torch.equal(m.centres[0], before[0])
    assert torch.allclose(m.centres[1], 0.4 * before[1] + 0.6 * out["bag_mean"])
    m.update_centres(out["bag_mean"], 0)
    assert torch.allclose(m.centres[0], 0.4 * before[0] + 0.6 * out["bag_mean"])
    clean = DGRMIL(16, 4, mode="clean")
    assert clean.centres.shape == (4, 512)
    b = clean.centres.clone()
    clean.update_centres(torch.ones(512), 3)
    assert torch.equal(clean.centres[:3], b[:3]) and torch.allclose(clean.centres[3], 0.4 * b[3] + 0.6)


def test_align_loss_positive_and_negative_centres():
    g = torch.zeros(2, 512)
    g[:, 0] = 1.0
    e0, e1, e2 = (torch.eye(512)[i] for i in range(3))
    paper = DGRMIL(8, 3, mode="paper")
    paper.centres.copy_(torch.stack([e1, e0]))  # c- = e1, c+ = e0 = the anchors: d+ = 0, d- = 1
    assert paper.align_loss(g, 2).item() == pytest.approx(0.0, abs=1e-6)
    clean = DGRMIL(8, 3, mode="clean")
    clean.centres.copy_(torch.stack([e0, e1, e2]))
    assert clean.align_loss(g, 0).item() == pytest.approx(0.0, abs=1e-6)  # positive c_0 = anchors
    assert clean.align_loss(g, 1).item() == pytest.approx(2.0, abs=1e-6)  # d+ = 1, nearest other = c_0: d- = 0


def test_lr_schedule():
    cfg = DGRMILConfig()
    lrs = [lr_at(cfg, e) for e in range(1, 201)]
    assert lrs[0] == 0.0 and lrs[9] == pytest.approx(5e-4) and lrs[10] == pytest.approx(5e-4)
    assert lrs[4] == pytest.approx(5e-4 * 4 / 9)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))
    assert lrs[-1] == pytest.approx(1e-5, rel=0.01)


def test_patch_dropout_keeps_size_order_and_rows():
    x = torch.arange(50, dtype=torch.float32)[:, None].repeat(1, 3)
    y = patch_dropout(x, 0.1, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    changed = (y != x).any(dim=1)
    assert int(changed.sum()) <= 5
    kept_values = set(x[~changed, 0].tolist())
    assert set(y[changed, 0].tolist()) <= kept_values
    assert torch.equal(patch_dropout(x[:5], 0.1, torch.Generator()), x[:5])  # too few tiles to drop any


def _bags(n_per_class: int, seed: int) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(seed)
    bags = []
    for y in (0, 1):
        for _ in range(n_per_class):
            x = rng.normal(size=(int(rng.integers(6, 20)), 16)).astype(np.float32)
            x[:, y] += 2.0
            bags.append((x, y))
    return bags


@pytest.mark.slow  # ~8 s on 2 shared cores
def test_training_smoke_learns_and_predicts():
    cfg = DGRMILConfig(epochs=12, warmup_epochs=2, lr=5e-3, seed=0, dim=64)  # dim 64: 32 landmarks, fast
    model, events = collect(train_dgrmil(cfg, 2, _bags(3, 0), val=_bags(1, 1)))
    assert len(events) == 12 and all(np.isfinite(e.metrics["loss"]) for e in events)
    assert events[0].metrics["lr"] == 0.0 and not model.training
    test = _bags(2, 2)
    correct = 0
    for x, y in test:
        probs, heat = predict_mil(model, x)
        assert probs.shape == (2,) and heat.shape == (x.shape[0],)
        assert probs.sum() == pytest.approx(1.0, abs=1e-5)
        correct += int(probs.argmax() == y)
    assert correct >= 3


def test_val_selection_and_cancel():
    cfg = DGRMILConfig(epochs=3, warmup_epochs=1, selection="val", mode="clean", dim=64)
    _, events = collect(train_dgrmil(cfg, 2, _bags(1, 0), val=_bags(1, 1)))
    assert all("val_ce" in e.metrics for e in events)
    stop = threading.Event()
    stop.set()
    with pytest.raises(JobCancelled):
        collect(train_dgrmil(cfg, 2, _bags(1, 0), cancel=stop))
    with pytest.raises(ValueError, match='mode must be paper/clean'):
        DGRMILConfig(mode="binary")
