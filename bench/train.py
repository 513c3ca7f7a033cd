"""Benchmark: PathPT training step and prediction time vs a reference-style step, printed as JSON.

Setup: a KEEP-format folder with a random BERT-base-size text tower (12 layers, width 768, 512 positions; tiny
vocabulary holding the UCS class-name words; tiny vision tower, unused), D = 768, the UCS class set (3 classes),
the paper recipe loss (all three terms on), one slide of N random L2-normalised tiles per step.

* ``ours``: text tower on the longest real prompt length (method.md §9), tile labels split once (`LabelPlan`), no
  gradient w.r.t. the input features, the Nyström product evaluated as attn1 @ (pinv @ (attn3 @ v)); on CUDA the
  trainer's settings: `amp="auto"` (bf16 where supported, else fp16 + one GradScaler), fused Adam, strict fp32
  numerics (`ops.gpu.cuda_numerics`).
* ``reference``: the reference's per-step work: text tower on all 256 positions, tile labels recomputed each step,
  `features.requires_grad_(True)` as in the reference forward, and nystrom-attention's (attn1 @ pinv) @ (attn3 @ v);
  on CUDA fp16 autocast + GradScaler, as the reference trains.

`spatial_fwd_bwd_s_min` times the spatial module's forward + backward alone (fast order, weight gradients only), in
the same precision as ``ours``' steps (`floor_precision`; fp32 on the CPU): no step built on this module can cost
less, so `speedup_ceiling` = reference step / that time bounds what any other saving can reach.

Timing: per N, one process alternates reference and ours step by step (after a warm-up step each), so a shared,
busy CPU slows both alike; min and mean over `--steps`. Peak RSS: one fresh process per (mode, N), one step. Also checks, in eval mode, that both modes give
the same class embeddings and loss. CPU by default (2 threads, as in method.md §9); `--device cuda` on a GPU.

    python bench/train.py [--sizes 5000 20000] [--with-50k] [--steps 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _make_folder(path: Path) -> Path:
    from pathpt_engine.prompts.classsets import load_classset
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    words = {w.strip(".,").lower() for n in load_classset("ucs").learnable_names() for w in n.split()}
    return make_tiny_keep_folder(path, seed=0, text_width=768, text_layers=12, text_heads=12, max_positions=512,
                                 extra_words=sorted(words))


def _setup(folder: str, mode: str, device: str):
    import torch

    from pathpt_engine.backbones import load_backbone
    from pathpt_engine.pathpt.model import PathPTConfig, PathPTModel
    from pathpt_engine.prompts.classsets import load_classset

    bb = load_backbone("keep", folder, device).freeze()
    cs = load_classset("ucs")
    torch.manual_seed(0)
    cfg = PathPTConfig(truncate_text=(mode == "ours"), fast_spatial=(mode == "ours"), device=device)
    model = PathPTModel(bb, cs.learnable_names(), cfg, 768).to(device)
    return bb, cs, model


def _inputs(n: int, device: str):
    import torch

    g = torch.Generator().manual_seed(1)
    feats = torch.nn.functional.normalize(torch.randn(n, 768, generator=g), dim=-1).to(device)
    w = torch.nn.functional.normalize(torch.randn(3, 768, generator=g), dim=-1).to(device)
    return feats, w


def step_precision(mode: str, device: str):
    """(autocast on, dtype, GradScaler on) of a mode's steps: the reference trains in fp16 + GradScaler on CUDA,
    ours as the trainer's `amp="auto"`; both fp32 on the CPU."""
    import torch

    from pathpt_engine.pathpt.trainer import amp_settings

    dev = torch.device(device)
    return amp_settings("fp16" if mode == "reference" and dev.type == "cuda" else "auto", dev)


def _stepper(model, feats, w, mode: str, device: str):
    """A closure running one paper-recipe training step of `model` in the given mode."""
    import torch

    from pathpt_engine.pathpt.losses import LabelPlan, pathpt_loss
    from pathpt_engine.pathpt.pseudo import tile_labels

    dev = torch.device(device)
    amp_on, amp_dtype, use_scaler = step_precision(mode, device)
    scaler = torch.amp.GradScaler(dev.type) if use_scaler else None
    fused = True if mode == "ours" and dev.type == "cuda" else None
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=fused)
    cached = LabelPlan.build(tile_labels(feats, w, 0))

    def step() -> float:
        x = feats.clone().requires_grad_(True) if mode == "reference" else feats
        labels = tile_labels(feats, w, 0) if mode == "reference" else cached
        model.train()
        with torch.autocast(dev.type, dtype=amp_dtype, enabled=amp_on):
            cos = model.cosine(x)
        out = pathpt_loss((10 * cos.float()).softmax(-1), labels, epoch=10)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(out["loss"]).backward()
            scaler.step(opt)
            scaler.update()
        else:
            out["loss"].backward()
            opt.step()
        return out["loss"].detach()

    return step


def _timed(fn, device: str, cpu: list[float] | None = None) -> float:
    """Wall seconds of fn(); appends the process CPU seconds (all threads) to `cpu` if given."""
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    if cpu is not None:
        cpu.append(time.process_time() - c0)
    return time.perf_counter() - t0


def worker(folder: str, mode: str, n: int, steps: int, device: str) -> dict:
    """Timing (mode "both": the two modes alternate step by step, so shared-CPU load hits both alike) or peak
    memory of one mode (mode "reference"/"ours": one step in a fresh process)."""
    import torch

    from pathpt_engine.ops.vote import tile_vote

    bb, cs, ours = _setup(folder, "ours", device)
    feats, w = _inputs(n, device)
    if mode != "both":
        model = ours if mode == "ours" else _setup(folder, "reference", device)[2]
        _stepper(model, feats, w, mode, device)()
        res = {"mode": mode, "n_tiles": n, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
        if device == "cuda":
            res["peak_cuda_gib"] = torch.cuda.max_memory_allocated() / 2**30
        return res
    ref = _setup(folder, "reference", device)[2]
    models = {"reference": ref, "ours": ours}
    steps_fn = {m: _stepper(models[m], feats, w, m, device) for m in models}
    times: dict[str, list[float]] = {m: [] for m in models}
    cpu: dict[str, list[float]] = {m: [] for m in models}
    pred: dict[str, list[float]] = {m: [] for m in models}
    amp_on, amp_dtype, _ = step_precision("ours", device)

    def spatial_only() -> None:  # the spatial module's forward + backward: work no step can skip (ours' precision)
        ours.train()
        ours.zero_grad(set_to_none=True)
        with torch.autocast(torch.device(device).type, dtype=amp_dtype, enabled=amp_on):
            z = ours.spatial(feats[None])
        z.float().sum().backward()

    for m in models:
        steps_fn[m]()  # warm-up
    spatial_only()
    floor: list[float] = []
    for _ in range(steps):
        for m in models:
            times[m].append(_timed(steps_fn[m], device, cpu[m]))
            pred[m].append(_timed(lambda m=m: tile_vote(models[m].predict_probs(feats).cpu().numpy()), device))
        floor.append(_timed(spatial_only, device))
    out = {m: {"text_len": models[m].prompt_learner.length, "step_s_min": min(times[m]),
               "step_s_mean": sum(times[m]) / steps, "step_s_all": times[m], "step_cpu_s_min": min(cpu[m]),
               "predict_s_min": min(pred[m])}
           for m in models}
    out["spatial_fwd_bwd_s_min"] = min(floor)
    out["floor_precision"] = str(amp_dtype).replace("torch.", "") if amp_on else "float32"
    out["step_precision"] = {m: _precision_name(m, device) for m in models}
    return out


def _precision_name(mode: str, device: str) -> str:
    on, dtype, scaler = step_precision(mode, device)
    return (str(dtype).replace("torch.", "") + (" + GradScaler" if scaler else "")) if on else "float32"


def check(folder: str, n: int, device: str) -> dict:
    """Eval-mode class embeddings and loss of both modes on the same weights and input."""
    import torch

    from pathpt_engine.pathpt.losses import pathpt_loss
    from pathpt_engine.pathpt.pseudo import tile_labels

    bb, cs, ours = _setup(folder, "ours", device)
    ref_model = _setup(folder, "reference", device)[2]
    ref_model.load_state_dict(ours.state_dict())
    feats, w = _inputs(n, device)
    labels = tile_labels(feats, w, 0)
    out = {}
    for impl in ("sdpa", "eager"):
        bb.text.set_attn_implementation(impl)
        ours.eval()
        ref_model.eval()
        with torch.no_grad():
            ta, tb = ours.text_features(), ref_model.text_features()
            pa, pb = ours(feats), ref_model(feats)
            la = pathpt_loss(pa, labels, 10)["loss"]
            lb = pathpt_loss(pb, labels, 10)["loss"]
        out[impl] = {"text_max_abs_diff": float((ta - tb).abs().max()), "text_bit_identical": bool(torch.equal(ta, tb)),
                     "tile_probs_max_abs_diff": float((pa - pb).abs().max()),
                     "loss_ours": float(la), "loss_reference": float(lb), "loss_abs_diff": float((la - lb).abs())}
    return out


def _run_child(args: list[str], threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, __file__, *args, "--threads", str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    ap.add_argument("--with-50k", action="store_true", help="also N = 50,000")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--folder", default=None, help="reuse this BERT-base KEEP-format folder")
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    ap.add_argument("--check", type=int, metavar="N", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    from pathpt_engine.ops.gpu import cuda_numerics

    torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.worker:
        with cuda_numerics(torch.device(device)):  # the trainer's strict numerics
            print(json.dumps(worker(args.folder, args.worker[0], int(args.worker[1]), args.steps, device)))
        return 0
    if args.check:
        print(json.dumps(check(args.folder, args.check, device)))
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="pathpt-bench-")
    folder = args.folder or str(_make_folder(Path(tmp.name) / "keep"))
    sizes = sorted(set(args.sizes + ([50000] if args.with_50k else [])))
    common = ["--folder", folder, "--device", device, "--steps", str(args.steps)]
    rows = []
    for n in sizes:
        timing = _run_child([*common, "--worker", "both", str(n)], args.threads)
        mem = {m: _run_child([*common, "--worker", m, str(n)], args.threads) for m in ("reference", "ours")}
        for m in mem:
            timing[m].update({k: v for k, v in mem[m].items() if k.startswith("peak")})
        rows.append({"n_tiles": n, **timing,
                     "step_speedup_min": timing["reference"]["step_s_min"] / timing["ours"]["step_s_min"],
                     "step_speedup_mean": timing["reference"]["step_s_mean"] / timing["ours"]["step_s_mean"],
                     "step_speedup_cpu": timing["reference"]["step_cpu_s_min"] / timing["ours"]["step_cpu_s_min"],
                     "predict_speedup": timing["reference"]["predict_s_min"] / timing["ours"]["predict_s_min"],
                     # a step cannot be cheaper than the spatial module's forward + backward (same work in both
                     # modes, timed in ours' precision): the largest speedup any per-step saving elsewhere could give
                     "speedup_ceiling": timing["reference"]["step_s_min"] / timing["spatial_fwd_bwd_s_min"]})
        print(json.dumps(rows[-1]), file=sys.stderr)
    same = _run_child([*common, "--check", "2000"], args.threads)
    print(json.dumps({"device": device, "threads": args.threads, "torch": torch.__version__, "classes": 3,
                      "dim": 768, "text_tower": "BERT-base size (12x768), random init", "results": rows,
                      "equality_check_n2000": same}, indent=1))
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
