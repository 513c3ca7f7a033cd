"""Exact fast path of the shared Nyström attention for short sequences (n < m landmarks): MIL baselines and PathPT.

Why: TransMIL and DGRMIL use m = 256 landmarks. A bag of ~20 tiles is zero-padded at the front to 256 rows, so
every layer runs the 6-iteration Moore-Penrose pseudo-inverse (5 batched 256x256 matmuls per iteration, 8 heads)
and its backward on a 256x256 matrix that has only n + 1 distinct rows and columns. Profiled at 1 thread, that
pinv and its backward are ~85% of a TransMIL/DGRMIL training step (~1.1-1.5 s per step on a 20-tile bag).

The same numbers, with far fewer flops: with n <= m the landmark runs have length 1, so the landmarks are the
padded q and k themselves and attn1 = attn2 = attn3 = A, the softmax over the p = m - n zero pad rows plus the n
real rows. All p pad rows of A are equal, and in each row all p pad columns are equal (pad q = k = v = 0: the qkv
projection has no bias). Every matrix the Newton-Schulz iteration builds from A keeps that structure, because the
identity only ever appears multiplied by such a matrix (I - Y is expanded). So each one is stored "lumped" as an
(n+1)x(n+1) matrix (index 0 stands for every pad index) and a product over the full index becomes
``L1 @ diag(w) @ L2`` with w = (p, 1, ..., 1). The depthwise value convolution over [zero pad rows; v] equals the
zero-padded convolution over v. Only the real rows are kept (the aligned output), so the pad rows are never formed.

Mathematically identical to `NystromAttention.forward` / `row_attention`; equal to ~1e-6 in float32
(tests/test_mil_nystrom_fast.py). Under autocast it runs too: the lumped softmax and pseudo-inverse stay in float32
(autocast off, as `moore_penrose_pinv` on the shared path), the products around them follow autocast. Every other case
(n > m, n a multiple of m, `misaligned`, half-precision inputs outside autocast, a qkv bias) falls back to the shared
implementation. The parameters and state-dict keys are those of `NystromAttention`.

The value convolution goes through `nystrom.sequence_depthwise_conv`, whose kernel gradient is exact (torch 2.13's
own CPU kernel gradient is wrong at lengths 256 + 960·i, which a KEEP slide of exactly 256 tiles would hit here).
"""

from __future__ import annotations

import torch
from torch import nn

from .nystrom import NystromAttention, no_autocast, sequence_depthwise_conv


def _lumped_softmax(q: torch.Tensor, k: torch.Tensor, log_w: torch.Tensor) -> torch.Tensor:
    """Lumped softmax(Q Kᵀ) over [pad; real] rows/keys: q, k [B,h,n,d] real rows -> [B,h,n+1,n+1]."""
    b, h, n, _ = q.shape
    scores = q.new_zeros(b, h, n + 1, n + 1, dtype=log_w.dtype)  # float32 even when q @ kᵀ ran in half
    scores[:, :, 1:, 1:] = q @ k.transpose(-1, -2)
    # softmax over the full keys: each pad key (score 0) counted p times; entry = exp(s_j) / sum_full exp(s)
    return (scores + log_w).softmax(dim=-1) / log_w.exp()


def _wmm(a: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Full-index product of two lumped matrices: a @ diag(w) @ b."""
    return (a * w) @ b


def lumped_pinv(a: torch.Tensor, w: torch.Tensor, iters: int) -> torch.Tensor:
    """`moore_penrose_pinv` of the full matrix represented by lumped `a` [..., n+1, n+1] with weights `w`.

    Runs in float32 with autocast off (half inputs are promoted), like `moore_penrose_pinv`."""
    with no_autocast(a.device):
        return _lumped_pinv_fp32(a.float() if a.dtype in (torch.float16, torch.bfloat16) else a, w.to(a.dtype), iters)


def _lumped_pinv_fp32(a: torch.Tensor, w: torch.Tensor, iters: int) -> torch.Tensor:
    col = (a.abs() * w).sum(dim=-1)  # full row sums (each pad column counted w_0 times)
    row = (a.abs() * w[:, None]).sum(dim=-2)  # full column sums
    z = a.transpose(-1, -2) / (col.max() * row.max())
    for _ in range(iters):
        y = _wmm(a, w, z)  # x z
        p1 = 7 * y - _wmm(y, w, y)  # xz (7I - xz)
        p2 = 15 * y - _wmm(y, w, p1)  # xz (15I - xz(7I - xz))
        z = 0.25 * (13 * z - _wmm(z, w, p2))  # z (13I - ...)
    return z


class LumpedNystromAttention(NystromAttention):
    """`NystromAttention` with the exact lumped fast path for n < m (see the module docstring)."""

    def _fast_ok(self, x: torch.Tensor) -> bool:
        n = x.shape[1]
        # the lumped softmax and pseudo-inverse run in float32 under autocast too (see lumped_pinv)
        return (not self.misaligned and n < self.num_landmarks and x.dtype == torch.float32
                and self.to_qkv.bias is None)

    def _lumped(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Real-row q, k, v [B,h,n,d], lumped A and pinv(A) [B,h,n+1,n+1] and the weights w [n+1]."""
        n = x.shape[1]
        q, k, v = (self._split(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        q = q * self.scale
        w = torch.ones(n + 1, dtype=x.dtype, device=x.device)
        w[0] = self.num_landmarks - n
        a = _lumped_softmax(q, k, w.log())
        return q, k, v, a, lumped_pinv(a, w, self.pinv_iterations), w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]; identical to `NystromAttention.forward`."""
        if not self._fast_ok(x):
            return super().forward(x)
        _, _, v, a, a_inv, w = self._lumped(x)
        left = _wmm(a[:, :, 1:], w, a_inv)  # real rows of attn1 @ pinv(attn2)
        out = _wmm(left, w, a[:, :, :, 1:] @ v)  # @ (attn3 @ v); pad v rows are zero
        if self.res_conv is not None:
            out = out + sequence_depthwise_conv(v, self.res_conv.weight)  # == zero-padded conv over v
        b, h, n, d = out.shape
        return self.to_out(out.transpose(1, 2).reshape(b, n, h * d))

    def row_attention(self, x: torch.Tensor, row: int) -> torch.Tensor:
        """Head-averaged attention of one real query row over the real keys [B, N]; as the parent's."""
        if not self._fast_ok(x):
            return super().row_attention(x, row)
        _, _, _, a, a_inv, w = self._lumped(x)
        r = 1 + row
        weights = _wmm(_wmm(a[:, :, r : r + 1], w, a_inv), w, a)  # [B, h, 1, n+1]
        return weights.mean(dim=1)[:, 0, 1:]


def use_lumped_nystrom(module: nn.Module) -> nn.Module:
    """Switch every plain `NystromAttention` inside `module` to the lumped fast path (same parameters and RNG
    use: only the class changes, so seeded initialisation and state dicts are unaffected). Returns `module`."""
    for sub in module.modules():
        if type(sub) is NystromAttention:
            sub.__class__ = LumpedNystromAttention
    return module


__all__ = ["LumpedNystromAttention", "lumped_pinv", "use_lumped_nystrom"]
