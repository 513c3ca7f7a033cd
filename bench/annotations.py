"""Benchmark (issue 13 §4): what a pathologist's polygons add to slide labels.

A simulated pathologist draws k = 0, 1, 3 or 5 polygons on each training slide, from the ground-truth tumour
masks with boundary noise: polygon i is a patch of the slide's tumour (i even; labelled with the slide's subtype)
or of its normal tissue (i odd; labelled Normal), cut as the tiles inside a window around a random tile of that
kind, outlined, then every vertex jittered by `--noise` tiles (a few tiles' worth of boundary error by default),
re-drawn when the jitter makes the outline cross itself. k = 0 is slide labels only. PathPT (paper recipe) is
trained per (shots, fold, k) on the same slides and tested on held-out slides:

* bacc: slide balanced accuracy of the tile vote;
* tile_auroc: tumour vs normal tiles (score 1 - p(Normal); a tile is tumour when > 50% of it is in the mask);
* dice: subtype Dice, pooled over test tiles: tiles whose argmax is the slide's true subtype vs the tumour mask.

Worlds: `--world fake` (default): the fake feature cohort of `pathpt_engine.testing.cohorts` (tiles in a tiny
random KEEP-format backbone's space, exact tile masks); `--world DIR`: a cohort folder holding `features/` (h5
from `pathpt extract`), `labels.csv` and `masks/` (`pathpt synth`), with `--backbone/--weights` as extracted.

    python bench/annotations.py --out /tmp/annot [--shots 1 5] [--folds 3] [--k 0 1 3 5]

Writes `<out>/annotations.json` ({"rows": [{shots, polygons_per_slide, bacc, tile_auroc, dice, *_sd, n_folds}],
"folds": [...]}) and `<out>/annotations.png`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _polygon(rng, tiles, coords, tile, noise, window):  # noqa: ANN001, ANN202
    from pathpt_engine.annotations.geometry import Geometry, InvalidRegion, Part, validate
    from pathpt_engine.export.polygons import tile_union

    centre = coords[rng.choice(tiles)]
    near = tiles[np.abs(coords[tiles] - centre).max(axis=1) <= window * tile]
    outer = max(tile_union(coords[near], tile), key=lambda p: len(p[0]))[0]
    ring = np.asarray(outer[:-1], dtype=float)
    for _ in range(20):
        jit = ring + rng.normal(scale=noise * tile, size=ring.shape)
        try:
            return validate(Geometry((Part(jit),)))[0]
        except InvalidRegion:
            continue
    return validate(Geometry((Part(ring),)))[0]


def simulate_regions(slide, tumour, cs, k, rng, noise, window):  # noqa: ANN001, ANN201
    """k polygons on one training slide from its ground-truth tumour tiles."""
    from pathpt_engine.annotations.regions import Region

    out = []
    t = int(slide.tile_size_level0)
    for i in range(k):
        want_tumour = i % 2 == 0
        tiles = np.flatnonzero(tumour if want_tumour else ~tumour)
        if not len(tiles):
            continue
        geom = _polygon(rng, tiles, np.asarray(slide.coords), t, noise, window)
        name = cs.subtype_names[slide.label] if want_tumour else cs.class_names[0]
        out.append(Region(slide.slide_id, name, geom, "polygon"))
    return out


def _truth(slides, masks):  # noqa: ANN001, ANN202
    from PIL import Image

    from pathpt_engine.evaluate import find_mask
    from pathpt_engine.metrics import tiles_in_mask

    out = {}
    for s in slides:
        found = find_mask(masks, s.slide_id)
        if found is None:
            raise SystemExit(f"{masks}: no tumour mask for {s.slide_id}")
        mask = np.asarray(Image.open(found[0]).convert("L")) > 127
        out[s.slide_id] = tiles_in_mask(s.coords, s.tile_size_level0, mask, found[1])
    return out


def _score(model, cs, test, truth):  # noqa: ANN001, ANN202
    from pathpt_engine.metrics import balanced_accuracy, binary_auc, dice
    from pathpt_engine.pathpt.predictor import predict_slide

    preds, pos, tum, sub_pred = [], [], [], []
    for s in test:
        pred, scores = predict_slide(model, cs, s)
        preds.append(cs.subtype_names.index(pred.predicted))
        pos.append(truth[s.slide_id])
        tum.append(1.0 - scores.probs[:, 0])
        sub_pred.append(scores.probs.argmax(1) == s.label + 1)
    y = np.array([s.label for s in test])
    return {"bacc": balanced_accuracy(y, np.array(preds), cs.n_classes - 1),
            "tile_auroc": binary_auc(np.concatenate(pos), np.concatenate(tum)),
            "dice": dice(np.concatenate(sub_pred), np.concatenate(pos))}


def _world(args, work):  # noqa: ANN001, ANN202
    from pathpt_engine.pathpt.data import load_labelled, read_labels_csv
    from pathpt_engine.prompts.classsets import load_classset

    cs = load_classset("synthetic")
    if args.world == "fake":
        from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

        bb = tiny_backbone(work / "keep", width=64)
        feats, labels = make_fake_cohort(work / "cohort", bb, cs, per_class=args.per_class, n_tiles=args.tiles,
                                         tumour_fraction=0.4, mix=args.mix, noise=args.feature_noise,
                                         seed=args.seed, masks=True)
        masks = work / "cohort" / "masks"
    else:
        from pathpt_engine.backbones import load_backbone

        root = Path(args.world)
        bb = load_backbone(args.backbone, args.weights, "cpu").freeze()
        feats, labels, masks = args.features or root / "features", root / "labels.csv", root / "masks"
        cs = load_classset(args.classes)
    slides = load_labelled(feats, read_labels_csv(labels, cs))
    return bb, cs, slides, masks


def _split(slides, n_sub, shots, fold, test_per_class):  # noqa: ANN001, ANN202
    rng = np.random.default_rng(1000 + fold)
    train, test = [], []
    for c in range(n_sub):
        ids = [s for s in slides if s.label == c]
        test += ids[:test_per_class]
        pool = ids[test_per_class:]
        train += [pool[i] for i in rng.choice(len(pool), size=shots, replace=False)]
    return train, test


def run(args: argparse.Namespace) -> dict:
    from pathpt_engine.annotations.apply import annotate_slide
    from pathpt_engine.jobs import run_job
    from pathpt_engine.pathpt.model import PathPTConfig
    from pathpt_engine.pathpt.trainer import train_pathpt

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    bb, cs, slides, masks = _world(args, work)
    truth = _truth(slides, masks)
    cfg = PathPTConfig(recipe="paper", epochs=args.epochs, n_prompts_random=args.prompts,
                       n_prompts_keep=max(1, args.prompts // 2))
    folds = []
    for shots in args.shots:
        for fold in range(args.folds):
            train, test = _split(slides, cs.n_classes - 1, shots, fold, args.test_per_class)
            for k in args.k:
                rng = np.random.default_rng(args.seed * 7919 + fold * 101 + shots)
                marked = [annotate_slide(s, cs, simulate_regions(s, truth[s.slide_id], cs, k, rng, args.noise,
                                                                 args.window)) for s in train]
                t0 = time.perf_counter()
                model = run_job(train_pathpt(bb, cs, marked, cfg, ensemble_seed=fold)).model
                rec = {"shots": shots, "fold": fold, "polygons_per_slide": k, **_score(model, cs, test, truth),
                       "train_s": round(time.perf_counter() - t0, 2)}
                folds.append(rec)
                print(json.dumps(rec), file=sys.stderr, flush=True)
    return {"world": args.world, "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                            if k != "out"},
            "rows": _rows(folds), "folds": folds}


def _rows(folds: list[dict]) -> list[dict]:
    rows = []
    for shots in sorted({f["shots"] for f in folds}):
        for k in sorted({f["polygons_per_slide"] for f in folds}):
            sel = [f for f in folds if f["shots"] == shots and f["polygons_per_slide"] == k]
            row = {"shots": shots, "polygons_per_slide": k, "n_folds": len(sel)}
            for m in ("bacc", "tile_auroc", "dice"):
                v = np.array([f[m] for f in sel], dtype=float)
                row[m], row[f"{m}_sd"] = round(float(v.mean()), 4), round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)
            rows.append(row)
    return rows


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    for ax, (m, title) in zip(axes, (("dice", "subtype Dice"), ("tile_auroc", "tile AUROC"), ("bacc", "slide BACC")),
                              strict=True):
        for shots in sorted({r["shots"] for r in result["rows"]}):
            rows = [r for r in result["rows"] if r["shots"] == shots]
            ks = [r["polygons_per_slide"] for r in rows]
            ax.errorbar(ks, [r[m] for r in rows], yerr=[r[f"{m}_sd"] for r in rows], marker="o", capsize=3,
                        label=f"{shots}-shot")
        ax.set_xlabel("polygons per training slide (0 = slide labels only)")
        ax.set_title(title)
        ax.set_xticks(sorted({r["polygons_per_slide"] for r in result["rows"]}))
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(f"PathPT with simulated annotations ({result['world']} world, mean ± sd over folds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--world", default="fake", help="'fake' or a cohort folder (features/, labels.csv, masks/)")
    p.add_argument("--features", type=Path, default=None, help="cohort world: h5 folder (default DIR/features)")
    p.add_argument("--backbone", default="demo")
    p.add_argument("--weights", default=None)
    p.add_argument("--classes", default="synthetic")
    p.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--k", type=int, nargs="+", default=[0, 1, 3, 5])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--prompts", type=int, default=40, help="random prompt classifiers drawn (keep half)")
    p.add_argument("--noise", type=float, default=0.5, help="vertex jitter, in tiles (sd)")
    p.add_argument("--window", type=int, default=2, help="polygon window half-size, in tiles")
    p.add_argument("--per-class", type=int, default=10, help="fake world: slides per subtype")
    p.add_argument("--test-per-class", type=int, default=4)
    p.add_argument("--tiles", type=int, default=144, help="fake world: tiles per slide")
    p.add_argument("--mix", type=float, default=2.0, help="fake world: class directions' distance from prompts")
    p.add_argument("--feature-noise", type=float, default=1.0, help="fake world: tile feature noise")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    result = run(args)
    out = Path(args.out)
    (out / "annotations.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    figure(result, out / "annotations.png")
    print(json.dumps(result["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
