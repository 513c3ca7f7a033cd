"""Benchmark: MIL training epochs on the CPU with denormals kept (torch's default) vs flushed to zero.

A MIL baseline that fits its few training bags drives gradients and small weights into float32's denormal range,
and x86 cores slow down on denormal operands. This trains the same seeded model twice through the engine's own
epoch loop (`pathpt_engine.baselines.train._mil_epoch`), on the same separable synthetic bags, once as torch
leaves it and once inside `ops.denormals.flush_denormals` (what `train_mil` and `train_dgrmil` now use), and
prints JSON: seconds per epoch at checkpoints, the last window's ratio, and the loss at each checkpoint for both.

    python bench/denormals.py [--model abmil] [--bags 12] [--epochs 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time


def _bags(n_bags: int, dim: int, seed: int) -> list[tuple]:
    """Separable bags: 300-900 tiles each, background tiles plus a class-specific cluster in a quarter of them."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)).astype(np.float32)
    bags = []
    for i in range(n_bags):
        y = i % 3
        n = int(rng.integers(300, 900))
        x = rng.normal(scale=1.0, size=(n, dim)).astype(np.float32)
        x[: n // 4] += 1.5 * centres[y]
        bags.append((torch.from_numpy(x), y))
    return bags


def _run(model_name: str, bags: list[tuple], epochs: int, every: int, flush: bool) -> dict:
    import torch

    from pathpt_engine.baselines.train import MILConfig, _mil_epoch, _optimizer, build_mil
    from pathpt_engine.ops.denormals import flush_denormals

    torch.manual_seed(0)
    cfg = MILConfig(model=model_name)
    model = build_mil(model_name, bags[0][0].shape[1], 3)
    opt = _optimizer(model, cfg)
    targets = [torch.tensor([y]) for _, y in bags]
    rows, window = [], []
    with flush_denormals(torch.device("cpu")) if flush else contextlib.nullcontext():
        for epoch in range(1, epochs + 1):
            t = time.perf_counter()
            loss = _mil_epoch(model, opt, bags, targets, 1, None)
            window.append(time.perf_counter() - t)
            if epoch % every == 0:
                rows.append({"epoch": epoch, "epoch_s_mean": round(sum(window) / len(window), 4),
                             "loss": round(loss, 5)})
                window = []
    return {"flush_denormals": flush, "windows": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="abmil", choices=("abmil", "clam", "transmil"))
    ap.add_argument("--bags", type=int, default=12)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--every", type=int, default=40, help="report the mean epoch time over windows of this many")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    bags = _bags(a.bags, a.dim, seed=0)
    kept = _run(a.model, bags, a.epochs, a.every, flush=False)
    flushed = _run(a.model, bags, a.epochs, a.every, flush=True)
    last_kept, last_flushed = kept["windows"][-1]["epoch_s_mean"], flushed["windows"][-1]["epoch_s_mean"]
    print(json.dumps({"model": a.model, "bags": a.bags, "tiles": int(sum(len(x) for x, _ in bags)), "dim": a.dim,
                      "threads": a.threads, "torch": torch.__version__, "machine": platform.machine(),
                      "denormals_kept": kept, "denormals_flushed": flushed,
                      "last_window_speedup": round(last_kept / last_flushed, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
