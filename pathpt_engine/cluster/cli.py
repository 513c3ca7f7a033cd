"""CLI wiring for `pathpt extract --cluster local|auto`, `--status` and `--stage-dir`.

`pathpt_engine/cli/backbone_cmd.py` calls `add_extract_args(parser)` once and `run_extract(args, opts)` at the
start of its handler; without `--cluster`/`--status` it returns None and the single-process path runs unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError
from .base import ClusterOptions

if TYPE_CHECKING:
    from ..evaluate import EvalConfig
    from ..features.extract import ExtractOptions
    from ..pathpt.splits import Fold
    from .driver import ClusterSummary


def add_extract_args(p: argparse.ArgumentParser) -> None:
    """Add the cluster options to the `extract` parser."""
    g = p.add_argument_group("cluster (Ray; pip install 'pathpt[cluster]')")
    g.add_argument("--cluster", default=None, metavar="local|auto|ADDRESS",
                   help="run on Ray: local (all local GPUs/CPUs), auto (join the running cluster or job) or a "
                        "Ray address; default: single process")
    g.add_argument("--num-workers", type=int, default=None, help="Ray workers (default: one per GPU)")
    g.add_argument("--cpus-per-worker", type=int, default=2, help="CPUs reserved per worker (tile decoding)")
    g.add_argument("--slide-timeout", type=float, default=3600.0, help="seconds before a slide is 'timeout'")
    g.add_argument("--stage-dir", type=Path, default=None,
                   help="copy each slide to this local folder before reading its tiles")
    g.add_argument("--allow-network", action="store_true",
                   help="allow Ray outside a loopback-only network namespace (real clusters only)")
    g.add_argument("--status", action="store_true", help="print the extraction ledger of --out and exit")


def cluster_options(args: argparse.Namespace) -> ClusterOptions:
    """`ClusterOptions` from parsed arguments."""
    return ClusterOptions(address=args.cluster or "local", num_workers=args.num_workers,
                          cpus_per_worker=args.cpus_per_worker, slide_timeout_s=args.slide_timeout,
                          stage_dir=args.stage_dir, allow_network=args.allow_network)


def run_extract(args: argparse.Namespace, opts: ExtractOptions) -> int | None:
    """Handle `--status` and `--cluster`; None means: run the single-process path.

    Raises:
        ConfigError: no slides given (and not `--status`), or `--stage-dir` without `--cluster`.
        ClusterError: see `extract_cluster`.
    """
    from ..features.ledger import status_lines

    if args.status:
        for line in status_lines(args.out):
            print(line)
        return 0
    if not args.slides:
        raise ConfigError("pathpt extract: no slide files given")
    if args.cluster is None:
        if args.stage_dir is not None:
            raise ConfigError("--stage-dir needs --cluster local|auto")
        return None
    from ..progress import run_with_bar
    from .driver import extract_cluster

    summary = run_with_bar(extract_cluster(args.slides, args.out, opts, cluster_options(args)), quiet=args.quiet)
    return print_summary(summary, Path(args.out))


def print_summary(summary: ClusterSummary, out: Path) -> int:
    """Print a cluster run (workers, start-up, counts, every slide not done); exit code 1 if any failed."""
    from ..features.ledger import FINAL, ledger_path

    print(f"{len(summary.workers)} workers ({', '.join(w['device'] for w in summary.workers)}), start-up "
          f"{summary.startup_s:.1f} s, {summary.tiles} tiles in {summary.run_s:.1f} s "
          f"({summary.tiles_per_s:.1f} tiles/s)")
    print(", ".join(f"{summary.count(s)} {s}" for s in FINAL if summary.count(s)))
    bad = [r for r in summary.results if r.status not in ("done", "skipped")]
    for r in bad:
        print(f"{r.slide}: {r.status}: {r.reason}")
    print(f"ledger: {ledger_path(out)}")
    return 1 if bad else 0


def add_evaluate_args(p: argparse.ArgumentParser, unit: str = "(method, shots, fold)") -> None:
    """Add `--cluster` (one Ray task per `unit`) to the `evaluate` or `predict` parser."""
    g = p.add_argument_group("cluster (Ray; pip install 'pathpt[cluster]')")
    g.add_argument("--cluster", default=None, metavar="local|auto|ADDRESS",
                   help=f"run each {unit} as a Ray task: local, auto (join a running cluster) or a Ray "
                        "address; default: single process")
    g.add_argument("--cpus-per-task", type=int, default=2, help="CPUs reserved per task")
    g.add_argument("--allow-network", action="store_true",
                   help="allow Ray outside a loopback-only network namespace (real clusters only)")


def run_evaluate(args: argparse.Namespace, folds: dict[int, list[Fold]], cfg: EvalConfig) -> int | None:
    """Run the protocol on Ray when `--cluster` is given (None: run it in this process) and print the table."""
    if getattr(args, "cluster", None) is None:
        return None
    from ..progress import run_with_bar
    from .base import import_ray

    import_ray()
    from .tasks import EvalInputs, evaluate_cluster

    copts = ClusterOptions(address=args.cluster, cpus_per_worker=args.cpus_per_task,
                           allow_network=args.allow_network)
    inputs = EvalInputs(backbone=args.backbone, weights=args.weights, classes=args.classes,
                        features=Path(args.features), masks=args.masks)
    if getattr(args, "device", None) == "auto":  # the workers' GPUs decide, not the driver's (tasks.task_device)
        from dataclasses import replace

        cfg = replace(cfg, pathpt=replace(cfg.pathpt, device="auto"))
    run_with_bar(evaluate_cluster(inputs, folds, args.out, cfg, copts), quiet=args.quiet)
    print((Path(args.out) / "results.md").read_text(encoding="utf-8"), end="")
    return 0


def add_predict_args(p: argparse.ArgumentParser) -> None:
    """Add `--cluster` (one Ray task per chunk of slides) to the `predict` parser."""
    add_evaluate_args(p, unit="chunk of 16 slides")


def run_predict(args: argparse.Namespace) -> int | None:
    """Predict on Ray when `--cluster` is given (None: in this process); writes the same files as without."""
    if getattr(args, "cluster", None) is None:
        return None
    from ..pathpt.data import feature_files
    from ..progress import run_with_bar
    from ..workflow import output_lines, write_run_outputs
    from .base import import_ray

    import_ray()
    from .predict import predict_cluster

    copts = ClusterOptions(address=args.cluster, cpus_per_worker=args.cpus_per_task,
                           allow_network=args.allow_network)
    files = list(feature_files(args.features).values())
    calls, empty = run_with_bar(predict_cluster(args.run, files, args.out, args.weights, copts,
                                                device=getattr(args, "device", "auto")), quiet=args.quiet)
    write_run_outputs(args.out, [(p, None) for p in calls], list(calls[0].probs) if calls else [])
    for line in output_lines(args.out, calls, empty):
        print(line)
    return 0
