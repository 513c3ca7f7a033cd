"""The spatial-aware module (method.md §3.3): 1-D convolutions k=3/5/7 + one Nyström layer over the tile order."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..ops.lumped_nystrom import use_lumped_nystrom
from ..ops.nystrom import TransLayer


class SpatialAwareModule(nn.Module):
    """Z = LN(H + Nyström(LN_t(H))), H = X + Σ_k ReLU(LN(Conv1d_k(X))), with one LN shared by the conv branches
    and the output. Input and output [B, N, D] (tiles in raster order); every size scales with D.

    Args:
        dim: tile embedding width D (must be a multiple of 16).
        dropout: dropout of the Nyström output projection (reference 0.1).
        misaligned: reproduce nystrom-attention 0.0.9's row shift (comparisons only).
        identity: ablation switch: return X unchanged (no parameters are used).
        fast: reassociate the Nyström product and, for sequences shorter than the landmark count, use the exact
            lumped path (`lumped_nystrom`); same parameters and maths, float rounding aside. False keeps the
            reference's operations, for side-by-side benchmarks.
    """

    def __init__(self, dim: int, dropout: float = 0.1, misaligned: bool = False, identity: bool = False,
                 fast: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.identity = identity
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, k, padding=k // 2) for k in (3, 5, 7))
        self.norm = nn.LayerNorm(dim)
        self.act = nn.ReLU()
        self.trans = TransLayer(dim, dropout=dropout, misaligned=misaligned, reassociate=fast)
        if fast:  # slides with fewer tiles than landmarks (D/2): the exact lumped path, no m x m pinv on pad rows
            use_lumped_nystrom(self.trans)
        # recompute activations in backward instead of keeping them (same results, RNG state preserved): the
        # trainer switches it on to retry a step that ran out of device memory
        self.checkpoint_activations = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, D] or [N, D] -> same shape."""
        if self.identity:
            return x
        squeeze = x.ndim == 2
        if squeeze:
            x = x[None]
        if self.checkpoint_activations and torch.is_grad_enabled():
            z = checkpoint(self._body, x, use_reentrant=False)
        else:
            z = self._body(x)
        return z[0] if squeeze else z

    def _body(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.transpose(1, 2).contiguous()  # one copy for the three convolutions, not one each
        h = x
        for conv in self.convs:
            h = h + self.act(self.norm(conv(xt).transpose(1, 2)))
        return self.norm(self.trans(h))
