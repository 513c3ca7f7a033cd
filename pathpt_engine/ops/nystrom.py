"""Nyström self-attention (Xiong et al. 2021) with the padding and landmark rules of method.md §9.

One implementation serves PathPT's spatial-aware module, TransMIL and (later) DGRMIL. Behaviour, all
"aligned" (nystrom-attention >= 0.0.10):

* the sequence (already layer-normed by the caller) is zero-padded at the **front** to a multiple of the
  landmark count m; pad rows take part in the landmark means, the three softmaxes and the value convolution;
* landmarks are sums over m contiguous runs of length l = ceil(n / m) divided by l (n = unpadded length);
* the Moore-Penrose iteration starts from Aᵀ / (max column-sum · max row-sum), both maxima over the whole
  tensor (all heads at once), and runs `pinv_iterations` times;
* a depthwise convolution over the sequence (kernel 33, one kernel per head, no bias) of the values is added;
* the **last** n rows are kept. `misaligned=True` keeps the first n rows instead (0.0.9 behaviour, for
  bit-for-bit comparisons only).

Speed: the reference evaluates ``(attn1 @ pinv) @ (attn3 @ v)``, whose first product costs N·m² per head;
``reassociate=True`` (the default) evaluates ``attn1 @ (pinv @ (attn3 @ v))`` instead, N·m·d per head (at D = 768,
m = 384, d = 96: a quarter of the work). Same maths; the float32 results differ only by rounding (~1e-7
relative). ``reassociate=False`` keeps the reference's order.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


class _SequenceDepthwiseConv(torch.autograd.Function):
    """Depthwise convolution along the sequence, [B, h, N, d] with a [h, 1, k, 1] kernel, zero 'same' padding.

    Forward and input gradient use torch's grouped conv2d. The kernel gradient is computed here as k dot
    products, because torch 2.13's CPU kernel-gradient of this convolution is wrong at some lengths (N = 256 +
    960·i: 256, 1216, 2176, 3136, 4096...; 1-5 % relative error against float64, with or without oneDNN;
    tests/test_spatial.py checks it). TransMIL bags padded to 256 and the demo model's m = 64 hit those lengths.
    """

    @staticmethod
    def forward(ctx: Any, v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(v, weight)
        return F.conv2d(v, weight, padding=(weight.shape[2] // 2, 0), groups=weight.shape[0])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        v, weight = ctx.saved_tensors
        heads, k, half = weight.shape[0], weight.shape[2], weight.shape[2] // 2
        grad_v = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_v = F.conv2d(grad, weight.flip(2).to(grad.dtype), padding=(half, 0), groups=heads).to(v.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = _kernel_grad(v.float(), grad.float(), k).reshape(weight.shape).to(weight.dtype)
        return grad_v, grad_w


def _kernel_grad(v: torch.Tensor, grad: torch.Tensor, k: int, block: int = 32) -> torch.Tensor:
    """dW[h, t] = Σ_{b,n,d} grad[b,h,n,d] · v_pad[b,h,n+t,d]  ([h, k]), as one batched GEMM over blocks of rows.

    Each block of `block` output rows meets its `block + k - 1` padded input rows in a small GEMM; the k
    diagonals of each block product are the block's share of the k taps.
    """
    b, h, n, d = v.shape
    half, nb = k // 2, -(-n // block)
    rows = nb * block
    vp = F.pad(v, (0, 0, half, half + rows - n)).reshape(b * h, rows + k - 1, d)
    g = F.pad(grad, (0, 0, 0, rows - n)).reshape(b * h * nb, block, d)
    width = block + k - 1
    windows = vp.as_strided((b * h, nb, width, d), (vp.stride(0), block * d, d, 1)).reshape(b * h * nb, width, d)
    prod = torch.bmm(g, windows.transpose(1, 2))  # [b·h·nb, block, width]
    diag = prod.as_strided((prod.shape[0], block, k), (block * width, width + 1, 1))
    return diag.sum(dim=1).reshape(b, h, nb, k).sum(dim=(0, 2))


def sequence_depthwise_conv(v: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Zero-padded depthwise convolution of [B, h, N, d] along N with `weight` [h, 1, k, 1] (correct gradients).

    On the CPU the kernel gradient is our own (`_SequenceDepthwiseConv`, see there); on other devices (CUDA) torch's
    native convolution gradient is used: the wrong-gradient lengths are a CPU kernel bug, and the gpu tier checks the
    native CUDA gradient against float64 (tests/test_gpu_path.py).
    """
    if v.device.type != "cpu":
        return F.conv2d(v, weight.to(v.dtype), padding=(weight.shape[2] // 2, 0), groups=weight.shape[0])
    return _SequenceDepthwiseConv.apply(v, weight)


def no_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast off for the block on `device` (a no-op context on devices autocast does not know, e.g. meta)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


def moore_penrose_pinv(x: torch.Tensor, iters: int = 6) -> torch.Tensor:
    """Iterative pseudo-inverse of the last two dims of `x`, computed in float32 at least, autocast or not.

    Under autocast `.float()` alone is not enough: the `@` products would be cast back to half precision (error
    ~1e-3 in fp16, ~1e-2 in bf16 at m = 384 against ~2e-6 in fp32), so the iteration runs with autocast off.
    Returns `x`'s dtype (the caller's next product is autocast again).
    """
    with no_autocast(x.device):
        return _pinv_fp32(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x, iters).to(x.dtype)


def _pinv_fp32(x: torch.Tensor, iters: int) -> torch.Tensor:
    abs_x = x.abs()
    col = abs_x.sum(dim=-1)
    row = abs_x.sum(dim=-2)
    z = x.transpose(-1, -2) / (col.max() * row.max())
    eye = torch.eye(x.shape[-1], device=x.device, dtype=x.dtype)
    for _ in range(iters):
        xz = x @ z
        z = 0.25 * z @ (13 * eye - (xz @ (15 * eye - (xz @ (7 * eye - xz)))))
    return z


class NystromAttention(nn.Module):
    """Multi-head Nyström attention over a [B, N, dim] sequence.

    Args:
        dim: model width.
        heads: number of heads.
        dim_head: width per head.
        num_landmarks: m.
        pinv_iterations: Moore-Penrose iterations.
        residual_kernel: value-convolution kernel size (0 disables it).
        dropout: dropout after the output projection.
        misaligned: keep the first n output rows (nystrom-attention 0.0.9); never the default.
        reassociate: evaluate attn1 @ (pinv @ (attn3 @ v)) (cheaper; the reference's order when False).
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        dim_head: int = 64,
        num_landmarks: int = 256,
        pinv_iterations: int = 6,
        residual_kernel: int = 33,
        dropout: float = 0.0,
        misaligned: bool = False,
        reassociate: bool = True,
    ) -> None:
        super().__init__()
        if dim <= 0 or heads <= 0 or dim_head <= 0 or num_landmarks <= 0:
            raise ValueError("NystromAttention: dim, heads, dim_head and num_landmarks must be > 0")
        self.heads = heads
        self.dim_head = dim_head
        self.num_landmarks = num_landmarks
        self.pinv_iterations = pinv_iterations
        self.scale = dim_head**-0.5
        self.misaligned = misaligned
        self.reassociate = reassociate
        inner = heads * dim_head
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))
        self.res_conv: nn.Conv2d | None = None
        if residual_kernel > 0:
            pad = residual_kernel // 2
            self.res_conv = nn.Conv2d(heads, heads, (residual_kernel, 1), padding=(pad, 0), groups=heads,
                                      bias=False)

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        b, n, _ = t.shape
        return t.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def factors(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Padded q, k, v [B,h,n',d] and the three attention factors (attn1, pinv(attn2), attn3)."""
        n = x.shape[1]
        m = self.num_landmarks
        pad = (m - n % m) % m
        if pad:
            x = F.pad(x, (0, 0, pad, 0), value=0.0)
        q, k, v = (self._split(t) for t in self.to_qkv(x).chunk(3, dim=-1))
        q = q * self.scale
        run = math.ceil(n / m)
        b, h, n_pad, d = q.shape
        q_land = q.reshape(b, h, m, run, d).sum(dim=3) / run
        k_land = k.reshape(b, h, m, run, d).sum(dim=3) / run
        attn1 = (q @ k_land.transpose(-1, -2)).softmax(dim=-1)
        attn2 = (q_land @ k_land.transpose(-1, -2)).softmax(dim=-1)
        attn3 = (q_land @ k.transpose(-1, -2)).softmax(dim=-1)
        return q, k, v, attn1, moore_penrose_pinv(attn2, self.pinv_iterations), attn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, dim] -> [B, N, dim]."""
        n = x.shape[1]
        _, _, v, attn1, attn2_inv, attn3 = self.factors(x)
        if self.reassociate:
            out = attn1 @ (attn2_inv @ (attn3 @ v))
        else:
            out = (attn1 @ attn2_inv) @ (attn3 @ v)
        if self.res_conv is not None:
            out = out + sequence_depthwise_conv(v, self.res_conv.weight)
        b, h, n_pad, d = out.shape
        out = self.to_out(out.transpose(1, 2).reshape(b, n_pad, h * d))
        return out[:, :n] if self.misaligned else out[:, n_pad - n :]

    def row_attention(self, x: torch.Tensor, row: int) -> torch.Tensor:
        """Head-averaged attention weights of one (unpadded) query row over all unpadded keys: [B, N].

        Costs O(N·m); never builds the N×N matrix.
        """
        n = x.shape[1]
        _, _, _, attn1, attn2_inv, attn3 = self.factors(x)
        n_pad = attn1.shape[2]
        r = n_pad - n + row
        weights = (attn1[:, :, r : r + 1] @ attn2_inv) @ attn3  # [B, h, 1, n_pad]
        return weights.mean(dim=1)[:, 0, n_pad - n :]


class TransLayer(nn.Module):
    """x + NystromAttention(LayerNorm(x)) (TransMIL's layer; heads 8, head width dim/8, m = dim/2)."""

    def __init__(self, dim: int, dropout: float = 0.1, misaligned: bool = False,
                 pinv_iterations: int = 6, reassociate: bool = True) -> None:
        super().__init__()
        if dim % 16:
            raise ValueError(f"TransLayer: dim must be a multiple of 16, got {dim}")
        self.norm = nn.LayerNorm(dim)
        self.attn = NystromAttention(dim, heads=8, dim_head=dim // 8, num_landmarks=dim // 2,
                                     pinv_iterations=pinv_iterations, residual_kernel=33, dropout=dropout,
                                     misaligned=misaligned, reassociate=reassociate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.attn(self.norm(x))
