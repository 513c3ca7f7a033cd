"""Losses, tile labels, vote rule and lr schedule against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pathpt_engine.ops.vote import tile_vote
from pathpt_engine.pathpt.losses import LossConfig, balanced_cross_entropy, pathpt_loss
from pathpt_engine.pathpt.pseudo import tile_labels
from pathpt_engine.pathpt.schedule import lr_factor


def ce(row, y):
    return -math.log(math.exp(row[y]) / sum(math.exp(v) for v in row))


def test_balanced_ce_hand_case():
    s = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    y = torch.tensor([0, 1, 0])
    want = ((ce([0.9, 0.1], 0) + ce([0.6, 0.4], 0)) / 2 + ce([0.2, 0.8], 1)) / 2
    assert balanced_cross_entropy(s, y).item() == pytest.approx(want, rel=1e-6)
    plain = (ce([0.9, 0.1], 0) + ce([0.6, 0.4], 0) + ce([0.2, 0.8], 1)) / 3
    assert balanced_cross_entropy(s, y, balanced=False).item() == pytest.approx(plain, rel=1e-6)


def test_loss_terms_hand_case_before_and_after_epoch_10():
    rows = [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]
    s = torch.tensor(rows)
    y = torch.tensor([0, 2, -2, -1])
    lab = (ce(rows[0], 0) + ce(rows[1], 2)) / 2

    def cand(row, k):
        e = [math.exp(v) for v in row]
        return -math.log((e[0] + e[k]) / sum(e) + 1e-8)

    cnd = (cand(rows[2], 2) + cand(rows[3], 1)) / 2
    out = pathpt_loss(s, y, epoch=9)
    assert out["labelled"].item() == pytest.approx(lab, rel=1e-6)
    assert out["candidate"].item() == pytest.approx(cnd, rel=1e-6)
    assert out["pseudo"].item() == 0.0
    assert out["loss"].item() == pytest.approx(lab + 0.1 * cnd, rel=1e-6)
    out = pathpt_loss(s, y, epoch=10)
    # tile 2 (candidate {0,2}) argmax 0 -> pseudo 0; tile 3 (candidate {0,1}) argmax 2 -> ignored
    assert out["pseudo"].item() == pytest.approx(ce(rows[2], 0), rel=1e-6)
    assert out["pseudo_ratio"].item() == pytest.approx(0.5)
    assert out["loss"].item() == pytest.approx(lab + 0.5 * ce(rows[2], 0) + 0.1 * cnd, rel=1e-6)
    off = pathpt_loss(s, y, epoch=15, config=LossConfig(pseudo=False))
    assert off["pseudo"].item() == 0.0


def test_double_softmax_floor_for_three_classes():
    """Paper recipe: CE on probabilities; the best achievable CE with C=3 is -log(e/(e+2))."""
    p = torch.tensor([[1.0, 0.0, 0.0]])
    out = pathpt_loss(p, torch.tensor([0]), epoch=0)
    assert out["labelled"].item() == pytest.approx(-math.log(math.e / (math.e + 2)), rel=1e-6)


def test_loss_gradients_flow_and_empty_sets():
    s = torch.randn(5, 3, requires_grad=True)
    out = pathpt_loss(s, torch.tensor([-1, -2, -1, -2, -1]), epoch=12)
    out["loss"].backward()
    assert s.grad is not None and torch.isfinite(s.grad).all()
    assert out["labelled"].item() == 0.0
    out = pathpt_loss(torch.randn(3, 3), torch.tensor([0, 1, 1]), epoch=12)
    assert out["candidate"].item() == 0.0 and out["pseudo"].item() == 0.0


def test_tile_labels_rule_and_ties():
    w = torch.eye(3)
    f = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0], [0, 0.5, 0.5]])
    # slide subtype 0 -> k = 1
    assert tile_labels(f, w, 0).tolist() == [0, 1, -1, 0, 1]
    # slide subtype 1 -> k = 2
    assert tile_labels(f, w, 1).tolist() == [0, -2, 2, 0, -2]
    with pytest.raises(ValueError, match='slide_label 2 out of range'):
        tile_labels(f, w, 2)


def test_vote_majority_of_non_normal():
    p = np.eye(3)[[0, 0, 0, 1, 1, 2]]
    sub, prob = tile_vote(p)
    assert sub == 0 and np.allclose(prob, [2 / 3, 1 / 3])


def test_vote_fallback_when_all_normal_or_tied():
    # all Normal: recount on subtype columns only
    p = np.array([[0.9, 0.02, 0.08], [0.8, 0.15, 0.05], [0.7, 0.1, 0.2]])
    sub, prob = tile_vote(p)
    assert sub == 1 and np.allclose(prob, [1 / 3, 2 / 3])
    # tie between subtypes 1 and 2 (one tile each): fallback over columns 1..2
    p = np.array([[0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4], [0.6, 0.3, 0.1]])
    sub, prob = tile_vote(p)
    assert sub == 0 and np.allclose(prob, [0.5, 0.5])  # 2-2 tie in fallback -> first index
    p = np.array([[0.1, 0.6, 0.3], [0.1, 0.2, 0.7], [0.5, 0.1, 0.4], [0.6, 0.1, 0.3]])
    assert tile_vote(p)[0] == 1  # fallback counts [1, 3]


def test_schedule_values():
    assert lr_factor(0, 20) == 0.0
    assert lr_factor(1, 20) == 0.5
    assert lr_factor(2, 20) == pytest.approx(1.0)
    assert lr_factor(19, 20) == pytest.approx(0.5 * (1 + math.cos(math.pi * 17 / 18)))
    assert 1e-4 * lr_factor(19, 20) == pytest.approx(7.6e-7, rel=0.01)
    assert lr_factor(0, 5) == pytest.approx(1.0)  # int(0.5) = 0: no warm-up
