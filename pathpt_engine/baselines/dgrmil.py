"""DGRMIL (Zhu et al., ECCV 2024) on frozen tile features (mil-baselines.md §4), generalised to C subtypes.

Same contract as the other baselines (`models.py`): one bag X [N, D] -> ``logits`` [1, C] and ``tile_scores`` [N]
(the heat map: the token query's cross-attention over the tiles, head-averaged, before dropout) [ours].

Model: a shared instance MLP φ (D->512->512, ReLU, Dropout1d 0.1 that drops whole tiles); tiles -> TransLayer
(Nyström, output dropout 0.4) -> LayerNorm = keys/values; K = 5 learnable global vectors G0 in the *input* space
pass through φ without dropout, a learnable token is prepended and [t; G] -> TransLayer -> LayerNorm = queries;
8-head cross-attention (dropout 0.4 on the probabilities); Linear(512->512) -> LayerNorm; row 0 -> Linear(512->C).

Losses: BCE-with-logits on one-hot labels; from epoch 10 (1-based) + 0.1 L_div + 0.1 L_align, where
L_div = -log det(Ĝ Ĝᵀ + 1e-10 I) over the unit-normalised φ(G0) rows and L_align is a triplet loss (distance 1 - cos,
margin 1) with the rows of φ(G0) as anchors. Centres are buffers updated by a no-grad EMA of the bag's mean φ
output (c <- 0.4 c + 0.6 mean).
- ``mode="paper"``: the public code's binary rule: subtype 0 updates the "negative" centre, every other subtype
  the "positive" one; positive = c+, negative = c- for every bag. This is what a C-class run of the reference does.
- ``mode="clean"`` [ours]: one centre per subtype; for a bag of subtype y the positive is c_y and the negative,
  per anchor, the most similar other-subtype centre.

Training (`train_dgrmil`, same signature and selection rules as `train.train_mil`): SGD momentum 0.9, lr 5e-4,
weight decay 1e-4, per-epoch schedule lr 0 at epoch 1, linear warm-up to lr at epoch 10, cosine to 1e-5 at the last
epoch; "patch dropout" replaces a random 10% of the tiles (in place, order kept) by copies of kept tiles. fp32.
Not reproduced: the reference's test-set checkpoint selection and Youden thresholds; its one-off tile shuffle
(tiles stay in raster order, as for TransMIL and PathPT).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..jobs import Job, check_cancel
from ..ops.denormals import flush_denormals
from ..ops.gpu import cuda_numerics
from ..ops.lumped_nystrom import use_lumped_nystrom
from ..ops.nystrom import TransLayer
from .train import bags_on, run_epochs

EXTRA_LOSS_EPOCH = 10  # 1-based epoch from which L_div and L_align are added
EXTRA_LOSS_WEIGHT = 0.1


class CrossAttention(nn.Module):
    """Multi-head softmax attention of a few queries over the tiles; also returns head-averaged weights."""

    def __init__(self, dim: int = 512, heads: int = 8, dropout: float = 0.4) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(dim, dim) for _ in range(3))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        for lin in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.xavier_uniform_(lin.weight, gain=1 / math.sqrt(2))
        nn.init.xavier_uniform_(self.out_proj.weight)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q [1, Q, dim], kv [1, N, dim] -> (output [1, Q, dim], weights [1, Q, N])."""
        b, nq, d = q.shape
        n, hd = kv.shape[1], d // self.heads
        qh = self.q_proj(q).view(b, nq, self.heads, hd).transpose(1, 2) * hd**-0.5
        kh = self.k_proj(kv).view(b, n, self.heads, hd).transpose(1, 2)
        vh = self.v_proj(kv).view(b, n, self.heads, hd).transpose(1, 2)
        attn = (qh @ kh.transpose(-1, -2)).softmax(dim=-1)
        out = (self.dropout(attn) @ vh).transpose(1, 2).reshape(b, nq, d)
        return self.out_proj(out), attn.mean(dim=1)


class DGRMIL(nn.Module):
    """DGRMIL with K global vectors; see the module docstring. `mode` picks the centre rule ("paper"/"clean")."""

    centres: torch.Tensor  # a buffer (register_buffer below): [2 or C, dim]

    def __init__(self, in_dim: int, n_classes: int, dim: int = 512, n_global: int = 5, mode: str = "paper",
                 instance_dropout: float = 0.1, attn_dropout: float = 0.4, momentum: float = 0.4) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"MIL model needs >= 2 classes, got {n_classes}")
        if mode not in ("paper", "clean"):
            raise ValueError(f"DGRMIL: mode must be 'paper' or 'clean', got {mode!r}")
        self.n_classes, self.mode, self.momentum = n_classes, mode, momentum
        self.fc1, self.fc2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)
        self.tile_dropout = nn.Dropout1d(instance_dropout)
        self.global_vectors = nn.Parameter(torch.randn(n_global, in_dim))
        self.token = nn.Parameter(torch.randn(1, 1, dim))
        self.tile_layer, self.tile_norm = TransLayer(dim, dropout=attn_dropout), nn.LayerNorm(dim)
        self.global_layer, self.global_norm = TransLayer(dim, dropout=attn_dropout), nn.LayerNorm(dim)
        self.cross = CrossAttention(dim, 8, attn_dropout)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.classifier = nn.Linear(dim, n_classes)
        self.register_buffer("centres", torch.randn(2 if mode == "paper" else n_classes, dim))
        use_lumped_nystrom(self)  # exact fast path for sequences shorter than the 256 landmarks

    def phi(self, x: torch.Tensor, drop: bool) -> torch.Tensor:
        """Instance MLP on [1, N, D]; with `drop`, Dropout1d zeroes whole tiles (train mode only)."""
        h = F.relu(self.fc1(x))
        h = self.tile_dropout(h) if drop else h
        h = F.relu(self.fc2(h))
        return self.tile_dropout(h) if drop else h

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        tiles = self.phi(x[None], drop=True)  # [1, N, dim]
        kv = self.tile_norm(self.tile_layer(tiles))
        g = self.phi(self.global_vectors[None], drop=False)  # [1, K, dim], non-negative
        q = self.global_norm(self.global_layer(torch.cat([self.token, g], dim=1)))
        out, weights = self.cross(q, kv)
        z = self.head(out)
        return {"logits": self.classifier(z[:, 0]), "tile_scores": weights[0, 0], "global": g[0],
                "bag_mean": tiles[0].mean(dim=0).detach()}

    @torch.no_grad()
    def update_centres(self, bag_mean: torch.Tensor, label: int) -> None:
        """EMA of the bag's mean φ output into its centre (paper: 0 = subtype 0, 1 = any other subtype)."""
        idx = (0 if label == 0 else 1) if self.mode == "paper" else label
        self.centres[idx].mul_(self.momentum).add_(bag_mean, alpha=1.0 - self.momentum)

    def diversity_loss(self, g: torch.Tensor) -> torch.Tensor:
        """-log det(Ĝ Ĝᵀ + 1e-10 I) over unit rows, in float32."""
        gn = F.normalize(g.float(), dim=-1)
        gram = gn @ gn.t() + 1e-10 * torch.eye(gn.shape[0], device=gn.device)
        return -torch.logdet(gram)

    def align_loss(self, g: torch.Tensor, label: int) -> torch.Tensor:
        """Triplet loss, distance 1 - cos, margin 1, anchors = rows of φ(G0), averaged over them."""
        c = self.centres
        if self.mode == "paper":
            pos, neg = c[1].expand_as(g), c[0].expand_as(g)
        else:
            others = torch.cat([c[:label], c[label + 1:]])
            sim = F.normalize(g, dim=-1) @ F.normalize(others, dim=-1).t()  # [K, C-1]
            pos, neg = c[label].expand_as(g), others[sim.argmax(dim=1)]
        d_pos = 1 - F.cosine_similarity(g, pos, dim=-1)
        d_neg = 1 - F.cosine_similarity(g, neg, dim=-1)
        return F.relu(d_pos - d_neg + 1.0).mean()

    def loss(self, out: dict[str, torch.Tensor], label: int, epoch: int) -> torch.Tensor:
        """Bag BCE on one-hot labels, plus the weighted extra losses from `EXTRA_LOSS_EPOCH` (1-based `epoch`)."""
        logits = out["logits"]
        target = F.one_hot(torch.tensor([label], device=logits.device), self.n_classes).to(logits.dtype)
        total = F.binary_cross_entropy_with_logits(logits, target)
        if epoch >= EXTRA_LOSS_EPOCH:
            g = out["global"]
            total = total + EXTRA_LOSS_WEIGHT * (self.diversity_loss(g) + self.align_loss(g, label))
        return total


@dataclass(frozen=True)
class DGRMILConfig:
    """DGRMIL training settings (reference defaults; `epochs` is a budget, `mode` the centre rule, `dim` the model
    width: 512 in the reference; the Nyström layers use dim/2 landmarks, so smaller widths only for quick tests)."""

    epochs: int = 200
    lr: float = 5e-4
    min_lr: float = 1e-5
    warmup_epochs: int = 10
    weight_decay: float = 1e-4
    patch_drop: float = 0.1
    mode: str = "paper"
    selection: str = "last"
    seed: int = 0
    device: str = "cpu"
    dim: int = 512

    def __post_init__(self) -> None:
        if self.dim < 16 or self.dim % 16:
            raise ValueError(f"DGRMILConfig: dim must be a positive multiple of 16, got {self.dim}")
        if self.epochs < 1 or self.warmup_epochs < 1:
            raise ValueError("DGRMILConfig: epochs and warmup_epochs must be >= 1")
        if self.mode not in ("paper", "clean") or self.selection not in ("last", "val"):
            raise ValueError("DGRMILConfig: mode must be paper/clean and selection last/val")
        if not 0.0 <= self.patch_drop < 1.0 or self.lr <= 0 or self.min_lr < 0:
            raise ValueError("DGRMILConfig: need 0 <= patch_drop < 1, lr > 0, min_lr >= 0")


def lr_at(cfg: DGRMILConfig, epoch: int) -> float:
    """Learning rate of 1-based `epoch`: 0 at epoch 1, linear to `lr` at `warmup_epochs`, then cosine to `min_lr`."""
    i, w = epoch - 1, cfg.warmup_epochs
    if i < w:
        return cfg.lr * i / max(1, w - 1)
    span = max(1, cfg.epochs - w)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * (i - w) / span))


def patch_dropout(x: torch.Tensor, frac: float, gen: torch.Generator) -> torch.Tensor:
    """Replace a random `frac` of the rows by copies of randomly chosen kept rows (size and order kept)."""
    n = x.shape[0]
    k = int(n * frac)
    if k < 1 or k >= n:
        return x
    perm = torch.randperm(n, generator=gen)  # indices drawn on the CPU generator (same draws on any device)
    dropped, kept = perm[:k], perm[k:]
    src = kept[torch.randint(len(kept), (k,), generator=gen)]
    out = x.clone()
    out[dropped.to(x.device)] = x[src.to(x.device)]
    return out


def train_dgrmil(
    cfg: DGRMILConfig,
    n_classes: int,
    train: list[tuple[np.ndarray, int]],
    val: list[tuple[np.ndarray, int]] | None = None,
    cancel: threading.Event | None = None,
) -> Job[nn.Module]:
    """Train DGRMIL on bags (features [N, D], 0-based subtype label); returns the selected model in eval mode.

    Selection as `train_mil`: "last" epoch, or "val" = lowest validation bag CE (ties to the earlier epoch). On
    CUDA under strict fp32 numerics (`ops.gpu.cuda_numerics`); on the CPU with denormals flushed (`ops.denormals`).
    """
    if not train:
        raise ValueError("train_dgrmil: no training bags")
    dev = torch.device(cfg.device)
    with cuda_numerics(dev), flush_denormals(dev):
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        bags = bags_on(train, dev)  # on the device once
        vbags = bags_on(val or [], dev)
        model = DGRMIL(bags[0][0].shape[1], n_classes, dim=cfg.dim, mode=cfg.mode).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)

        def one_epoch(epoch: int) -> dict[str, float]:
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch)
            loss = _dgrmil_epoch(model, opt, [bags[j] for j in rng.permutation(len(bags))], epoch, cfg, gen, cancel)
            return {"loss": loss / len(bags), "lr": lr_at(cfg, epoch)}

        return (yield from run_epochs(model, cfg.epochs, one_epoch, vbags, cfg.selection == "val" and bool(vbags),
                                      "train-dgrmil"))


def _dgrmil_epoch(model: DGRMIL, opt: torch.optim.Optimizer, bags: list[tuple[torch.Tensor, int]], epoch: int,
                  cfg: DGRMILConfig, gen: torch.Generator, cancel: threading.Event | None) -> float:
    """One pass over `bags` in the given order, a step per bag; returns the summed loss (read once per epoch)."""
    model.train()
    total = torch.zeros((), device=bags[0][0].device)
    for x, y in bags:
        check_cancel(cancel)
        out = model(patch_dropout(x, cfg.patch_drop, gen))
        loss = model.loss(out, y, epoch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.update_centres(out["bag_mean"], y)
        total += loss.detach()
    return float(total)
