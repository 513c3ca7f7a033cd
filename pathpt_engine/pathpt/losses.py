"""PathPT's tile loss (method.md §5.1): balanced CE on confident tiles, partial-label loss on candidate tiles,
and (from epoch 10) balanced CE on pseudo-labelled candidate tiles.

Recipes:
* ``paper``: the model output P = softmax(10·cos) is fed to cross-entropy *as logits*, so every term sees a
  second softmax (the reference's quirk, reproduced on purpose).
* ``clean``: the terms take the logits 10·cos directly (one softmax).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F  # noqa: N812

RECIPES = ("paper", "clean")


@dataclass(frozen=True)
class LossConfig:
    """Weights of the three terms and the epoch at which the pseudo-label term starts."""

    w_labelled: float = 1.0
    w_pseudo: float = 0.5
    w_candidate: float = 0.1
    pseudo_from_epoch: int = 10
    balanced: bool = True
    pseudo: bool = True

    def __post_init__(self) -> None:
        if min(self.w_labelled, self.w_pseudo, self.w_candidate) < 0:
            raise ValueError("LossConfig: loss weights must be >= 0")
        if self.pseudo_from_epoch < 0:
            raise ValueError("LossConfig: pseudo_from_epoch must be >= 0")


def balanced_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, balanced: bool = True) -> torch.Tensor:
    """CE per tile, averaged within each class present, then across those classes (plain mean if not balanced)."""
    per_tile = F.cross_entropy(logits.float(), labels.long(), reduction="none")
    if not balanced:
        return per_tile.mean()
    classes = torch.unique(labels)
    means = torch.stack([per_tile[labels == c].mean() for c in classes])
    return means.mean()


def pathpt_loss(
    scores: torch.Tensor, labels: torch.Tensor, epoch: int, config: LossConfig = LossConfig()
) -> dict[str, torch.Tensor]:
    """The three-term loss for one slide.

    Args:
        scores: [N, C] what goes into cross-entropy: P = softmax(10·cos) for the paper recipe (double softmax),
            or the logits 10·cos for the clean recipe.
        labels: int [N] tile labels: c >= 0 confident class; -k candidate "Normal or k" (k >= 1).
        epoch: 0-based epoch (the pseudo term is on for epoch >= config.pseudo_from_epoch).
        config: weights.

    Returns:
        dict with ``loss`` (differentiable), ``labelled``, ``candidate``, ``pseudo`` terms (0-d tensors) and
        ``pseudo_ratio`` (fraction of candidate tiles given a pseudo-label, as a 0-d tensor).
    """
    scores = scores.reshape(-1, scores.shape[-1]).float()
    labels = labels.reshape(-1).long()
    zero = scores.new_zeros(())
    out = {"labelled": zero, "candidate": zero, "pseudo": zero, "pseudo_ratio": zero}
    known = labels >= 0
    if known.any():
        out["labelled"] = balanced_cross_entropy(scores[known], labels[known], config.balanced)
    cand = ~known
    if cand.any():
        k = -labels[cand]
        q = scores[cand].softmax(dim=-1)
        rows = torch.arange(k.numel(), device=k.device)
        out["candidate"] = -torch.log(q[:, 0] + q[rows, k] + 1e-8).mean()
        if config.pseudo and epoch >= config.pseudo_from_epoch:
            top = q.argmax(dim=-1)
            ok = (top == 0) | (top == k)
            out["pseudo_ratio"] = ok.float().mean()
            if ok.any():
                out["pseudo"] = balanced_cross_entropy(scores[cand][ok], top[ok].detach(), config.balanced)
    out["loss"] = (config.w_labelled * out["labelled"] + config.w_pseudo * out["pseudo"]
                   + config.w_candidate * out["candidate"])
    return out
