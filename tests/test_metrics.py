"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pathpt_engine import metrics as M


def test_confusion_bacc_wf1_hand_case():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 2, 2])
    cm = M.confusion_matrix(y, p, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert M.balanced_accuracy(y, p, 3) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    # F1: c0 = 2*2/(2+3)=0.8, c1 = 2*1/(2+2)=0.5, c2 = 2*1/(2+1)=2/3 ; weights 3,2,1
    assert M.weighted_f1(y, p, 3) == pytest.approx((0.8 * 3 + 0.5 * 2 + 2 / 3) / 6)


def test_f1_zero_division_counts_zero():
    assert M.weighted_f1(np.array([0, 0]), np.array([1, 1]), 2) == 0.0


def test_binary_auc_with_ties():
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.9])
    # pairs (pos, neg): (0.5,0.1)=1, (0.5,0.5)=0.5, (0.9,0.1)=1, (0.9,0.5)=1 -> 3.5/4
    assert M.binary_auc(y, s) == pytest.approx(0.875)
    assert math.isnan(M.binary_auc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_macro_ovr_auc_three_classes():
    y = np.array([0, 1, 2, 2])
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4]])
    a0 = M.binary_auc(y == 0, p[:, 0])  # 1.0
    a1 = M.binary_auc(y == 1, p[:, 1])  # pos 0.5 vs negs 0.3,0.6,0.3 -> 2/3
    a2 = M.binary_auc(y == 2, p[:, 2])  # pos 0.3,0.4 vs negs 0.1,0.3 -> (1+0.5+1+1)/4
    assert (a0, a1, a2) == pytest.approx((1.0, 2 / 3, 0.875))
    assert M.macro_ovr_auc(y, p) == pytest.approx((1 + 2 / 3 + 0.875) / 3)
    # binary uses column 1
    assert M.macro_ovr_auc(np.array([0, 1]), np.array([[0.7, 0.3], [0.4, 0.6]])) == 1.0


def test_tiles_in_mask_majority_rule():
    mask = np.zeros((8, 8), dtype=bool)
    mask[:, :3] = True  # left three columns
    coords = np.array([[0, 0], [2, 0], [4, 4]])  # tiles of 4x4 at downsample 1... use size 4
    pos = M.tiles_in_mask(coords, 4, mask)
    # tile 0 covers cols 0..3 -> 3/4 in mask; tile 1 cols 2..5 -> 1/4; tile 2 none
    assert pos.tolist() == [True, False, False]
    # downsample 2: level-0 tile of 8 px = 4 mask px
    assert M.tiles_in_mask(coords * 2, 8, mask, downsample=2).tolist() == [True, False, False]


def test_youden_and_dice_hand_case():
    y = np.array([0, 0, 1, 1, 1])
    s = np.array([0.1, 0.6, 0.4, 0.7, 0.9])
    # t=0.7: tpr 2/3 fpr 0 -> 0.667 ; t=0.4: tpr 1, fpr 1/2 -> 0.5 ; t=0.6: 2/3-1/2
    assert M.youden_threshold(y, s) == pytest.approx(0.7)
    g = M.grounding_metrics(s, y.astype(bool))
    assert g["dice"] == pytest.approx(2 * 2 / (2 + 3))
    assert g["auroc"] == pytest.approx(5 / 6)
    assert M.dice(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_mean_sd():
    m, s = M.mean_sd([0.5, 0.7, float("nan")])
    assert m == pytest.approx(0.6) and s == pytest.approx(math.sqrt(0.02))
