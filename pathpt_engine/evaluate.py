"""The paper's few-shot protocol: k-shot draws from a pool, a fixed test set, several methods, mean ± sd.

Methods: ``zeroshot`` (all prompts averaged per class, no labels), ``ensemble`` (the §4.1 W*, tuned on the
fold's training labels), ``abmil``, ``clam``, ``transmil``, ``dgrmil`` (subtypes only; the fixed epoch budget, last
epoch, mil-baselines.md §6 ``paper``) and their ``-clean`` variants (the epoch with the lowest bag CE on the fold's
held-out pool slides, never the test set; ``dgrmil-clean`` also uses per-class centres), ``pathpt-paper``,
``pathpt-clean``.
Each (method, shots, fold) result is its own JSON file under ``out/runs/`` and is skipped when present, so an
interrupted evaluation resumes. The table (mean ± sd over folds of BACC, weighted F1, macro AUC) is written as
``results.json`` and ``results.md``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backbones.base import Backbone
from .baselines.dgrmil import DGRMILConfig, train_dgrmil
from .baselines.train import MILConfig, predict_mil, train_mil
from .errors import ConfigError
from .jobs import Job, Progress, check_cancel
from .metrics import binary_auc, classification_report, grounding_metrics, mean_sd, tiles_in_mask
from .ops.vote import tile_vote
from .pathpt.checkpoint import atomic_bytes
from .pathpt.model import PathPTConfig
from .pathpt.splits import Fold
from .pathpt.trainer import SlideData, train_pathpt
from .prompts.classsets import ClassSet
from .prompts.zeroshot import (
    encode_class_prompts,
    mean_classifier,
    select_prompt_ensemble,
    zeroshot_tile_probs,
)
from .results import PROBABILITY, TILE_VOTES

log = logging.getLogger(__name__)

METHODS = ("zeroshot", "ensemble", "abmil", "abmil-clean", "clam", "clam-clean", "transmil", "transmil-clean",
           "dgrmil", "dgrmil-clean", "pathpt-paper", "pathpt-clean")


@dataclass(frozen=True)
class EvalConfig:
    """Settings shared by every fold."""

    methods: tuple[str, ...] = ("zeroshot", "abmil", "clam", "transmil", "pathpt-paper", "pathpt-clean")
    pathpt: PathPTConfig = PathPTConfig()
    mil_epochs: int = 200
    mil_selection: str = "last"

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"unknown method(s) {bad}; known: {', '.join(METHODS)}")
        if self.mil_epochs < 1 or self.mil_selection not in ("last", "val"):
            raise ValueError("mil_epochs must be >= 1 and mil_selection 'last' or 'val'")


def _atomic_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_bytes(path, (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def slide_score_kind(method: str) -> str:
    """What a method's slide numbers are: shares of tile votes (zero-shot, ensemble, PathPT) or probabilities."""
    return TILE_VOTES if method in ("zeroshot", "ensemble") or method.startswith("pathpt") else PROBABILITY


def _score(slides: list[SlideData], probs: list[np.ndarray], n_sub: int, names: tuple[str, ...],
           kind: str = PROBABILITY) -> dict:
    """Slide metrics and per-slide predictions (their numbers under "vote_shares" or "probs", as `kind` says)."""
    y = np.array([s.label for s in slides])
    p = np.stack(probs)
    pred = p.argmax(axis=1)
    rep = classification_report(y, pred, p, n_sub)
    key = "probs" if kind == PROBABILITY else "vote_shares"
    rep["slide_score"] = kind
    rep["predictions"] = [{"slide_id": s.slide_id, "label": names[s.label], "predicted": names[int(k)],
                           key: [round(float(v), 6) for v in row]}
                          for s, k, row in zip(slides, pred, p, strict=True)]
    return rep


def _tile_out(tile_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shares of tile votes: the slide call, and what slide AUC ranks; tumour probability 1 - p_Normal per tile)."""
    sub, counts = tile_vote(tile_probs)
    out = counts.astype(float).copy()
    out[sub] += 1e-9  # the vote's tie-break wins the argmax of the pseudo-probabilities too
    return out, 1.0 - tile_probs[:, 0]


def find_mask(masks_dir: Path | None, slide_id: str) -> tuple[Path, float] | None:
    """`<masks_dir>/<slide_id>_tumour_ds<D>.png` (synthetic cohorts) and its downsample D, if present."""
    if masks_dir is None:
        return None
    for p in sorted(Path(masks_dir).glob(f"{slide_id}_tumour_ds*.png")):
        m = re.fullmatch(re.escape(slide_id) + r"_tumour_ds(\d+(?:\.\d+)?)", p.stem)
        if m:
            return p, float(m.group(1))
    return None


def grounding(test: list[SlideData], tile_scores: list[np.ndarray], masks_dir: Path | None) -> dict | None:
    """Tile AUROC / Dice (Youden) pooled over the test slides that have a tumour mask."""
    from PIL import Image

    scores, truth = [], []
    for s, sc in zip(test, tile_scores, strict=True):
        found = find_mask(masks_dir, s.slide_id)
        if found is None or len(sc) != len(s.coords):
            continue
        mask = np.asarray(Image.open(found[0]).convert("L")) > 127
        truth.append(tiles_in_mask(s.coords, s.tile_size_level0, mask, found[1]))
        scores.append(np.asarray(sc, dtype=float))
    if not scores:
        return None
    g = grounding_metrics(np.concatenate(scores), np.concatenate(truth))
    g["n_slides"], g["n_tiles"] = len(scores), int(sum(len(x) for x in scores))
    # within-slide ranking only: fair to maps whose scale changes from slide to slide (softmax attention ~ 1/N)
    per_slide = [binary_auc(t, sc) for sc, t in zip(scores, truth, strict=True) if 0 < t.sum() < len(t)]
    g["auroc_per_slide"] = float(np.mean(per_slide)) if per_slide else float("nan")
    g["n_slides_per_slide_auroc"] = len(per_slide)
    return g


class FoldRunner:
    """Runs one (method, fold) on cached slides."""

    def __init__(self, backbone: Backbone, classset: ClassSet, cfg: EvalConfig,
                 cancel: threading.Event | None) -> None:
        self.backbone, self.classset, self.cfg, self.cancel = backbone, classset, cfg, cancel
        self.n_sub = classset.n_classes - 1
        self._embs: list[torch.Tensor] | None = None

    @property
    def embs(self) -> list[torch.Tensor]:
        if self._embs is None:
            self._embs = encode_class_prompts(self.backbone, self.classset)
        return self._embs

    def run(self, method: str, fold: Fold,
            slides: dict[str, SlideData]) -> Job[list[tuple[np.ndarray, np.ndarray]]]:
        """Per test slide: (slide scores over subtypes: tile-vote shares or MIL probabilities, see
        `slide_score_kind`; tile tumour score [N])."""
        train = [replace(slides[s], label=y) for s, y in fold.train.items()]
        val = [replace(slides[s], label=y) for s, y in fold.val.items()]
        test = [replace(slides[s], label=y) for s, y in fold.test.items()]
        if method in ("zeroshot", "ensemble"):
            w = (mean_classifier(self.embs) if method == "zeroshot" else select_prompt_ensemble(
                self.embs, [(s.features, s.label) for s in train], seed=fold.index).classifier)
            return [_tile_out(zeroshot_tile_probs(s.features, w)) for s in test]
        if method.startswith("pathpt"):
            recipe = method.split("-", 1)[1]
            config = replace(self.cfg.pathpt, recipe=recipe)
            result = yield from train_pathpt(self.backbone, self.classset, train, config,
                                             val=val if recipe == "clean" else None,
                                             ensemble_seed=fold.index, cancel=self.cancel)
            model = result.model.eval()
            dev = next(model.parameters()).device
            with torch.no_grad():
                text = model.text_features()
            return [_tile_out(model.predict_probs(torch.as_tensor(s.features, device=dev), text=text).cpu().numpy())
                    for s in test]
        bags = [(s.features, s.label) for s in train]
        val_bags = [(s.features, s.label) for s in val]
        base, clean = method.removesuffix("-clean"), method.endswith("-clean")
        # paper: fixed budget, last epoch (or cfg.mil_selection); clean: lowest CE on the held-out pool slides
        selection = "val" if clean and val_bags else self.cfg.mil_selection
        if clean and not val_bags:
            log.warning("%s fold %d: no held-out pool slides; selecting the last epoch", method, fold.index)
        if base == "dgrmil":
            # paper: the reference's binary centre rule; clean: per-class centres
            dcfg = DGRMILConfig(epochs=self.cfg.mil_epochs, warmup_epochs=max(1, min(10, self.cfg.mil_epochs // 5)),
                                mode="clean" if clean else "paper", selection=selection, seed=fold.index,
                                device=self.cfg.pathpt.device)
            mil = yield from train_dgrmil(dcfg, self.n_sub, bags, val_bags, cancel=self.cancel)
        else:
            mcfg = MILConfig(model=base, epochs=self.cfg.mil_epochs, selection=selection, seed=fold.index,
                             device=self.cfg.pathpt.device)
            mil = yield from train_mil(mcfg, self.n_sub, bags, val_bags, cancel=self.cancel)
        return [predict_mil(mil, s.features) for s in test]


def evaluate_protocol(
    backbone: Backbone,
    classset: ClassSet,
    slides: dict[str, SlideData],
    folds_by_shots: dict[int, list[Fold]],
    out_dir: str | Path,
    cfg: EvalConfig = EvalConfig(),
    cancel: threading.Event | None = None,
    masks_dir: str | Path | None = None,
) -> Job[dict[str, Any]]:
    """Run every (method, shots, fold) not yet done, then write the results table.

    With `masks_dir` (tumour masks `<slide_id>_tumour_ds<D>.png`), each record also gets tile-level grounding
    (AUROC, Dice) of the tumour score: 1 - p_Normal for zero-shot/PathPT, the attention heat map for MIL.
    """
    empty = [k for k, folds in folds_by_shots.items() if not folds]
    if not folds_by_shots or empty:
        raise ConfigError(f"{out_dir}: nothing to evaluate: no folds for shots {empty or 'any'} (need at least "
                          "1 fold per shot count)")
    out = Path(out_dir)
    runner = FoldRunner(backbone, classset, cfg, cancel)
    jobs = [(m, k, f) for k, folds in folds_by_shots.items() for f in folds for m in cfg.methods]
    for i, (method, shots, fold) in enumerate(jobs):
        check_cancel(cancel)
        if fold_result_path(out, method, shots, fold.index).is_file():
            yield Progress("evaluate", i + 1, len(jobs), message=f"{method} {shots}-shot fold {fold.index} (done)")
            continue
        rep = yield from evaluate_fold(runner, slides, method, shots, fold, out, masks_dir)
        yield Progress("evaluate", i + 1, len(jobs), message=f"{method} {shots}-shot fold {fold.index}",
                       metrics={"bacc": float(rep["bacc"])})
    return summarize(out, cfg.methods, sorted(folds_by_shots), grounded=masks_dir is not None)


def fold_result_path(out_dir: str | Path, method: str, shots: int, fold_index: int) -> Path:
    """Where the result of one (method, shots, fold) goes; its presence means the unit is done."""
    return Path(out_dir) / "runs" / method / f"{shots}shot" / f"fold{fold_index}.json"


def evaluate_fold(runner: FoldRunner, slides: dict[str, SlideData], method: str, shots: int, fold: Fold,
                  out_dir: str | Path, masks_dir: str | Path | None = None) -> Job[dict[str, Any]]:
    """Job: run one (method, shots, fold), write its JSON atomically and return the record.

    `slides` needs only the fold's train, val and test slides (cluster tasks load just those).
    """
    t0 = time.monotonic()
    test = [replace(slides[s], label=y) for s, y in fold.test.items()]
    outs = yield from runner.run(method, fold, slides)
    rep = _score(test, [o[0] for o in outs], runner.n_sub, runner.classset.subtype_names, slide_score_kind(method))
    g = grounding(test, [o[1] for o in outs], Path(masks_dir) if masks_dir else None)
    if g is not None:
        rep["grounding"] = g
        rep["tile_auroc"], rep["tile_dice"] = g["auroc"], g["dice"]
        rep["slide_tile_auroc"] = g["auroc_per_slide"]
    rep.update(method=method, shots=shots, fold=fold.index, seconds=round(time.monotonic() - t0, 2),
               n_train=len(fold.train), n_test=len(fold.test))
    _atomic_json(fold_result_path(out_dir, method, shots, fold.index), rep)
    log.info("%s %d-shot fold %d: BACC %.3f", method, shots, fold.index, rep["bacc"])
    return rep


# column titles of the results tables (here and bench/fewshot.py's compact one)
METRIC_TITLES = {"bacc": "BACC", "weighted_f1": "weighted F1", "auc": "macro AUC", "tile_auroc": "tile AUROC",
                 "slide_tile_auroc": "per-slide tile AUROC", "tile_dice": "tile Dice"}


def summarize(out_dir: str | Path, methods: tuple[str, ...], shots: list[int],
              grounded: bool = False) -> dict[str, Any]:
    """Aggregate the per-fold files into results.json / results.md (mean ± sd over folds)."""
    out = Path(out_dir)
    metrics = ["bacc", "weighted_f1", "auc"] + (["tile_auroc", "slide_tile_auroc", "tile_dice"] if grounded else [])
    table: dict[str, Any] = {"metrics": metrics, "rows": []}
    for method in methods:
        for k in shots:
            files = sorted((out / "runs" / method / f"{k}shot").glob("fold*.json"))
            recs = [json.loads(p.read_text(encoding="utf-8")) for p in files]
            row: dict[str, Any] = {"method": method, "shots": k, "folds": len(recs)}
            for m in table["metrics"]:
                mean, sd = mean_sd([float(r.get(m, float("nan"))) for r in recs])
                row[m] = {"mean": mean, "sd": sd}
            table["rows"].append(row)
    _atomic_json(out / "results.json", table)
    lines = ["| method | shots | folds | " + " | ".join(METRIC_TITLES[m] for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for r in table["rows"]:
        cells = [f"{r[m]['mean']:.3f} ± {r[m]['sd']:.3f}" for m in table["metrics"]]
        lines.append(f"| {r['method']} | {r['shots']} | {r['folds']} | " + " | ".join(cells) + " |")
    atomic_bytes(out / "results.md", ("\n".join(lines) + "\n").encode("utf-8"))
    return table
