"""Benchmark: the few-shot protocol on a synthetic cohort (zero-shot vs MIL vs PathPT, 1/5/10 shots).

Pipeline, all through the `pathpt` command line (in-process):

1. `pathpt synth` writes a synthetic cohort (slides, masks, labels.csv) unless `--cohort` points at one;
2. `pathpt extract --backbone demo` tiles the slides and embeds them with the shipped demo model
   (or `--backbone/--weights` for another one);
3. `pathpt evaluate` runs the methods over shots x folds and writes results.json / results.md.

`--fake` skips 1-2 and uses a fake feature cohort in a tiny random KEEP-format backbone's space instead
(pathpt_engine.testing.cohorts), for when the demo model or extraction are not available.
Prints the results table as JSON on stdout.

    python bench/fewshot.py --work /tmp/fewshot [--slides-per-class 32] [--shots 1 5 10] [--folds 5]
    python bench/fewshot.py --work /tmp/fewshot --fake
    python bench/fewshot.py --work /tmp/fewshot --plot-only      # rebuild the tables and figure, no training
    python bench/fewshot.py --work /tmp/fewshot --features DIR --parallel 12 --device cuda --methods transmil,dgrmil
                            # features already extracted (no slides needed); one process per (method, shots)

The cohort is at the realistic scale by default (`pathpt synth --size realistic --mpp 0.5`: a median of ~450
tissue tiles per slide, 2,000+ tile resections among them); 32 slides per subtype with a quarter held out for
testing gives 8 test slides per subtype and a pool of 24 for the 10-shot draws. Besides the evaluation's
results.json / results.md, it draws `fewshot.png`: BACC against shots per method (mean ± sd over folds) and a
grounding panel (tile AUROC and Dice against the tumour masks).

MIL baselines train for `--mil-epochs` (default 200: the fixed budget of mil-baselines.md §6 ``paper``; the
``-clean`` variants select the epoch with the lowest bag CE on held-out pool slides). The table is of accuracies;
run it with OMP_NUM_THREADS=1 beside other work. Two processes with disjoint `--methods` may share one `--out`
(each (method, shots, fold) is its own file); a last run with every method only rebuilds the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ALL_METHODS = ("zeroshot", "ensemble", "abmil", "abmil-clean", "clam", "clam-clean", "transmil", "transmil-clean",
               "dgrmil", "dgrmil-clean", "pathpt-paper", "pathpt-clean")


def _cli(args: list[str]) -> None:
    from pathpt_engine.cli import main

    print("$ pathpt " + " ".join(args), file=sys.stderr)
    rc = main(["-q", *args])
    if rc:
        raise SystemExit(f"pathpt {args[0]} failed with status {rc}")


def _fake(work: Path, per_class: int, n_tiles: int) -> tuple[Path, Path, list[str], Path]:
    from pathpt_engine.prompts.classsets import load_classset
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    bb = tiny_backbone(work / "keep")
    feats, labels = make_fake_cohort(work / "fake", bb, load_classset("synthetic"), per_class=per_class,
                                     n_tiles=n_tiles, mix=1.5, masks=True)
    return feats, labels, ["--backbone", "keep", "--weights", str(work / "keep")], work / "fake" / "masks"


def _real(work: Path, a: argparse.Namespace) -> tuple[Path, Path, list[str], Path]:
    cohort = Path(a.cohort) if a.cohort else work / "cohort"
    backbone = ["--backbone", a.backbone] + (["--weights", a.weights] if a.weights else [])
    if a.features:  # extracted already (possibly elsewhere): the cohort needs only labels.csv and masks/
        return Path(a.features), cohort / "labels.csv", backbone, cohort / "masks"
    if not (cohort / "labels.csv").is_file():
        _cli(["synth", "--out", str(cohort), "--subtypes", "3", "--slides-per-class", str(a.slides_per_class),
              "--normal-slides", "1", "--size", a.size, "--mpp", str(a.mpp), "--jobs", str(a.jobs), "--seed", "0"])
    slides = sorted(str(p) for p in (cohort / "slides").iterdir() if p.suffix in (".tiff", ".svs"))
    _cli(["extract", *slides, *backbone, "--device", a.device, "--out", str(work / "features")])
    return work / "features" / a.backbone / "h5_files", cohort / "labels.csv", backbone, cohort / "masks"


def _parallel(common: list[str], methods: tuple[str, ...], shots: list[int], workers: int) -> None:
    """One `pathpt evaluate` process per (method, shots), `workers` at a time, the slowest (most shots) first. Each
    unit's JSON is written atomically under the shared --out; a process that fails is reported, the others go on."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    units = [(m, k) for k in sorted(shots, reverse=True) for m in methods]

    def one(unit: tuple[str, int]) -> int:
        m, k = unit
        cmd = [sys.executable, "-m", "pathpt_engine.cli", "-q", *common, "--methods", m, "--shots", str(k)]
        print(f"$ {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        rc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False).returncode
        print(f"fewshot: {m} {k}-shot finished with status {rc}", file=sys.stderr, flush=True)
        return rc

    with ThreadPoolExecutor(workers) as pool:
        failed = [u for u, rc in zip(units, pool.map(one, units), strict=True) if rc]
    if failed:
        raise SystemExit(f"pathpt evaluate failed for {failed} (see above); the units that finished are kept "
                         "under --out, and --plot-only draws them")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True, help="working folder (cohort, features, results)")
    ap.add_argument("--cohort", default=None, help="existing synthetic cohort folder (skip `pathpt synth`)")
    ap.add_argument("--backbone", default="demo")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                    help="extraction and training device (auto: CUDA when torch sees one)")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--slides-per-class", type=int, default=32)
    ap.add_argument("--size", default="realistic", help="pathpt synth --size (default realistic)")
    ap.add_argument("--mpp", type=float, default=0.5, help="pathpt synth --mpp (default 0.5)")
    ap.add_argument("--jobs", type=int, default=2, help="pathpt synth --jobs (default 2)")
    ap.add_argument("--plot-only", action="store_true",
                    help="train nothing: rebuild results.json/.md, results_compact.md and fewshot.png from the "
                         "(method, shots, fold) files already in --out (rows with no file show 0 folds)")
    ap.add_argument("--shots", type=int, nargs="+", default=[1, 5, 10])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--mil-epochs", type=int, default=200)
    ap.add_argument("--methods", default=",".join(ALL_METHODS))
    ap.add_argument("--out", type=Path, default=None, help="results folder (default WORK/results-<backbone>)")
    ap.add_argument("--features", default=None,
                    help="existing h5_files folder of the cohort (skip synth and extract; --cohort or WORK/cohort "
                         "still gives labels.csv and masks/)")
    ap.add_argument("--parallel", type=int, default=1,
                    help="run each (method, shots) as its own `pathpt evaluate` process, this many at a time "
                         "(one thread each); for a GPU, whose small MIL kernels leave it idle between launches")
    ap.add_argument("--fake", action="store_true", help="fake features in a tiny random backbone's space")
    ap.add_argument("--fake-tiles", type=int, default=64)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    a.work.mkdir(parents=True, exist_ok=True)
    from pathpt_engine.evaluate import summarize

    methods = tuple(m for m in a.methods.split(",") if m)
    if a.plot_only:
        out = a.out or a.work / ("results-fake" if a.fake else f"results-{a.backbone}")
        table = summarize(out, methods, sorted(a.shots), grounded=True)
        table["rows"] = [r for r in table["rows"] if r["folds"]]
        print(plot(table, out / "fewshot.png"), compact_table(table, out / "results_compact.md"))
        return 0
    t0 = time.monotonic()
    feats, labels, backbone, masks = _fake(a.work, a.slides_per_class, a.fake_tiles) if a.fake else _real(a.work, a)
    out = a.out or a.work / ("results-fake" if a.fake else f"results-{a.backbone}")
    common = ["evaluate", "--features", str(feats), "--labels", str(labels), "--classes", "synthetic", *backbone,
              "--folds", str(a.folds), "--epochs", str(a.epochs), "--mil-epochs", str(a.mil_epochs),
              "--test-fraction", "0.25", "--masks", str(masks), "--device", a.device, "--out", str(out)]
    if a.parallel > 1:
        _parallel(common, methods, a.shots, a.parallel)
    else:
        _cli([*common, "--shots", *map(str, a.shots), "--methods", a.methods])
    table = summarize(out, methods, sorted(a.shots), grounded=True)  # the table `pathpt evaluate` writes, from all units
    table.update(features=str(feats), seconds=round(time.monotonic() - t0, 1), fake=a.fake,
                 figure=str(plot(table, out / "fewshot.png")), table_md=str(out / "results.md"),
                 compact_md=str(compact_table(table, out / "results_compact.md")))
    print(json.dumps(table, indent=1))
    return 0


# one colour per method (its -clean variant dashed in the same colour): the default cycle repeats after ten
METHOD_COLORS = {"zeroshot": "black", "ensemble": "0.55", "abmil": "tab:green", "clam": "tab:purple",
                 "transmil": "tab:brown", "dgrmil": "tab:olive", "pathpt": "tab:red"}


NAMES = {"zeroshot": "zero-shot", "ensemble": "ensemble", "abmil": "ABMIL", "clam": "CLAM-SB", "transmil": "TransMIL",
         "dgrmil": "DGRMIL", "pathpt-paper": "PathPT paper", "pathpt-clean": "PathPT clean"}


def compact_table(table: dict, path: Path) -> Path:
    """One row per method, the shot counts that ran side by side ("0.875 / 0.842 / 0.867"; means over folds), the
    number of folds per shot count in its own column: the README's table."""
    from pathpt_engine.evaluate import METRIC_TITLES

    metrics = table["metrics"]
    lines = ["| method | shots | folds | " + " | ".join(METRIC_TITLES.get(m, m) for m in metrics) + " |",
             "| --- " * (3 + len(metrics)) + "|"]
    for method in dict.fromkeys(r["method"] for r in table["rows"]):
        rs = sorted((r for r in table["rows"] if r["method"] == method and r["folds"]), key=lambda r: r["shots"])
        if not rs:
            continue
        base = method.removesuffix("-clean")
        name = NAMES.get(method) or NAMES.get(base, base) + (" clean" if method.endswith("-clean") else "")
        cells = [" / ".join(str(r[k]) for r in rs) for k in ("shots", "folds")]
        cells += [" / ".join(f"{r[m]['mean']:.3f}" for r in rs) for m in metrics]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def plot(table: dict, path: Path) -> Path:
    """BACC vs shots per method (mean ± sd over folds) and, when grounded, tile AUROC (pooled over the test slides
    and the mean of per-slide AUROCs) and Dice vs shots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    grounded = "tile_auroc" in table["metrics"]
    panels = [("bacc", "balanced accuracy")] + ([("tile_auroc", "tile AUROC, pooled (grounding)"),
                                                ("slide_tile_auroc", "tile AUROC, per slide (grounding)"),
                                                ("tile_dice", "tile Dice (grounding)")] if grounded else [])
    panels = [p for p in panels if p[0] in table["metrics"]]  # results from before the per-slide AUROC lack it
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, (metric, title) in zip(axes[0], panels, strict=True):
        for i, m in enumerate(methods):
            rs = sorted((r for r in rows if r["method"] == m and r["folds"]), key=lambda r: r["shots"])
            if not rs:
                continue
            x = [r["shots"] * (1 + 0.015 * (i - len(methods) / 2)) for r in rs]  # small offsets: bars apart
            base = m.removesuffix("-clean").removesuffix("-paper")
            prompt = base in ("pathpt", "zeroshot", "ensemble")
            ax.errorbar(x, [r[metric]["mean"] for r in rs], yerr=[r[metric]["sd"] for r in rs],
                        color=METHOD_COLORS.get(base, "0.5"), marker="o" if prompt else ".", capsize=3, label=m,
                        ls="--" if m.endswith("-clean") else "-", lw=2.2 if base == "pathpt" else 1.2)
        ax.set_xscale("log")
        ax.set_xticks(sorted({r["shots"] for r in rows}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("training slides per subtype (shots)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


if __name__ == "__main__":
    sys.exit(main())
