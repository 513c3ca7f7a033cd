"""Benchmark: seconds per MIL training step (forward + backward + optimiser) on one bag, fast vs shared Nyström.

TransMIL and DGRMIL run Nyström attention with 256 landmarks. For bags shorter than that, the baselines use the
exact lumped path (pathpt_engine.ops.lumped_nystrom); ``--reference`` rows run the same models with the
shared implementation instead (pathpt_engine.ops.nystrom), side by side in one process, so the ratio is
meaningful even when the absolute figures are noisy. Prints JSON.

    python bench/mil_step.py [--tiles 20] [--dim 128] [--threads 1 2] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def _step_seconds(model, x, steps: int) -> float:  # noqa: ANN001
    import torch
    from torch.nn import functional as F  # noqa: N812

    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    model.train()

    def step() -> None:
        loss = F.cross_entropy(model(x)["logits"], torch.tensor([1]))
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - t0) / steps


def _reference(model):  # noqa: ANN001, ANN202
    from pathpt_engine.ops.lumped_nystrom import LumpedNystromAttention
    from pathpt_engine.ops.nystrom import NystromAttention

    for sub in model.modules():
        if type(sub) is LumpedNystromAttention:
            sub.__class__ = NystromAttention
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiles", type=int, default=20)
    ap.add_argument("--dim", type=int, default=128, help="feature width D (the demo model's is 128)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    import torch

    from pathpt_engine.baselines.dgrmil import DGRMIL
    from pathpt_engine.baselines.models import build_mil

    makers = {"abmil": lambda: build_mil("abmil", a.dim, 3), "clam": lambda: build_mil("clam", a.dim, 3),
              "transmil": lambda: build_mil("transmil", a.dim, 3), "dgrmil": lambda: DGRMIL(a.dim, 3)}
    x = torch.randn(a.tiles, a.dim, generator=torch.Generator().manual_seed(0))
    rows = []
    for threads in a.threads:
        torch.set_num_threads(threads)
        for name, make in makers.items():
            torch.manual_seed(0)
            row = {"model": name, "threads": threads, "tiles": a.tiles,
                   "s_per_step": round(_step_seconds(make(), x, a.steps), 4)}
            if name in ("transmil", "dgrmil"):
                torch.manual_seed(0)
                row["s_per_step_reference"] = round(_step_seconds(_reference(make()), x, max(2, a.steps // 2)), 4)
                row["speedup"] = round(row["s_per_step_reference"] / row["s_per_step"], 1)
            rows.append(row)
    print(json.dumps({"rows": rows, "loadavg": os.getloadavg(), "torch": torch.__version__}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
