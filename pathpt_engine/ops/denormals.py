"""Flush denormal floats to zero on the CPU for a block of MIL training or prediction.

Once a MIL baseline fits its few training bags (bag loss near zero), Adam drives gradients and small weights into
float32's denormal range (below 1.2e-38). x86 cores then take a microcode assist on every denormal operand, and a
training epoch got ten times slower as it went: ABMIL over 12 bags of the realistic demo cohort, 0.34 s per epoch at
epoch 40 and 3.5 s at epoch 200, against 0.31 s at epoch 200 with denormals flushed (2-core CPU, one thread,
2026-12-04; `bench/denormals.py`). Flushing changes a result only through values that small.

`torch.set_flush_denormal` sets the floating-point mode of the calling thread, the one that runs the loop (with one
intra-op thread, all of the work; torch's other intra-op threads keep their own mode). GPUs handle denormals at full
speed: nothing is done there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def flush_denormals(device: torch.device) -> Iterator[None]:
    """Denormals are flushed to zero inside the block on the CPU (where the processor supports it); afterwards
    the thread's mode is set back to torch's default (denormals kept)."""
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)
