"""MIL baselines on frozen tile features (mil-baselines.md §1-§3): ABMIL (gated), CLAM-SB, TransMIL.

Every model takes one bag X [N, D] (float32, tiles in raster order) and returns a dict with ``logits`` [1, C]
(C = number of subtypes, no Normal class) and ``tile_scores`` [N] (the heat map, aligned with the input rows).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..ops.lumped_nystrom import use_lumped_nystrom
from ..ops.nystrom import TransLayer


class GatedAttentionNet(nn.Module):
    """D -> 512 (ReLU, dropout) -> gated attention (256) -> bag vector -> C logits. This is ABMIL."""

    def __init__(self, in_dim: int, n_classes: int, hidden: int = 512, attn_dim: int = 256,
                 dropout: float = 0.25) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"MIL model needs >= 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.fc = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.attn_a = nn.Sequential(nn.Linear(hidden, attn_dim), nn.Tanh(), nn.Dropout(dropout))
        self.attn_b = nn.Sequential(nn.Linear(hidden, attn_dim), nn.Sigmoid(), nn.Dropout(dropout))
        self.attn_c = nn.Linear(attn_dim, 1)
        self.classifier = nn.Linear(hidden, n_classes)

    def embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tile embeddings H [N, hidden] and raw attention scores s [N]."""
        h = self.fc(x)
        s = self.attn_c(self.attn_a(h) * self.attn_b(h)).squeeze(-1)
        return h, s

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, s = self.embed(x)
        a = s.softmax(dim=0)
        bag = a[None] @ h
        return {"logits": self.classifier(bag), "tile_scores": s, "attention": a, "h": h}


class ABMIL(GatedAttentionNet):
    """ABMIL as used in pathology benchmarks (CLAM-SB without the instance branch)."""


def smooth_top1_svm(scores: torch.Tensor, target: torch.Tensor, alpha: float = 1.0,
                    tau: float = 1.0) -> torch.Tensor:
    """Smooth top-1 SVM loss, averaged: tau * logsumexp((s_j + alpha*[j != y] - s_y) / tau).

    Falls back to the hard hinge max_j(s_j + alpha*[j != y]) - s_y where scores exceed 1e3 * tau.
    """
    margin = alpha * (1.0 - F.one_hot(target, scores.shape[-1]).to(scores.dtype))
    s_y = scores.gather(1, target[:, None])
    z = scores + margin - s_y
    smooth = tau * torch.logsumexp(z / tau, dim=1)
    hard = z.max(dim=1).values
    big = scores.detach().abs().max(dim=1).values > 1e3 * tau
    return torch.where(big, hard, smooth).mean()


class CLAMSB(GatedAttentionNet):
    """CLAM single-branch: gated attention + C instance classifiers trained on top/bottom-k attended tiles."""

    def __init__(self, in_dim: int, n_classes: int, k_sample: int = 8, bag_weight: float = 0.7,
                 dropout: float = 0.25) -> None:
        super().__init__(in_dim, n_classes, dropout=dropout)
        self.k_sample = k_sample
        self.bag_weight = bag_weight
        self.instance_classifiers = nn.ModuleList(nn.Linear(512, 2) for _ in range(n_classes))

    def instance_loss(self, attention: torch.Tensor, h: torch.Tensor, label: int) -> torch.Tensor:
        """Subtyping instance loss: class `label` sees top-k (1) and bottom-k (0); others see top-k as 0."""
        n = h.shape[0]
        k = min(self.k_sample, n // 2)
        if k < 1:
            return h.new_zeros(())
        top = torch.topk(attention, k).indices
        bottom = torch.topk(-attention, k).indices
        total = h.new_zeros(())
        for c, clf in enumerate(self.instance_classifiers):
            if c == label:
                idx = torch.cat([top, bottom])
                tgt = (torch.arange(2 * k, device=h.device) < k).long()  # k ones then k zeros, made on the device
            else:
                idx, tgt = top, torch.zeros(k, dtype=torch.long, device=h.device)
            total = total + smooth_top1_svm(clf(h[idx]), tgt)
        return total / self.n_classes

    def loss(self, out: dict[str, torch.Tensor], label: int, target: torch.Tensor | None = None) -> torch.Tensor:
        """Bag CE + instance loss; `target` is `label` as a long [1] tensor on the device, if the caller has one."""
        if target is None:
            target = torch.full((1,), label, dtype=torch.long, device=out["logits"].device)
        bag = F.cross_entropy(out["logits"], target)
        inst = self.instance_loss(out["attention"], out["h"], label)
        return self.bag_weight * bag + (1.0 - self.bag_weight) * inst


class PPEG(nn.Module):
    """Pyramid position encoding: grid + depthwise conv 7/5/3 on the sequence folded into a square."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in (7, 5, 3))

    def forward(self, x: torch.Tensor, side: int) -> torch.Tensor:
        cls, tokens = x[:, :1], x[:, 1:]
        b, n, c = tokens.shape
        grid = tokens.transpose(1, 2).reshape(b, c, side, side)
        grid = grid + sum(conv(grid) for conv in self.convs)
        return torch.cat([cls, grid.flatten(2).transpose(1, 2)], dim=1)


class TransMIL(nn.Module):
    """TransMIL: D -> 512, square padding with copies of the first rows, cls token, Nyström layer, PPEG,
    Nyström layer, LayerNorm, cls -> C logits. Heat map: the cls row of the last layer's Nyström attention, computed
    in eval mode only (training never reads it; "tile_scores" is absent from a training-mode output)."""

    def __init__(self, in_dim: int, n_classes: int, dim: int = 512, misaligned: bool = False) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"MIL model needs >= 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.fc = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU())
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.layer1 = TransLayer(dim, dropout=0.1, misaligned=misaligned)
        self.ppeg = PPEG(dim)
        self.layer2 = TransLayer(dim, dropout=0.1, misaligned=misaligned)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, n_classes)
        use_lumped_nystrom(self)  # exact fast path for bags shorter than the 256 landmarks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n = x.shape[0]
        h = self.fc(x)[None]
        side = math.ceil(math.sqrt(n))
        extra = side * side - n
        if extra:
            h = torch.cat([h, h[:, :extra]], dim=1)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1)
        h = self.ppeg(self.layer1(h), side)
        normed = self.layer2.norm(h)
        out = {}
        if not self.training:
            with torch.no_grad():
                out["tile_scores"] = self.layer2.attn.row_attention(normed.detach(), 0)[0, 1 : n + 1]
        h = h + self.layer2.attn(normed)
        cls = self.norm(h)[:, 0]
        return {"logits": self.classifier(cls), **out}


MODELS = {"abmil": ABMIL, "clam": CLAMSB, "transmil": TransMIL}


def build_mil(name: str, in_dim: int, n_classes: int) -> nn.Module:
    """Model by name ("abmil", "clam", "transmil")."""
    if name not in MODELS:
        raise ValueError(f"unknown MIL model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name](in_dim, n_classes)
