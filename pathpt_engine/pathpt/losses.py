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
    return _class_balanced_mean(per_tile, labels.long(), torch.ones_like(per_tile), logits.shape[-1], balanced)


def _class_balanced_mean(values: torch.Tensor, classes: torch.Tensor, keep: torch.Tensor, n_classes: int,
                         balanced: bool) -> torch.Tensor:
    """Mean of `values` over the kept entries (`keep` 0/1), per class then across the classes present; no host
    sync (no boolean indexing, no `unique`): 0 when nothing is kept. Per-class sums are one-hot masked sums, not
    `scatter_add_` (atomic adds, whose order, and so rounding, varies between CUDA runs) nor a matmul (TF32)."""
    kept = values * keep
    if not balanced:
        return kept.sum() / keep.sum().clamp(min=1)
    onehot = (classes[:, None] == torch.arange(n_classes, device=classes.device)).to(values.dtype)  # [N, C]
    counts = (onehot * keep[:, None]).sum(dim=0)
    sums = (onehot * kept[:, None]).sum(dim=0)
    return (sums / counts.clamp(min=1)).sum() / (counts > 0).sum().clamp(min=1)


@dataclass(frozen=True)
class LabelPlan:
    """One slide's tile labels split once, on the labels' device, so that a loss step never syncs with the host.

    Tile labels never change during a run: the trainer builds one plan per slide before the first step.
    """

    known_idx: torch.Tensor  # long [K]: tiles with a confident class
    known_labels: torch.Tensor  # long [K]
    cand_idx: torch.Tensor  # long [M]: candidate tiles ("Normal or k")
    cand_k: torch.Tensor  # long [M]: k >= 1
    n_known: int
    n_cand: int

    @classmethod
    def build(cls, labels: torch.Tensor) -> LabelPlan:
        """Split int [N] tile labels (c >= 0 confident, -k candidate); syncs once (here, not per step)."""
        labels = labels.reshape(-1).long()
        known = labels >= 0
        known_idx = known.nonzero().flatten()
        cand_idx = (~known).nonzero().flatten()
        return cls(known_idx, labels[known_idx], cand_idx, -labels[cand_idx], int(known_idx.numel()),
                   int(cand_idx.numel()))


def pathpt_loss(
    scores: torch.Tensor, labels: torch.Tensor | LabelPlan, epoch: int, config: LossConfig = LossConfig()
) -> dict[str, torch.Tensor]:
    """The three-term loss for one slide.

    Args:
        scores: [N, C] what goes into cross-entropy: P = softmax(10·cos) for the paper recipe (double softmax),
            or the logits 10·cos for the clean recipe.
        labels: int [N] tile labels: c >= 0 confident class; -k candidate "Normal or k" (k >= 1); or their
            `LabelPlan` (built once per slide: then the loss needs no host sync).
        epoch: 0-based epoch (the pseudo term is on for epoch >= config.pseudo_from_epoch).
        config: weights.

    Returns:
        dict with ``loss`` (differentiable), ``labelled``, ``candidate``, ``pseudo`` terms (0-d tensors) and
        ``pseudo_ratio`` (fraction of candidate tiles given a pseudo-label, as a 0-d tensor).
    """
    plan = labels if isinstance(labels, LabelPlan) else LabelPlan.build(labels.to(scores.device))
    scores = scores.reshape(-1, scores.shape[-1]).float()
    zero = scores.new_zeros(())
    out = {"labelled": zero, "candidate": zero, "pseudo": zero, "pseudo_ratio": zero}
    if plan.n_known:
        s = scores.index_select(0, plan.known_idx)
        per_tile = F.cross_entropy(s, plan.known_labels, reduction="none")
        out["labelled"] = _class_balanced_mean(per_tile, plan.known_labels, torch.ones_like(per_tile),
                                               scores.shape[-1], config.balanced)
    if plan.n_cand:
        s = scores.index_select(0, plan.cand_idx)
        q = s.softmax(dim=-1)
        k_mask = (plan.cand_k[:, None] == torch.arange(q.shape[1], device=q.device)).to(q.dtype)  # no gather:
        out["candidate"] = -torch.log(q[:, 0] + (q * k_mask).sum(dim=1) + 1e-8).mean()  # its CUDA backward is atomic
        if config.pseudo and epoch >= config.pseudo_from_epoch:
            top = q.argmax(dim=-1).detach()
            ok = ((top == 0) | (top == plan.cand_k)).float()
            out["pseudo_ratio"] = ok.mean()
            per_tile = F.cross_entropy(s, top, reduction="none")
            out["pseudo"] = _class_balanced_mean(per_tile, top, ok, scores.shape[-1], config.balanced)
    out["loss"] = (config.w_labelled * out["labelled"] + config.w_pseudo * out["pseudo"]
                   + config.w_candidate * out["candidate"])
    return out
