"""Device helpers of the training and prediction paths: CUDA numerics (TF32, determinism), out-of-memory handling.

Numerics (`cuda_numerics`): by default a CUDA run is *strict*: matmuls and cuDNN convolutions in full fp32 (cuDNN
would otherwise run convolutions in TF32, a 10-bit mantissa, while matmuls stay fp32), deterministic cuDNN
algorithms, no cuDNN autotuning, scaled-dot-product attention on its math kernel (the fused kernels' backward is
not deterministic) and `torch.use_deterministic_algorithms(True, warn_only=True)`, so two seeded runs on the same
GPU and software give the same weights where torch has deterministic kernels (ops without one warn).
`tf32=True` allows TF32 in matmuls and convolutions (faster on Ampere and later; relative error ~1e-3 on a
product instead of ~1e-6). Under autocast (bf16/fp16) the flags only affect the ops autocast keeps in fp32.

Out of memory (`is_oom`, `release_cached`): the retry happens *after* the `except` block, once the traceback (and
with it the failed batch's tensors) is gone, then the allocator cache is emptied and a smaller plan is tried.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import torch

log = logging.getLogger(__name__)

# bytes per tile of one spatial-module forward at width D in fp32 (conv branches, LayerNorms, qkv, the two
# N x m attention factors of 8 heads at m = D/2, output), times 2 for the allocator's slack; training keeps about
# 3x that for backward.
_FLOATS_PER_TILE_PER_D = 12 + 2 * 8 * 0.5


def bytes_per_tile(dim: int, training: bool = False) -> int:
    """Estimated device bytes one tile costs in the spatial module (forward, or forward + backward)."""
    est = int(2 * 4 * _FLOATS_PER_TILE_PER_D * dim)
    return 3 * est if training else est


def free_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device (None on other devices: no plan needed)."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def plan_chunk(requested: int, n_tiles: int, per_tile: int, free: int | None, reserve: float = 0.3) -> int:
    """Tiles per sequence: `requested`, or fewer when `free` bytes (less a `reserve` fraction) cannot hold that many."""
    if free is None or n_tiles <= 0:
        return requested
    fit = max(1, int(free * (1.0 - reserve)) // max(1, per_tile))
    return max(1, min(requested, fit))


def is_oom(exc: BaseException) -> bool:
    """True for a device out-of-memory error (CUDA's own class, or the RuntimeError other backends raise)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def release_cached(device: torch.device) -> None:
    """Return cached blocks to the device (call only once the failed batch's tensors are unreferenced)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


@contextlib.contextmanager
def cuda_numerics(device: torch.device, tf32: bool = False, deterministic: bool = True) -> Iterator[None]:
    """Set TF32 and determinism for a CUDA block (see the module docstring), restoring the previous settings.

    Does nothing on other devices. `CUBLAS_WORKSPACE_CONFIG` (needed for deterministic cuBLAS) is set if unset; it
    takes effect only if cuBLAS was not initialised yet in this process.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark, torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    set_numerics(tf32, deterministic)
    try:
        with _math_attention() if deterministic else contextlib.nullcontext():
            yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.deterministic,
         torch.backends.cudnn.benchmark) = saved[:4]
        torch.use_deterministic_algorithms(saved[4], warn_only=saved[5])


def _math_attention() -> contextlib.AbstractContextManager:
    """Scaled-dot-product attention on the math kernel only: the flash and memory-efficient kernels' backward
    passes accumulate atomically (not deterministic). Only the text tower uses it here (a few prompts)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


def set_numerics(tf32: bool, deterministic: bool) -> None:
    """The flags `cuda_numerics` sets (process-wide torch settings)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


def tile_vote_tensor(probs: torch.Tensor) -> torch.Tensor:
    """`vote.tile_vote`'s subtype index as a 0-d long tensor on `probs`' device, without a host sync (training)."""
    c = probs.shape[1]
    classes = torch.arange(c, device=probs.device)
    counts = (probs.argmax(dim=1)[:, None] == classes).sum(dim=0)[1:]  # exact integer counts
    top = counts.max()
    fallback = (top == 0) | ((counts == top).sum() > 1)
    sub_counts = (probs[:, 1:].argmax(dim=1)[:, None] == classes[: c - 1]).sum(dim=0)
    return torch.where(fallback, sub_counts, counts).argmax()
