"""Benchmark: MIL training epochs on the CPU with denormals kept (torch's default) vs flushed to zero.

As a MIL baseline fits its few training bags, values in its forward and backward passes fall into float32's
denormal range, and x86 cores slow down on denormal operands. This trains the same seeded model twice through the
engine's own epoch loop (`pathpt_engine.baselines.train._mil_epoch`), on the same bags, once as torch leaves it
and once inside `ops.denormals.flush_denormals` (what `train_mil` and `train_dgrmil` now use), and prints JSON:
seconds per epoch over windows, the last window's ratio, and the loss at each window's end for both.

The bags are demo-world slides embedded by the demo model: the first `--bags` subtype slides of `--labels` with
features from `--features`, or, without them, a 4-per-subtype realistic cohort that `pathpt synth` (seed 0) and
`pathpt extract --backbone demo` make in a temporary folder first (about a minute). Gaussian bags fitted just as
well show no slowdown, so the effect depends on the data; the demo world's features show it.

    python bench/denormals.py [--features H5_DIR --labels CSV] [--model abmil] [--bags 12] [--epochs 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import tempfile
import time
from pathlib import Path


def _cohort(work: Path) -> tuple[Path, Path]:
    from pathpt_engine.cli import main as pathpt

    cohort = work / "cohort"
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the JSON alone
        if pathpt(["-q", "synth", "--out", str(cohort), "--subtypes", "3", "--slides-per-class", "4",
                   "--normal-slides", "0", "--size", "realistic", "--mpp", "0.5", "--jobs", "2", "--seed", "0"]):
            raise SystemExit("pathpt synth failed")
        slides = sorted(str(p) for p in (cohort / "slides").iterdir())
        if pathpt(["-q", "extract", *slides, "--backbone", "demo", "--device", "cpu", "--out",
                   str(work / "features")]):
            raise SystemExit("pathpt extract failed")
    return work / "features" / "demo" / "h5_files", cohort / "labels.csv"


def _bags(features: Path, labels: Path, n_bags: int) -> list[tuple]:
    import torch

    from pathpt_engine.pathpt.data import load_labelled, read_labels_csv
    from pathpt_engine.prompts.classsets import load_classset

    pairs = read_labels_csv(labels, load_classset("synthetic"))  # 0-based subtypes; normal slides skipped
    ids = list(pairs)[:n_bags]
    slides = {s.slide_id: s for s in load_labelled(features, {}, ids)}
    return [(torch.as_tensor(slides[s].features, dtype=torch.float32), pairs[s]) for s in ids]


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
    ap.add_argument("--features", type=Path, default=None, help="h5_files folder of a demo-world cohort")
    ap.add_argument("--labels", type=Path, default=None, help="its labels.csv")
    ap.add_argument("--model", default="abmil", choices=("abmil", "clam", "transmil"))
    ap.add_argument("--bags", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--every", type=int, default=40, help="report the mean epoch time over windows of this many")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="pathpt-denormals-") as tmp:
        features, labels = (a.features, a.labels) if a.features and a.labels else _cohort(Path(tmp))
        bags = _bags(features, labels, a.bags)
    kept = _run(a.model, bags, a.epochs, a.every, flush=False)
    flushed = _run(a.model, bags, a.epochs, a.every, flush=True)
    last_kept, last_flushed = kept["windows"][-1]["epoch_s_mean"], flushed["windows"][-1]["epoch_s_mean"]
    print(json.dumps({"model": a.model, "bags": a.bags, "tiles": int(sum(len(x) for x, _ in bags)),
                      "dim": int(bags[0][0].shape[1]),
                      "threads": a.threads, "torch": torch.__version__, "machine": platform.machine(),
                      "denormals_kept": kept, "denormals_flushed": flushed,
                      "last_window_speedup": round(last_kept / last_flushed, 2)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
