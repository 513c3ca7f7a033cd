"""CPU preprocessing with the maths of `Preprocess.__call__`, at a fraction of the cost.

`Preprocess.__call__` (the reference) converts uint8 tiles to float, divides by 255, resizes with
`torch.nn.functional.interpolate` (antialiased), clamps (bicubic), centre-crops and normalises. On CPU that
interpolation is the most expensive step of the whole tile path (about 1 ms per 224 px tile for the demo model's
224 -> 112 bicubic resize), and the element-wise steps each make another pass over the batch.

`FastPreprocess` computes the same function differently:

- The antialiased resize is separable and linear. Its exact weights are taken from `interpolate` itself (resizing
  an identity matrix). When the size ratio is an integer stride, every output row uses the same kernel, shifted by
  the stride, except near the borders where the kernel is truncated and renormalised. Then resize = one depthwise
  strided convolution per axis (zero padding) followed by a per-row and per-column rescale, which is what the
  truncated, renormalised border weights are. The plan is checked against the identity-matrix weights when it is
  built; ratios that do not fit (e.g. 256 -> 224) fall back to the reference.
- Division by 255, the clamp (as [0, 255]) and mean/std are folded into one multiply-add per channel.
- The centre crop selects rows/columns of the resized image (no copy of its own).

The output is float32 [B, 3, crop, crop], contiguous (NCHW), equal to the reference up to float rounding (the
tests compare them to 1e-5).

A `Preprocess` with `resampler="pil"` (KEEP's transform) is not sped up: it runs as `Preprocess.__call__`,
which resizes the uint8 tiles with Pillow exactly as the reference does and normalises with the reference's
operations (ToTensor's /255, then Normalize), so KEEP's inputs are bit-identical to torchvision's. Tiles already
at the model's size (224 px for KEEP) skip the resize; what is left is a few element-wise passes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from .base import Preprocess

log = logging.getLogger(__name__)

_WEIGHT_ATOL = 1e-6
_CHUNK = 8  # tiles per pass: whole batches of float intermediates (tens of MB) cost page faults on every batch  # how close the strided-kernel plan must be to interpolate's own weights


@dataclass(frozen=True)
class AxisPlan:
    """One axis of the resize as a strided convolution.

    Attributes:
        stride: input pixels per output pixel.
        pad: zero padding on each side of the input.
        kernel: the interior kernel (weights sum to 1), float32 [K].
        scale: renormalisation of each output position (1 away from the borders), float32 [n_out].
        n_out: output length.
    """

    stride: int
    pad: int
    kernel: torch.Tensor
    scale: torch.Tensor
    n_out: int


def resize_matrix(pre: Preprocess, n_in: int, n_out: int) -> torch.Tensor:
    """The [n_out, n_in] matrix of the reference's resize along one axis (interpolate applied to an identity)."""
    eye = torch.eye(n_in, dtype=torch.float32).view(1, 1, n_in, n_in)
    kw = {"antialias": True} if pre.interpolation != "nearest" else {}
    return F.interpolate(eye, size=(n_out, n_in), mode=pre.interpolation, **kw)[0, 0]


def plan_axis(matrix: torch.Tensor) -> AxisPlan | None:
    """A strided-convolution plan that reproduces `matrix` (rows = outputs), or None if there is none."""
    n_out, n_in = matrix.shape
    if n_in % n_out:
        return None
    stride = n_in // n_out
    mid = n_out // 2
    cols = torch.nonzero(matrix[mid]).flatten()
    if len(cols) == 0:
        return None
    first, last = int(cols[0]), int(cols[-1])
    kernel = matrix[mid, first : last + 1].double()
    kernel = kernel / kernel.sum()
    offset, k = first - stride * mid, last - first + 1
    pad = max(-offset, 0)
    if offset > 0 or stride * (n_out - 1) + offset + k - n_in > pad:
        return None  # would need asymmetric padding; not the case for centred filters
    conv = torch.zeros(n_out, n_in, dtype=torch.float64)
    for j in range(n_out):
        for t in range(k):
            i = stride * j + offset + t
            if 0 <= i < n_in:
                conv[j, i] = kernel[t]
    sums = conv.sum(dim=1)
    if bool((sums <= 0).any()):
        return None
    scale = 1.0 / sums
    if not torch.allclose(conv * scale[:, None], matrix.double(), rtol=0.0, atol=_WEIGHT_ATOL):
        return None
    return AxisPlan(stride, pad, kernel.float(), scale.float(), n_out)


@lru_cache(maxsize=16)
def _plans(pre: Preprocess, h: int, w: int) -> tuple[AxisPlan, AxisPlan] | None:
    out_h, out_w = pre.resized_size(h, w)
    ph = plan_axis(resize_matrix(pre, h, out_h))
    pw = ph if (h, out_h) == (w, out_w) else plan_axis(resize_matrix(pre, w, out_w))
    if ph is None or pw is None:
        log.debug("no strided plan for a %dx%d -> %dx%d %s resize; using the reference preprocessing",
                  h, w, out_h, out_w, pre.interpolation)
        return None
    return ph, pw


class FastPreprocess:
    """Callable uint8 tiles [B, H, W, 3] -> float32 [B, 3, crop, crop], the same as `pre(tiles)` (CPU)."""

    def __init__(self, pre: Preprocess) -> None:
        self.pre = pre
        std = torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1)
        self._mul = 1.0 / (255.0 * std)  # (x / 255 - mean) / std == x * mul + add
        self._add = -mean / std
        self._hi = 255.0 * self._mul + self._add  # the clamp to [0, 255], in normalised units
        self._tables: dict[tuple[int, int], _Tables | None] = {}

    def supports(self, h: int, w: int) -> bool:
        """Whether tiles of h x w take the fast path (else `__call__` runs the reference)."""
        if self.pre.resampler == "pil":  # always the exact reference (Pillow resize only when needed)
            return False
        return min(h, w) == self.pre.resize or self._table(h, w) is not None

    def __call__(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        x8 = torch.as_tensor(tiles)
        if x8.ndim == 3:
            x8 = x8[None]
        if (x8.dtype != torch.uint8 or x8.ndim != 4 or x8.shape[-1] != 3 or x8.device.type != "cpu"
                or self.pre.resampler == "pil"):
            return self.pre(tiles)
        b, h, w, _ = (int(v) for v in x8.shape)
        c = self.pre.crop
        out = torch.empty((b, 3, c, c), dtype=torch.float32)
        if min(h, w) == self.pre.resize:  # no resize: crop and normalise in one pass
            top, left = (h - c) // 2, (w - c) // 2
            x = x8[:, top : top + c, left : left + c].permute(0, 3, 1, 2)
            return torch.addcmul(self._add, x.float(), self._mul, out=out)
        tab = self._table(h, w)
        if tab is None:
            return self.pre(tiles)
        x8 = x8.contiguous()
        bounds = [(float(a), float(z)) for a, z in zip(self._add.flatten(), self._hi.flatten(), strict=True)]
        for i in range(0, b, _CHUNK):  # a few tiles at a time: intermediates stay small, memory is reused
            part = out[i : i + _CHUNK]
            torch.add(_resize_crop(x8[i : i + _CHUNK], tab), self._add, out=part)
            if self.pre.interpolation == "bicubic":  # the reference's clamp to [0, 1], in normalised units
                for ch, (lo, hi) in enumerate(bounds):
                    part[:, ch].clamp_(lo, hi)
        return out

    def _table(self, h: int, w: int) -> _Tables | None:
        if (h, w) not in self._tables:
            self._tables[(h, w)] = _tables(self.pre, h, w, self._mul)
        return self._tables[(h, w)]


@dataclass(frozen=True)
class _Tables:
    """Everything `_resize_crop` needs for one input size."""

    rows: AxisPlan
    cols: AxisPlan
    top: int
    left: int
    crop: int
    k_rows: torch.Tensor  # depthwise weights [W * 3, 1, K, 1] (input rows, channels = columns x RGB)
    k_cols: torch.Tensor  # depthwise weights [3, 1, 1, K], times each channel's 1 / (255 std)
    row_fix: tuple[tuple[int, int, torch.Tensor], ...]  # (start, stop, scale) runs of renormalised crop rows
    col_fix: tuple[tuple[int, int, torch.Tensor], ...]  # the same for crop columns


def _runs(scale: torch.Tensor) -> tuple[tuple[int, int, torch.Tensor], ...]:
    """Maximal runs of positions whose scale is not exactly 1, with their scales."""
    runs, start = [], None
    for i, v in enumerate([*scale.tolist(), 1.0]):
        if v != 1.0 and start is None:
            start = i
        elif v == 1.0 and start is not None:
            runs.append((start, i, scale[start:i].clone()))
            start = None
    return tuple(runs)


def _tables(pre: Preprocess, h: int, w: int, mul: torch.Tensor) -> _Tables | None:
    plans = _plans(pre, h, w)
    if plans is None:
        return None
    ph, pw = plans
    c = pre.crop
    top, left = pre.crop_origin(ph.n_out, pw.n_out)
    k_rows = ph.kernel.view(1, 1, -1, 1).repeat(w * 3, 1, 1, 1)
    k_cols = pw.kernel.view(1, 1, 1, -1) * mul.view(3, 1, 1, 1)
    return _Tables(ph, pw, top, left, c, k_rows, k_cols, _runs(ph.scale[top : top + c]),
                   _runs(pw.scale[left : left + c]))


def _resize_crop(x8: torch.Tensor, t: _Tables) -> torch.Tensor:
    """Contiguous uint8 [B, H, W, 3] -> resized, cropped, scaled float [B, 3, crop, crop] (mean not yet added).

    Rows first, as a depthwise convolution whose channels are the W x 3 (column, colour) values of a row (they
    are contiguous in memory, so the convolution vectorises over them); then columns, per colour, with the
    1 / (255 std) of each colour in the kernel. The renormalised border rows and columns are rescaled in place.
    """
    b, h, w, _ = x8.shape
    ph, pw, c = t.rows, t.cols, t.crop
    x = x8.view(b, h, 1, w * 3).permute(0, 3, 1, 2).float()  # [B, W*3, H, 1], channels-last memory
    y = F.conv2d(x, t.k_rows, stride=(ph.stride, 1), padding=(ph.pad, 0), groups=w * 3)
    y = y[:, :, t.top : t.top + c]  # [B, W*3, crop, 1]: memory [B, crop, W, 3]
    for lo, hi, scale in t.row_fix:
        y[:, :, lo:hi] *= scale.view(1, 1, -1, 1)
    y = y.permute(0, 2, 3, 1).reshape(b, c, w, 3).permute(0, 3, 1, 2)  # [B, 3, crop, W], channels-last
    z = F.conv2d(y, t.k_cols, stride=(1, pw.stride), padding=(0, pw.pad), groups=3)[..., t.left : t.left + c]
    for lo, hi, scale in t.col_fix:
        z[..., lo:hi] *= scale
    return z
