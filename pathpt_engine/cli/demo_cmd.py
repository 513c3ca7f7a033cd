"""`pathpt demo`: the whole pipeline on the embedded default (synthetic cohort + demo model)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `pathpt demo` to `sub`."""
    p = sub.add_parser(
        "demo",
        help="synthetic cohort -> demo-model features -> zero-shot vs MIL vs PathPT -> predictions and heatmaps",
        description="Runs the whole pipeline offline on synthetic slides with the shipped demo model "
        "(for demonstration only, never for diagnosis). Reuses what an earlier run left in --out.",
    )
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (demo_out)")
    p.add_argument("--subtypes", type=int, default=3)
    p.add_argument("--slides-per-class", type=int, default=8)
    p.add_argument("--shots", type=int, default=3)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="realistic",
                   help="level-0 WxH of each synthetic slide, or 'realistic' (default: sizes drawn per slide, "
                   "a median of ~450 tissue tiles at 0.5 um/px)")
    p.add_argument("--mpp", type=float, default=0.5, help="level-0 microns per pixel (default 0.5)")
    p.add_argument("--jobs", type=int, default=2, help="slides synthesised in parallel (default 2)")
    p.add_argument("--backbone", default="demo", help="registry name (default: the shipped demo model)")
    p.add_argument("--weights", type=Path, default=None)
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import DemoConfig, run_demo
    from ..progress import run_with_bar
    from .synth_cmd import parse_size

    size = parse_size(args.size)
    try:
        if args.jobs < 1:
            raise ValueError(f"--jobs {args.jobs}: must be >= 1")
        cfg = DemoConfig(out=args.out, n_subtypes=args.subtypes, slides_per_class=args.slides_per_class,
                         size=size, mpp=args.mpp, jobs=args.jobs, seed=args.seed, shots=args.shots,
                         folds=args.folds, epochs=args.epochs, backbone=args.backbone, weights=args.weights)
    except ValueError as exc:
        raise ConfigError(f"pathpt demo: bad option ({exc})") from None
    summary = run_with_bar(run_demo(cfg), quiet=args.quiet)
    print(Path(summary["results_table"]).read_text(encoding="utf-8"), end="")
    print(f"\nfinal run: {summary['run']}")
    print(f"predictions: {summary['predictions']}  (test accuracy {summary['final_run_test_accuracy']:.2f} "
          f"on {summary['n_test']} slides)")
    print(f"overlays, GeoJSON: {summary['exports']}")
    print("demo model on synthetic slides: for demonstration only, never for diagnosis")
    return 0
