"""Zero-shot evaluation of the demo model on held-out synthetic *slides* (tiles labelled by the tumour masks).

A small cohort at the realistic scale (`pathpt synth --size realistic`: tissue fragments, fat, stroma and normal
parenchyma with tumour regions of one subtype per slide, 0.5 um/px) is generated, tiled and encoded by the real
extraction job, and each tile is classified zero-shot among normal + the cohort's subtypes. A tile's ground truth is
the slide's subtype when more than half of it lies in the tumour mask, else normal. Reported: per-class recall and
balanced accuracy (subtype naming), the tumour-vs-normal tile AUROC of 1 - p(normal) (softmax at the model's logit
scale), and the slide call = the most frequent non-normal tile class (subtype columns only when no tile is
non-normal).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..backbones.base import Backbone
from .data import class_texts, zero_shot_classifier

log = logging.getLogger(__name__)


def tile_truth(mask: np.ndarray, ds: int, coords: np.ndarray, size0: int, kind: int) -> np.ndarray:
    """Per-tile ground truth from a tumour mask at downsample `ds`: `kind` if > 50% tumour, else 0."""
    out = np.zeros(len(coords), dtype=np.int64)
    for i, (x, y) in enumerate(coords):
        x0, y0 = int(x) // ds, int(y) // ds
        x1, y1 = max(x0 + 1, (int(x) + size0) // ds), max(y0 + 1, (int(y) + size0) // ds)
        patch = mask[y0:y1, x0:x1]
        if patch.size and patch.mean() > 0.5:
            out[i] = kind
    return out


def _confusion(y: np.ndarray, p: np.ndarray, kinds: list[int]) -> np.ndarray:
    pos = {k: i for i, k in enumerate(kinds)}
    cm = np.zeros((len(kinds), len(kinds)), dtype=int)
    for t, q in zip(y, p, strict=True):
        cm[pos[int(t)], pos[int(q)]] += 1
    return cm


@torch.no_grad()
def evaluate_on_cohort(model: Backbone, work_dir: Path, seed: int, n_subtypes: int = 3,
                       slides_per_class: int = 2, jobs: int = 1) -> dict[str, object]:
    """Generate a held-out cohort in `work_dir`, extract it with `model`, and score zero-shot tiles and slides."""
    from ..features.extract import ExtractOptions, extract_slides
    from ..features.store import read_features
    from ..jobs import run_job
    from ..metrics import binary_auc
    from ..synth import CohortSpec, make_cohort

    spec = CohortSpec(n_subtypes=n_subtypes, slides_per_class=slides_per_class, normal_slides=0, seed=seed,
                      mpp=0.5, scale="realistic")
    slides = run_job(make_cohort(work_dir / "cohort", spec, jobs=jobs))
    opts = ExtractOptions(backbone=model.name, device="cpu", batch_size=64, workers=1)
    summary = run_job(extract_slides([s.path for s in slides], work_dir / "features", opts, backbone=model))
    kinds = list(range(n_subtypes + 1))
    classes = [c for c in class_texts() if c.index in kinds]
    w = zero_shot_classifier(model, classes).numpy()
    logit_scale = getattr(model, "logit_scale", None)  # a parameter of the CLIP-style backbones
    scale = float(logit_scale.exp()) if isinstance(logit_scale, torch.Tensor) else 100.0
    ys, ps, tumour_p, sub_p, slide_ok = [], [], [], [], []
    for s, ext in zip(slides, summary.slides, strict=True):
        ff = read_features(ext.output)
        ds = _mask_downsample(s.tumour_mask)
        mask = np.asarray(Image.open(s.tumour_mask).convert("L")) > 127
        y = tile_truth(mask, ds, ff.coords, int(ff.coords_attrs["patch_size_level0"]), s.kind)
        logits = scale * (ff.features @ w.T)
        prob = np.exp(logits - logits.max(1, keepdims=True))
        tumour_p.append(1.0 - prob[:, 0] / prob.sum(1))
        p = logits.argmax(1)
        sub_p.append(logits[:, 1:].argmax(1) + 1)
        counts = np.bincount(p, minlength=len(kinds))[1:]
        if counts.sum() == 0:
            counts = np.bincount((ff.features @ w[1:].T).argmax(1), minlength=len(kinds) - 1)
        slide_ok.append(int(np.argmax(counts)) + 1 == s.kind)
        ys.append(y)
        ps.append(p)
    y, p = np.concatenate(ys), np.concatenate(ps)
    cm = _confusion(y, p, kinds)
    recall = {c.name: float(cm[i, i] / cm[i].sum()) for i, c in enumerate(classes) if cm[i].sum()}
    return {"classes": [c.name for c in classes], "recall": recall,
            "balanced_accuracy": float(np.mean(list(recall.values()))), "confusion": cm.tolist(),
            "subtype_naming_bacc": _naming_bacc(y, np.concatenate(sub_p), kinds[1:]),
            "tumour_auroc": binary_auc(y > 0, np.concatenate(tumour_p)),
            "n_tiles": int(len(y)), "n_slides": len(slides), "slide_accuracy": float(np.mean(slide_ok)),
            "cohort_seed": seed, "scale": "realistic", "mpp": 0.5,
            "tissue_tiles_median": float(np.median([len(c) for c in ys]))}


def _naming_bacc(y: np.ndarray, sub: np.ndarray, kinds: list[int]) -> float:
    """Balanced accuracy of the subtype named (argmax over subtype prompts only) on tumour tiles."""
    rec = [float((sub[y == k] == k).mean()) for k in kinds if (y == k).any()]
    return float(np.mean(rec)) if rec else float("nan")


def _mask_downsample(mask_path: Path) -> int:
    """The D of a `<id>_tumour_ds<D>.png` mask file."""
    stem = mask_path.stem
    return int(stem.rsplit("_ds", 1)[1])
