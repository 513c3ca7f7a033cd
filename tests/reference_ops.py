"""Float64 references that several numeric tests compare against."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def depthwise_conv_grads_float64(v: torch.Tensor, w: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(kernel, input) gradients of sum(conv(v, w) * g) for the value convolution (kernel w [h, 1, k, 1] along
    the sequence, zero padding k // 2), by float64 shift-and-add on v's device."""
    n, k = v.shape[2], w.shape[2]
    v64, w64 = v.detach().double().requires_grad_(True), w.detach().double().requires_grad_(True)
    vp = F.pad(v64, (0, 0, k // 2, k // 2))
    ref = sum(vp[:, :, t : t + n] * w64[None, :, 0, t, 0, None, None] for t in range(k))
    (ref * g.double()).sum().backward()
    return w64.grad, v64.grad
