"""Slide prediction by tile vote (method.md §5.3)."""

from __future__ import annotations

import numpy as np
import torch


def tile_vote(probs: np.ndarray) -> tuple[int, np.ndarray]:
    """Vote over tile argmaxes.

    Args:
        probs: [N, C] tile scores (class 0 = Normal, C >= 2).

    Returns:
        (subtype index 0-based, normalised subtype counts [C-1]).

    Rule: counts of the argmax over all C classes; if no tile is non-Normal or the largest non-Normal count is
    tied, recount with the argmax over the subtype columns only. Ties go to the first index.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"tile_vote: need [N, C>=2] scores, got {probs.shape}")
    n_sub = probs.shape[1] - 1
    if probs.shape[0] == 0:
        return 0, np.full(n_sub, 1.0 / n_sub)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])[1:]
    top = counts.max()
    if top == 0 or int((counts == top).sum()) > 1:
        counts = np.bincount(probs[:, 1:].argmax(axis=1), minlength=n_sub)
    return int(counts.argmax()), counts / counts.sum()


def tile_vote_tensor(probs: torch.Tensor) -> torch.Tensor:
    """`tile_vote`'s subtype index as a 0-d long tensor on `probs`' device, without a host sync (training steps)."""
    n, c = probs.shape
    ones = probs.new_ones(n)
    counts = probs.new_zeros(c).scatter_add_(0, probs.argmax(dim=1), ones)[1:]
    top = counts.max()
    fallback = (top == 0) | ((counts == top).sum() > 1)
    sub_counts = probs.new_zeros(c - 1).scatter_add_(0, probs[:, 1:].argmax(dim=1), ones)
    return torch.where(fallback, sub_counts, counts).argmax()
