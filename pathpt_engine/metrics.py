"""Classification and grounding metrics (numpy only, no scikit-learn).

Slide level: balanced accuracy, weighted F1, macro one-vs-rest AUC (tie-aware), confusion matrix.
Tile level (grounding, where tumour masks exist): AUROC and Dice at the Youden-optimal threshold of the tumour
probability 1 - p_Normal, a tile being positive when more than half of its pixels lie in the mask.
"""

from __future__ import annotations

import math

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts [n_classes, n_classes]; rows = truth, columns = prediction."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"confusion_matrix: shapes differ {y_true.shape} vs {y_pred.shape}")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Mean recall over the classes present in `y_true`."""
    y_true = np.asarray(y_true, dtype=np.int64)
    n = int(max(y_true.max(initial=0), np.max(y_pred, initial=0)) + 1) if n_classes is None else n_classes
    cm = confusion_matrix(y_true, y_pred, n)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(cm)[present] / support[present]))


def weighted_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int | None = None) -> float:
    """Per-class F1 weighted by the true support (an F1 with 0/0 counts as 0, like sklearn)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    n = int(max(y_true.max(initial=0), np.max(y_pred, initial=0)) + 1) if n_classes is None else n_classes
    cm = confusion_matrix(y_true, y_pred, n)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(axis=0) + cm.sum(axis=1)
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    support = cm.sum(axis=1)
    if support.sum() == 0:
        return float("nan")
    return float((f1 * support).sum() / support.sum())


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    ranks = np.empty(len(x), dtype=float)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def binary_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney statistic with average ranks (ties count 1/2). NaN if one class is absent."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def macro_ovr_auc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary: AUC of column 1. Multi-class: mean one-vs-rest AUC over classes present (and not all)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[0] != len(y):
        raise ValueError(f"macro_ovr_auc: probs {p.shape} do not match {len(y)} labels")
    if p.shape[1] == 2:
        return binary_auc(y == 1, p[:, 1])
    aucs = [binary_auc(y == c, p[:, c]) for c in range(p.shape[1])]
    aucs = [a for a in aucs if not math.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, probs: np.ndarray | None,
                          n_classes: int) -> dict[str, object]:
    """bacc, weighted_f1, auc (if probs), confusion matrix as nested lists."""
    out: dict[str, object] = {
        "bacc": balanced_accuracy(y_true, y_pred, n_classes),
        "weighted_f1": weighted_f1(y_true, y_pred, n_classes),
        "confusion": confusion_matrix(y_true, y_pred, n_classes).tolist(),
    }
    if probs is not None:
        out["auc"] = macro_ovr_auc(y_true, probs)
    return out


# --- grounding ---------------------------------------------------------------------------------------------
def tiles_in_mask(coords: np.ndarray, tile_size: int, mask: np.ndarray, downsample: float = 1.0,
                  min_fraction: float = 0.5) -> np.ndarray:
    """Tile is positive when more than `min_fraction` of its pixels are in `mask`.

    Args:
        coords: [N, 2] level-0 top-left (x, y).
        tile_size: tile edge in level-0 pixels.
        mask: bool [H, W] at level-0 / `downsample` resolution (pixels outside count as negative).
        downsample: level-0 pixels per mask pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    integral = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), dtype=np.int64)
    integral[1:, 1:] = mask.cumsum(0).cumsum(1)
    c = np.asarray(coords, dtype=float) / downsample
    side = tile_size / downsample
    x0 = np.clip(np.round(c[:, 0]).astype(np.int64), 0, mask.shape[1])
    y0 = np.clip(np.round(c[:, 1]).astype(np.int64), 0, mask.shape[0])
    x1 = np.clip(np.round(c[:, 0] + side).astype(np.int64), 0, mask.shape[1])
    y1 = np.clip(np.round(c[:, 1] + side).astype(np.int64), 0, mask.shape[0])
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    area = max(1, int(round(side)) ** 2)
    return inside / area > min_fraction


def youden_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """Threshold t maximising TPR - FPR for the rule score >= t (first best in descending score order)."""
    y = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    thresholds = np.unique(s)[::-1]
    n_pos, n_neg = max(1, int(y.sum())), max(1, int((~y).sum()))
    best, best_t = -np.inf, float(thresholds[0]) if len(thresholds) else 0.5
    for t in thresholds:
        pred = s >= t
        j = (pred & y).sum() / n_pos - (pred & ~y).sum() / n_neg
        if j > best:
            best, best_t = j, float(t)
    return best_t


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """2|A∩B| / (|A| + |B|); 1.0 when both are empty."""
    a = np.asarray(pred, dtype=bool)
    b = np.asarray(truth, dtype=bool)
    denom = a.sum() + b.sum()
    return 1.0 if denom == 0 else float(2 * (a & b).sum() / denom)


def grounding_metrics(tumour_prob: np.ndarray, tile_positive: np.ndarray) -> dict[str, float]:
    """Tile AUROC and Dice at the Youden threshold of the tumour probability (1 - p_Normal)."""
    t = youden_threshold(tile_positive, tumour_prob)
    return {
        "auroc": binary_auc(tile_positive, tumour_prob),
        "threshold": t,
        "dice": dice(np.asarray(tumour_prob) >= t, tile_positive),
    }


def mean_sd(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; sd 0 for a single value) ignoring NaN."""
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0
