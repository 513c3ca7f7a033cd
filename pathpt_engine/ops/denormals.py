"""Flush denormal floats to zero on the CPU for a block of MIL training or prediction.

As a MIL baseline fits its few training bags, values in its passes fall into float32's denormal range (below
1.2e-38), x86 cores take a microcode assist on every denormal operand, and epochs get slower as training goes on.
`bench/denormals.py` (ABMIL, 12 demo-world slides, 9,115 tiles, one thread, 2-core CPU, 2026-12-04): epochs 161-200
took 1.94 s each with denormals kept and 0.32 s flushed (6.0x), with the same losses at every checkpoint; in an
earlier run on 12 slides of the few-shot cohort, 3.5 s against 0.31 s by epoch 200. Flushing changes a result only
through values that small.

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
