"""The embedded default, end to end: synthetic cohort -> demo-model features -> zero-shot -> PathPT -> outputs.

`run_demo` is one job (progress events, cancellable) used by `pathpt demo` and by the GUI's demo project. Every
stage reuses what an earlier run left in the output folder (cohort, features, evaluation folds), so a second run
is fast and an interrupted one resumes.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .jobs import Job, Progress, check_cancel

if TYPE_CHECKING:
    from .synth.cohort import CohortSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs.

    Attributes:
        out: output folder.
        n_subtypes: tumour subtypes in the synthetic cohort.
        slides_per_class: slides per subtype (pool + test).
        size: level-0 (width, height) of each synthetic slide, or None (default) for the realistic scale
            (`pathpt synth --size realistic`: a median of ~450 tissue tiles, some 2,000+ tile resections).
        mpp: level-0 microns per pixel of the synthetic slides (0.5, a 20x scan).
        jobs: slides synthesised in parallel.
        seed: cohort and protocol seed.
        shots: few-shot training slides per subtype.
        folds: evaluation folds (independent k-shot draws).
        epochs: PathPT epochs.
        methods: methods compared in the results table.
        backbone, weights: the vision-language model (default: the shipped demo model).
    """

    out: Path = Path("demo_out")
    n_subtypes: int = 3
    slides_per_class: int = 8
    size: tuple[int, int] | None = None
    mpp: float = 0.5
    jobs: int = 2
    seed: int = 0
    shots: int = 3
    folds: int = 3
    epochs: int = 20
    methods: tuple[str, ...] = ("zeroshot", "abmil", "pathpt-paper", "pathpt-clean")
    backbone: str = "demo"
    weights: Path | None = None

    def __post_init__(self) -> None:
        if self.shots < 1 or self.shots >= self.slides_per_class:
            raise ValueError(f"shots must be in 1..slides_per_class-1, got {self.shots}")
        if self.folds < 1 or self.epochs < 1:
            raise ValueError("folds and epochs must be >= 1")


def run_demo(cfg: DemoConfig, cancel: threading.Event | None = None) -> Job[dict[str, Any]]:
    """Job: run the whole demo and return a summary (also written to `<out>/summary.json`)."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cohort = yield from _cohort(cfg, out / "cohort", cancel)
    features = yield from _features(cfg, cohort, out / "features", cancel)
    from .prompts.classsets import synth_classset

    classset = synth_classset(cfg.n_subtypes)
    table, fold0 = yield from _evaluate(cfg, classset, cohort, features, out / "evaluation", cancel)
    outputs = yield from _final_run(cfg, classset, cohort, features, fold0, out, cancel)
    summary = {"config": _jsonable(asdict(cfg)), "results_table": str(out / "evaluation" / "results.md"),
               "table": table, **outputs}
    from .export._atomic import write_text_atomic

    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2))
    yield Progress("done", 1, 1, message=str(out))
    return summary


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


def _cohort(cfg: DemoConfig, folder: Path, cancel: threading.Event | None) -> Job[Path]:
    from .synth.cohort import make_cohort

    if (folder / "cohort.json").exists():
        yield Progress("synth", 1, 1, message="reusing existing cohort")
        return folder
    spec = demo_cohort_spec(cfg.n_subtypes, cfg.slides_per_class, cfg.size, cfg.mpp, cfg.seed)
    yield from make_cohort(folder, spec, cancel=cancel, overwrite=True, jobs=cfg.jobs)
    return folder


def demo_cohort_spec(n_subtypes: int, slides_per_class: int, size: tuple[int, int] | None, mpp: float,
                     seed: int) -> CohortSpec:
    """The demos' cohort (`pathpt demo`, the GUI's demo project): subtype slides only, no Normal slides; `size`
    fixes every slide's level-0 size, None draws realistic sizes."""
    from .synth.cohort import CohortSpec

    w, h = size or (4096, 3072)
    return CohortSpec(n_subtypes=n_subtypes, slides_per_class=slides_per_class, normal_slides=0, width=w, height=h,
                      seed=seed, mpp=mpp, scale="fixed" if size else "realistic")


def _features(cfg: DemoConfig, cohort: Path, out: Path, cancel: threading.Event | None) -> Job[Path]:
    from .features.extract import ExtractOptions, extract_slides

    slides = sorted((cohort / "slides").glob("*.tif*")) + sorted((cohort / "slides").glob("*.svs"))
    opts = ExtractOptions(backbone=cfg.backbone, weights=cfg.weights, device="auto")
    summary = yield from extract_slides(slides, out, opts, cancel=cancel)
    return out / summary.backbone / "h5_files"


def _evaluate(cfg: DemoConfig, classset: Any, cohort: Path, features: Path, out: Path,
              cancel: threading.Event | None) -> Job[tuple[dict[str, Any], Any]]:
    from .backbones import load_backbone
    from .evaluate import EvalConfig, evaluate_protocol
    from .pathpt.data import load_labelled, read_labels_csv
    from .pathpt.model import PathPTConfig
    from .pathpt.splits import draw_folds, make_division

    labels = read_labels_csv(cohort / "labels.csv", classset)
    pool, test = make_division(labels, classset.n_classes - 1, test_fraction=0.5, seed=cfg.seed)
    folds = draw_folds(pool, test, cfg.shots, cfg.folds, seed=cfg.seed)
    slides = {s.slide_id: s for s in load_labelled(features, labels)}
    backbone = load_backbone(cfg.backbone, cfg.weights, "cpu").freeze()
    ecfg = EvalConfig(methods=cfg.methods, pathpt=PathPTConfig(epochs=cfg.epochs), mil_epochs=30)
    check_cancel(cancel)
    table = yield from evaluate_protocol(backbone, classset, slides, {cfg.shots: folds}, out, ecfg, cancel,
                                         masks_dir=cohort / "masks")
    return table, folds[0]


def _final_run(cfg: DemoConfig, classset: Any, cohort: Path, features: Path, fold: Any, out: Path,
               cancel: threading.Event | None) -> Job[dict[str, Any]]:
    """Train PathPT on fold 0's shots, predict the test slides, export overlays, GeoJSON and CSV."""
    from .backbones import load_backbone
    from .export.png import OverlayStyle
    from .pathpt.data import load_labelled
    from .pathpt.model import PathPTConfig
    from .pathpt.trainer import train_pathpt
    from .workflow import ExportOptions, export_run, model_probs, predict, write_run_outputs

    backbone = load_backbone(cfg.backbone, cfg.weights, "cpu").freeze()
    train = load_labelled(features, fold.train)
    result = yield from train_pathpt(backbone, classset, train, PathPTConfig(epochs=cfg.epochs),
                                     out_dir=out / "run", ensemble_seed=fold.index, cancel=cancel,
                                     meta={"demo": True, "train": sorted(fold.train)})
    test = [replace(s, label=y) for s, y in zip(load_labelled(features, fold.test), fold.test.values(),
                                                   strict=True)]
    found = yield from predict(classset, test, model_probs(result.model), cancel)
    results = found.results
    pred_dir, export_dir = out / "predictions", out / "exports"
    write_run_outputs(pred_dir, results, classset.subtype_names)
    export_dir.mkdir(parents=True, exist_ok=True)
    style = OverlayStyle(mode="argmax", alpha=0.45, colors={c.name: c.color for c in classset.classes})
    opts = ExportOptions(export_dir, ("overlay_png", "geojson"), style, downsample=16.0,
                         suffixes={"overlay_png": "_overlay.png", "geojson": ".geojson"})
    slides_dir = cohort / "slides"
    yield from export_run([pred_dir / "tiles" / f"{p.slide_id}.h5" for p, _ in results], opts,
                          lambda sid: next(slides_dir.glob(f"{sid}.*")), cancel=cancel)
    truth = {s.slide_id: classset.subtype_names[s.label] for s in test}
    correct = sum(p.predicted == truth[p.slide_id] for p, _ in results)
    return {"run": str(out / "run"), "predictions": str(pred_dir / "predictions.csv"), "exports": str(export_dir),
            "final_run_test_accuracy": correct / max(1, len(results)), "n_test": len(results)}


def score_against_masks(masks_dir: Path, scores: dict[str, Any], predicted: dict[str, str],
                        truth: dict[str, str], train_ids: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    """How a run did on a synthetic cohort, measured against its ground truth.

    Args:
        masks_dir: the cohort's `masks/` folder (`<id>_tumour_ds<D>.png`).
        scores: slide_id -> TileScores (column 0 = Normal).
        predicted: slide_id -> predicted subtype name.
        truth: slide_id -> true label.
        train_ids: slides the run was trained on.

    Returns:
        tile_auroc and tile_dice (tumour vs normal, score 1 - p(Normal), tiles > 50% inside the tumour mask count
        as tumour, pooled over slides), n_tiles, slide_accuracy, per-slide calls, and the training slides' calls.
    """
    import numpy as np
    from PIL import Image

    from .evaluate import find_mask
    from .metrics import grounding_metrics, tiles_in_mask

    pos, score, per_slide = [], [], {}
    for sid in sorted(scores):
        sc = scores[sid]
        found = find_mask(masks_dir, sid)
        if found is not None:
            mask = np.asarray(Image.open(found[0]).convert("L")) > 127
            pos.append(tiles_in_mask(sc.coords, sc.tile_size_level0, mask, found[1]))
            score.append(1.0 - np.asarray(sc.probs, float)[:, 0])
        per_slide[sid] = {"label": truth.get(sid), "predicted": predicted.get(sid),
                          "train": sid in set(train_ids), "n_tiles": int(len(sc.coords))}
    g = grounding_metrics(np.concatenate(score), np.concatenate(pos)) if score else {}
    called = [s for s in per_slide.values() if s["label"] is not None and s["predicted"] is not None]
    correct = sum(s["label"] == s["predicted"] for s in called)
    train = [s for s in called if s["train"]]
    return {"tile_auroc": g.get("auroc"), "tile_dice": g.get("dice"), "n_tiles": int(sum(len(p) for p in pos)),
            "n_tumour_tiles": int(sum(int(p.sum()) for p in pos)), "slides_correct": correct,
            "n_slides": len(called), "slide_accuracy": correct / max(1, len(called)),
            "train_slides_correct": sum(s["label"] == s["predicted"] for s in train), "n_train_slides": len(train),
            "slides": per_slide}
