"""CLI: `pathpt zeroshot`, `pathpt train`, `pathpt predict`, `pathpt evaluate` (PathPT and its baselines)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..cluster.cli import add_evaluate_args, add_predict_args
from ..cluster.cli import run_evaluate as run_cluster_evaluate
from ..cluster.cli import run_predict as run_cluster_predict
from ..errors import ConfigError
from . import _checks as chk
from ._features import features_dir
from .annotations_cmd import add_predict_args as add_predict_annotation_args
from .annotations_cmd import add_train_args, apply_predict_annotations, apply_train_annotations

if TYPE_CHECKING:
    from ..backbones.base import Backbone
    from ..pathpt.model import PathPTConfig
    from ..pathpt.splits import Fold
    from ..prompts.classsets import ClassSet
    from ..workflow import Predictions

# pathpt_engine.evaluate.METHODS, spelled out so `--help` does not import torch (a test keeps them equal)
EVAL_METHODS = ("zeroshot", "ensemble", "abmil", "abmil-clean", "clam", "clam-clean", "transmil", "transmil-clean",
                "dgrmil", "dgrmil-clean", "pathpt-paper", "pathpt-clean")


def _common(p: argparse.ArgumentParser, classes: bool = True, backbone: bool = True) -> None:
    p.add_argument("--features", type=features_dir, required=True,
                   help="folder of <slide_id>.h5 feature files, or the folder `pathpt extract --out` wrote")
    if classes:
        p.add_argument("--classes", required=True, help="class-set JSON file or shipped name (e.g. ucs, synthetic)")
    if backbone:
        p.add_argument("--backbone", required=True, help="registry name (see `pathpt backbones`)")
    p.add_argument("--weights", type=Path, default=None,
                   help="backbone weights folder, or hf:OWNER/NAME from the local Hugging Face cache (default: "
                        "looked up per backbone)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))


def _train_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=chk.positive_int, default=20, help="PathPT epochs (20)")
    p.add_argument("--lr", type=chk.positive_float, default=1e-4)
    p.add_argument("--amp", default="auto", choices=("auto", "fp16", "bf16", "off"),
                   help="auto: fp16 + GradScaler on CUDA (as the paper), off on CPU")
    p.add_argument("--no-spatial", action="store_true", help="ablation: identity instead of the spatial module")
    p.add_argument("--full-text-length", action="store_true",
                   help="run the text tower on all positions (reference speed; same results)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the PathPT commands to `sub`."""
    z = sub.add_parser("zeroshot", help="zero-shot tile probabilities and slide calls from prompts")
    _common(z)
    z.add_argument("--labels", type=Path, default=None,
                   help="optional labels CSV: pick the prompt ensemble on these slides (§4.1) instead of the mean")
    z.add_argument("--out", type=Path, required=True, help="output folder")
    z.set_defaults(func=_cmd_zeroshot)

    t = sub.add_parser("train", help="train PathPT (prompt context + spatial module) on labelled slides")
    _common(t)
    t.add_argument("--labels", type=Path, required=True, help="CSV slide_id,label (class name or 0-based int)")
    t.add_argument("--recipe", default="paper", choices=("paper", "clean"))
    t.add_argument("--shots", type=chk.positive_int, default=None,
                   help="draw K slides per class (rest = validation pool)")
    t.add_argument("--seed", type=chk.nonneg_int, default=0, help="draw / prompt-selection seed (the fold index)")
    _train_opts(t)
    t.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.json + model.safetensors)")
    t.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    add_train_args(t)  # --annotations DIR, --map NAME=CLASS
    t.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="predict slides with a trained run: predictions.csv + tile score h5")
    p.add_argument("--run", type=Path, required=True, help="run folder written by `pathpt train`")
    _common(p, classes=False, backbone=False)
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_predict_args(p)  # --cluster: slides in chunks as Ray tasks (pathpt_engine.cluster)
    add_predict_annotation_args(p)  # --annotations DIR: 'ignore' regions drop tiles from the heat map and vote
    p.set_defaults(func=_cmd_predict)

    e = sub.add_parser("evaluate", help="the paper's few-shot protocol: methods x shots x folds, mean ± sd")
    _common(e)
    e.add_argument("--labels", type=Path, default=None, help="labels CSV (draw pool/test here)")
    e.add_argument("--splits", type=Path, default=None,
                   help="reference split folder holding dataset_division.json and dataset_csv_{k}shot/")
    e.add_argument("--dataset", default=None, help="dataset key in dataset_division.json (e.g. UCS)")
    e.add_argument("--shots", type=chk.positive_int, nargs="+", default=[1, 5, 10])
    e.add_argument("--folds", type=chk.positive_int, default=10)
    e.add_argument("--methods", default="zeroshot,abmil,clam,transmil,pathpt-paper,pathpt-clean",
                   help=f"comma-separated, from: {', '.join(EVAL_METHODS)} (default: %(default)s)")
    e.add_argument("--test-fraction", type=chk.open_fraction, default=0.3,
                   help="fixed test share per class (--labels)")
    e.add_argument("--pool-per-class", type=chk.positive_int, default=15)
    e.add_argument("--mil-epochs", type=chk.positive_int, default=200,
                   help="MIL training budget (default 200, the reference recipes' budget; 50 is a fast CPU preset: "
                        "label such results as a preset)")
    e.add_argument("--masks", type=Path, default=None,
                   help="tumour masks <slide_id>_tumour_ds<D>.png (e.g. a synthetic cohort's masks/): adds tile "
                        "AUROC and Dice")
    _train_opts(e)
    e.add_argument("--out", type=Path, required=True, help="results folder")
    add_evaluate_args(e)  # --cluster: one Ray task per method x shots x fold (pathpt_engine.cluster)
    e.set_defaults(func=_cmd_evaluate)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _backbone(args: argparse.Namespace) -> Backbone:
    from ..backbones import load_backbone

    return load_backbone(args.backbone, args.weights, _device(args.device)).freeze()


def _config(args: argparse.Namespace, recipe: str = "paper") -> PathPTConfig:
    from ..pathpt.model import PathPTConfig

    try:
        return PathPTConfig(recipe=recipe, epochs=args.epochs, lr=args.lr, amp=args.amp, device=_device(args.device),
                            spatial=not args.no_spatial, truncate_text=not args.full_text_length)
    except ValueError as exc:
        raise ConfigError(f"bad training options: {exc}") from None


def _finish(out: Path, found: Predictions, class_names: tuple[str, ...]) -> int:
    from ..workflow import output_lines, write_run_outputs

    write_run_outputs(out, found.results, class_names)
    for line in output_lines(out, found.calls, found.empty):
        print(line)
    return 0


def _cmd_zeroshot(args: argparse.Namespace) -> int:
    from ..pathpt.data import feature_files, load_labelled, load_slide, read_labels_csv
    from ..progress import run_with_bar
    from ..prompts.classsets import load_classset
    from ..workflow import zeroshot

    cs = load_classset(args.classes)
    labelled = load_labelled(args.features, read_labels_csv(args.labels, cs)) if args.labels is not None else []
    slides = [load_slide(path) for path in feature_files(args.features).values()]
    bb = _backbone(args)
    chk.check_dims([*labelled, *slides], bb.embed_dim, args.features, f"backbone {bb.name}")
    found = run_with_bar(zeroshot(bb, cs, slides, labelled), quiet=args.quiet)
    return _finish(args.out, found, cs.subtype_names)


def _cmd_train(args: argparse.Namespace) -> int:
    from ..pathpt.data import load_labelled, read_labels_csv
    from ..pathpt.splits import draw_folds
    from ..pathpt.trainer import train_pathpt
    from ..progress import run_with_bar
    from ..prompts.classsets import load_classset

    chk.check_run_out(args.out, args.overwrite)
    cs = load_classset(args.classes)
    labels = read_labels_csv(args.labels, cs)
    train_ids, val_ids = dict(labels), {}
    if args.shots is not None:
        chk.warn_short_classes(labels, args.shots, cs.subtype_names)
        fold = draw_folds(labels, {}, args.shots, 1, first=args.seed)[0]
        train_ids, val_ids = fold.train, fold.val
    missing = sorted(set(range(cs.n_classes - 1)) - set(train_ids.values()))
    if missing:
        raise ConfigError(f"{args.labels}: no labelled slide for subtype(s) {[cs.subtype_names[m] for m in missing]}")
    train = apply_train_annotations(args, cs, load_labelled(args.features, train_ids))
    val = load_labelled(args.features, val_ids) if val_ids and args.recipe == "clean" else None
    chk.refuse_empty_training(train, args.labels)
    val = chk.split_empty(val)[0] if val else None
    bb = _backbone(args)
    chk.check_dims([*train, *(val or [])], bb.embed_dim, args.features, f"backbone {bb.name}")
    meta = {"features": str(args.features), "labels": str(args.labels), "shots": args.shots, "seed": args.seed}
    result = run_with_bar(train_pathpt(bb, cs, train, _config(args, args.recipe), out_dir=args.out, val=val,
                                       ensemble_seed=args.seed, meta=meta), quiet=args.quiet)
    last = result.history[result.best_epoch]
    print(json.dumps({"run": str(result.checkpoint), "best_epoch": result.best_epoch,
                      **{k: round(v, 4) for k, v in last.items() if k != "epoch"}}))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from ..pathpt.data import feature_files, load_slide
    from ..pathpt.predictor import load_run
    from ..progress import run_with_bar
    from ..workflow import model_probs, predict

    if getattr(args, "annotations", None) is not None and getattr(args, "cluster", None) is not None:
        raise ConfigError("--annotations is not supported with --cluster; predict in this process")
    if (code := run_cluster_predict(args)) is not None:  # --cluster; else this process
        return code
    run = load_run(args.run, weights=args.weights, device=_device(args.device))
    slides = [load_slide(p) for p in feature_files(args.features).values()]
    slides = apply_predict_annotations(args, run.classset, slides)
    chk.check_dims(slides, run.model.backbone.embed_dim, args.features, f"run {args.run}")
    found = run_with_bar(predict(run.classset, slides, model_probs(run.model)), quiet=args.quiet)
    return _finish(args.out, found, run.classset.subtype_names)


def _folds(args: argparse.Namespace, cs: ClassSet) -> dict[int, list[Fold]]:
    from ..pathpt.data import read_labels_csv
    from ..pathpt.splits import draw_folds, make_division, read_reference_folds

    if args.splits is not None:
        if not args.dataset:
            raise ConfigError("--splits needs --dataset (the key in dataset_division.json, e.g. UCS)")
        return {k: read_reference_folds(args.splits, args.dataset, k, cs)[: args.folds] for k in args.shots}
    if args.labels is None:
        raise ConfigError("evaluate needs --labels CSV or --splits DIR --dataset NAME")
    labels = read_labels_csv(args.labels, cs)
    pool, test = make_division(labels, cs.n_classes - 1, args.test_fraction, args.pool_per_class)
    for k in args.shots:
        chk.warn_short_classes(pool, k, cs.subtype_names)
    return {k: draw_folds(pool, test, k, args.folds) for k in args.shots}


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from ..evaluate import EvalConfig, evaluate_protocol
    from ..pathpt.data import load_labelled
    from ..progress import run_with_bar
    from ..prompts.classsets import load_classset

    cs = load_classset(args.classes)
    folds = _folds(args, cs)
    try:
        cfg = EvalConfig(methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
                         pathpt=_config(args), mil_epochs=args.mil_epochs)
    except ValueError as exc:
        raise ConfigError(f"--methods: {exc}") from None
    if (code := run_cluster_evaluate(args, folds, cfg)) is not None:  # --cluster; else this process
        return code
    ids = sorted({s for fs in folds.values() for f in fs for s in (*f.train, *f.val, *f.test)})
    slides = {s.slide_id: s for s in load_labelled(args.features, {}, ids)}
    chk.refuse_empty_training(list(slides.values()), args.labels or args.splits)
    bb = _backbone(args)
    chk.check_dims(slides.values(), bb.embed_dim, args.features, f"backbone {bb.name}")
    run_with_bar(evaluate_protocol(bb, cs, slides, folds, args.out, replace(cfg), masks_dir=args.masks),
                 quiet=args.quiet)
    print((args.out / "results.md").read_text(encoding="utf-8"), end="")
    return 0
