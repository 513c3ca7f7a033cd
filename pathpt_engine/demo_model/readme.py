"""The demo model's README, generated from its training report (so the numbers in it are the measured ones)."""

from __future__ import annotations

from pathlib import Path

from .train import atomic_write_text

_CMD = "python -m pathpt_engine.demo_model.train --out resources/models/demo"


def command(cfg: dict) -> str:
    """The exact training command for a config (every field spelled out, so later default changes do not matter)."""
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items())
    return f"{_CMD} {flags}"


def _table(res: dict) -> list[str]:
    lines = ["| class | recall (per-class accuracy) |", "|---|---|"]
    lines += [f"| {name} | {v:.3f} |" for name, v in res["recall"].items()]
    lines.append(f"| **balanced accuracy** | **{res['balanced_accuracy']:.3f}** |")
    names = res["classes"]
    lines += ["", "Confusion matrix (rows = true, columns = predicted): " + ", ".join(names), ""]
    lines += ["    " + " ".join(f"{v:4d}" for v in row) for row in res["confusion"]]
    return lines


def _slides_section(res: dict | None) -> list[str]:
    if not res:
        return []
    if "tumour_auroc" not in res:  # an older report
        return ["## Zero-shot on held-out synthetic slides", "", *_table(res), ""]
    return [
        "## Zero-shot on held-out synthetic slides (the premise, measured)",
        f"{res['n_slides']} slides of the realistic synthetic world (`pathpt synth --size realistic`, 0.5 um/px, "
        f"evaluation cohort seed {res['cohort_seed']}: never used for design, training or tests; tissue fragments, "
        "fat, stroma, normal parenchyma and tumour regions of one subtype per slide), tiled and encoded by "
        f"`pathpt extract`'s pipeline: {res['n_tiles']} tiles of 224 px (median "
        f"{res['tissue_tiles_median']:.0f} per slide). A tile's truth is the slide's subtype when more than half "
        "of it lies in the tumour mask, else normal.",
        "",
        f"- **Tumour vs normal, tile AUROC: {res['tumour_auroc']:.3f}** (score 1 - p(normal), zero-shot).",
        f"- **Subtype naming, balanced accuracy on tumour tiles: {res['subtype_naming_bacc']:.3f}** (argmax over "
        "the subtype prompts only; chance = 1/3). Imperfect by design: a general model names rare subtypes poorly.",
        f"- Slide call (most frequent non-normal tile class): accuracy {res['slide_accuracy']:.3f}.",
        "",
        "All classes, per tile (normal + subtypes):",
        "",
        *_table(res),
        "",
    ]


def readme_text(report: dict) -> str:
    """Markdown for resources/models/demo/README.md."""
    cfg = report["config"]
    zs = report["zero_shot"]
    hist = report["history"]
    lines = [
        "# PathPT Studio demo vision-language model",
        "",
        "**Demo model for synthetic slides only, never for diagnosis.** It was trained by this project on",
        "synthetic H&E-like tiles from `pathpt_engine.synth` and knows nothing about real tissue. It exists so that",
        "the app works end to end offline (extraction, zero-shot, few-shot prompt tuning) without downloading",
        "KEEP or another real model.",
        "",
        "## Format",
        "KEEP folder format (`config.json` with `model_type: keep`, `model.safetensors`, `vocab.txt`,",
        "`tokenizer_config.json`), loaded by the same native KEEP loader as real KEEP weights (registry name",
        "`demo`). Vision: ViT, image {img}px, patch {patch}, width {vw}, {vl} layers, LayerScale; text: BERT width"
        .format(img=cfg["img_size"], patch=cfg["patch_size"], vw=cfg["vision_width"], vl=cfg["vision_layers"]),
        f"{cfg['text_width']}, {cfg['text_layers']} layers, {cfg['max_positions']} positions, a small WordPiece "
        "vocabulary built from the captions, the templates and generic words;",
        f"joint embedding {cfg['text_width']}-d. Tiles: 224 px at 0.5 um/px, resized to {cfg['img_size']} px.",
        "",
        "## Training",
        f"Command (seeded, CPU, {cfg['threads']} thread(s)):",
        "",
        f"    {command(cfg)}",
        "",
        "The tiles are cut from realistic synthetic slides (`pathpt_engine.demo_model.world`); if the synthetic "
        "generator changes, a re-run trains on different pixels (the training pool's hash is in train_report.json "
        "as `pool_sha256`).",
        "",
        f"- {cfg['n_per_class']} tiles per class (6 synthetic classes: normal + 5 subtypes) cut from in-memory "
        "synthetic slides of the realistic world (pool seed {s}; labels from the exact ground truth); "
        "rotations/flips; slide-like background beyond a tissue edge painted over 10-45% of a tile with "
        "probability {b}.".format(s=cfg["seed"], b=cfg.get("background_prob", 0.0)),
        "- Captions: class synonyms x the 22 PathPT templates; solid and nested carcinoma captions swapped with "
        f"probability {cfg.get('pair_noise', 0.0)}, then a wrong-class caption with probability "
        f"{cfg['caption_noise']}; random filler words in front with probability {cfg['filler_prob']}.",
        f"- CLIP-style symmetric contrastive loss (same-class captions are positives), AdamW lr {cfg['lr']}, "
        f"weight decay {cfg['weight_decay']}, batch {cfg['batch_size']}, {cfg['epochs']} epochs, cosine schedule.",
        f"- The first {cfg['warmup_epochs']} epoch(s) train each tower with a throw-away linear head on the caption's "
        "class instead (from scratch, the contrastive loss alone collapses both towers to one embedding).",
        f"- Rendering took {report['render_s']:.0f} s (about 0 when a cached pool was reused), training {report['train_s']:.0f} s; final epoch loss "
        f"{hist[-1]['loss']:.3f}.",
        "",
        *_slides_section(zs.get("slides")),
        "## Zero-shot tile accuracy on held-out synthetic tiles",
        f"{zs['all_classes']['n_tiles'] // len(zs['all_classes']['classes'])} tiles per class cut from synthetic slides of pool seed "
        f"{zs['eval_seed']} (held out, never seen in training); classifier = mean of the synonym x template prompt "
        "embeddings per class.",
        "",
        "### All six classes",
        *_table(zs["all_classes"]),
        "",
        "### Default demo cohort (normal + 3 subtypes)",
        *_table(zs["default_cohort"]),
        "",
        "Hard pairs are meant to be confused (solid vs nested carcinoma by design), so few-shot tuning has",
        "something to improve.",
        "",
    ]
    return "\n".join(lines)


def write_readme(folder: Path, report: dict) -> None:
    """Write README.md into the demo folder atomically."""
    atomic_write_text(Path(folder) / "README.md", readme_text(report))
