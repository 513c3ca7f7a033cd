"""Learning-rate schedule of the reference (method.md §5.2), stepped once per epoch."""

from __future__ import annotations

import math


def lr_factor(epoch: int, epochs: int, warmup: int | None = None) -> float:
    """Multiplier of the base lr at 0-based `epoch`: linear warm-up e/w (epoch 0 -> 0), then cosine to 0.

    `warmup` defaults to int(0.1 * epochs) as in the reference.
    """
    if epochs <= 0 or epoch < 0:
        raise ValueError(f"lr_factor: need epochs > 0 and epoch >= 0, got {epoch}/{epochs}")
    w = int(0.1 * epochs) if warmup is None else warmup
    if epoch < w:
        return epoch / w
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - w) / max(1, epochs - w)))
