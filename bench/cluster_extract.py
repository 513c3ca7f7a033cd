"""Benchmark: cohort extraction on a local Ray versus the single-process path; prints JSON.

    python bench/cluster_extract.py [--slides 8] [--size 3000] [--workers 1 2 4]

Re-executes itself inside a loopback-only network namespace (`unshare -n`) when it is not already in one: a local
Ray listens on all interfaces, so it never runs on a reachable network here. Uses the demo backbone when its
weights exist, else a ViT-Tiny-sized random KEEP (same code path, CPU). Figures: Ray start-up, worker start-up
(backbone loaded in every actor), tiles/s at each worker count, the one-worker overhead versus the
single-process path (excluding start-up), and per-GPU scaling efficiency when GPUs exist.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _slides(root: Path, n: int, size: int) -> list[Path]:
    from pathpt_engine.synth.writer import write_slide

    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        h, w = int(size * 0.75), size
        img = np.full((h, w, 3), 245, np.uint8)
        tissue = np.array([200, 120, 170]) + rng.integers(-40, 40, size=(h - 200, w - 200, 3))
        img[100:-100, 100:-100] = np.clip(tissue, 0, 255).astype(np.uint8)
        out.append(write_slide(root / f"b{i}.tiff", img, mpp=0.25, fmt="tiff"))
    return out


def _backbone(root: Path) -> tuple[str, Path | None]:
    from pathpt_engine.backbones.registry import resolve_weights
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    if resolve_weights("demo").is_dir():
        return "demo", None
    folder = make_tiny_keep_folder(root / "keep", img_size=224, patch_size=16, vision_width=192, vision_layers=4,
                                   vision_heads=3)
    return "keep", folder


def _single(slides: list[Path], out: Path, opts) -> dict:
    from pathpt_engine.backbones.registry import load_backbone
    from pathpt_engine.features.extract import extract_slides
    from pathpt_engine.jobs import run_job

    model = load_backbone(opts.backbone, opts.weights)
    t0 = time.monotonic()
    summary = run_job(extract_slides(slides, out, opts, backbone=model))
    dt = time.monotonic() - t0
    tiles = sum(s.n_tiles for s in summary.slides)
    return {"tiles": tiles, "seconds": round(dt, 3), "tiles_per_s": round(tiles / dt, 2)}


def _cluster(slides: list[Path], out: Path, opts, workers: int, gpus: int) -> dict:
    from pathpt_engine.cluster import ClusterOptions
    from pathpt_engine.cluster.driver import extract_cluster
    from pathpt_engine.jobs import run_job

    copts = ClusterOptions(num_workers=workers, cpus_per_worker=1 if not gpus else 2, poll_s=0.05)
    t0 = time.monotonic()
    s = run_job(extract_cluster(slides, out, opts, copts))
    total = time.monotonic() - t0
    assert s.count("done") == len(slides), [(r.slide, r.status, r.reason) for r in s.results]
    return {"workers": workers, "startup_s": round(s.startup_s, 2), "run_s": round(s.run_s, 3),
            "total_s": round(total, 2), "tiles": s.tiles, "tiles_per_s": round(s.tiles_per_s, 2),
            "devices": sorted({w["device"] for w in s.workers})}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=8)
    ap.add_argument("--size", type=int, default=3000, help="slide width in px at 0.25 um/px")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)

    from pathpt_engine.cluster.netns import can_unshare, loopback_only, namespace_command

    if not loopback_only():
        if not can_unshare():
            print(json.dumps({"error": "not in a loopback-only network namespace and cannot make one"}))
            return 2
        inner = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
        return subprocess.run(namespace_command(inner)).returncode

    import ray
    import torch

    gpus = torch.cuda.device_count()
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pathpt_engine.features.extract import ExtractOptions

    with tempfile.TemporaryDirectory(prefix="pathpt-bench-") as tmp:
        root = Path(tmp)
        slides = _slides(root / "slides", args.slides, args.size)
        name, weights = _backbone(root)
        opts = ExtractOptions(backbone=name, weights=weights, device="auto", batch_size=args.batch_size, workers=1)
        single = _single(slides, root / "single", opts)
        t0 = time.monotonic()
        ray.init(num_cpus=max(args.workers) * (2 if gpus else 1), include_dashboard=False, log_to_driver=False)
        ray_init_s = time.monotonic() - t0
        runs = [_cluster(slides, root / f"w{n}", opts, n, gpus) for n in args.workers if not gpus or n <= gpus]
        ray.shutdown()
    one = next((r for r in runs if r["workers"] == 1), None)
    result = {
        "backbone": name, "device": "cuda" if gpus else "cpu", "cpu_cores": os.cpu_count(), "gpus": gpus,
        "slides": args.slides, "tiles": single["tiles"], "single_process": single,
        "ray_init_s": round(ray_init_s, 2), "cluster": runs,
        "overhead_1_worker": round(one["run_s"] / single["seconds"] - 1, 3) if one else None,
        "per_gpu_efficiency": ({str(r["workers"]): round(r["tiles_per_s"] / (r["workers"] * one["tiles_per_s"]), 3)
                                for r in runs} if gpus and one else None),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
