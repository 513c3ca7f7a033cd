"""Train the shipped demo vision-language model on synthetic tiles (KEEP folder format).

    python -m pathpt_engine.demo_model.train --out resources/models/demo

Seeded and CPU-only by default. Tiles are cut from realistic synthetic slides (`demo_model.world`; 224 px at 0.5 um/px, resized
to the model's image size by its own preprocessing); captions are class synonyms x the 22 PathPT templates, with
a fraction of wrong-class captions (label noise) and random filler words in front (so that class names also
appear at the positions the prompt learner uses). Loss: CLIP-style symmetric contrastive loss where captions of
the same class count as positives. From scratch, both towers collapse to one constant embedding within a few
steps (the loss sits at log(batch)); so the first `warmup_epochs` train each tower alone with a throw-away linear
head that predicts the caption's class (with the same caption noise), then the contrastive loss takes over. The
result is a DEMO model for synthetic slides only, never for diagnosis.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..atomic import write_text_atomic
from ..backbones.keep import KeepBackbone
from .data import (
    FILLER,
    build_vocab,
    cached_pool,
    captions_for,
    class_texts,
    evaluate_zero_shot,
    normalise,
)

log = logging.getLogger(__name__)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# Synthetic classes that are meant to be hard to tell apart (synth/subtypes.py).
HARD_PAIR_NAMES = (("solid_carcinoma", "nested_carcinoma"),)


@dataclass(frozen=True)
class DemoTrainConfig:
    """Hyper-parameters of the demo model and its training run."""

    seed: int = 0
    n_per_class: int = 400
    n_eval_per_class: int = 100
    img_size: int = 112
    patch_size: int = 16
    vision_width: int = 192
    vision_layers: int = 4
    vision_heads: int = 3
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 2
    max_positions: int = 64
    epochs: int = 6
    warmup_epochs: int = 1
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.05
    caption_noise: float = 0.2
    pair_noise: float = 0.35
    filler_prob: float = 0.3
    background_prob: float = 0.3
    threads: int = 1
    eval_slides_per_class: int = 3

    def __post_init__(self) -> None:
        if min(self.n_per_class, self.n_eval_per_class, self.epochs, self.batch_size, self.threads) <= 0:
            raise ValueError("DemoTrainConfig: counts, epochs, batch_size and threads must be positive")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError("DemoTrainConfig: need 0 <= warmup_epochs < epochs")
        if not 0.0 <= self.caption_noise < 1.0 or not 0.0 <= self.filler_prob <= 1.0:
            raise ValueError("DemoTrainConfig: caption_noise must be in [0, 1), filler_prob in [0, 1]")
        if not 0.0 <= self.background_prob <= 1.0:
            raise ValueError("DemoTrainConfig: background_prob must be in [0, 1]")
        if not 0.0 <= self.pair_noise <= 0.5:
            raise ValueError("DemoTrainConfig: pair_noise must be in [0, 0.5]")

    def model_config(self, vocab_size: int) -> dict:
        """config.json of the demo folder (KEEP schema + this project's optional fields)."""
        return {
            "model_type": "keep",
            "vision_config": {
                "model_type": "vit", "img_size": self.img_size, "patch_size": self.patch_size,
                "hidden_size": self.vision_width, "num_heads": self.vision_heads, "num_layers": self.vision_layers,
                "mlp_ratio": 4.0, "qkv_bias": True, "drop_rate": 0.0, "attn_drop_rate": 0.0, "init_values": 0.1,
                "num_classes": 0, "dynamic_img_size": True,
            },
            "text_config": {
                "model_type": "bert", "vocab_size": vocab_size, "hidden_size": self.text_width,
                "num_hidden_layers": self.text_layers, "num_attention_heads": self.text_heads,
                "intermediate_size": 4 * self.text_width, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                "attention_probs_dropout_prob": 0.1, "max_position_embeddings": self.max_positions,
                "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
            },
            "projection_dim": self.text_width,
            "preprocess": {"resize": self.img_size, "crop": self.img_size, "mean": list(MEAN), "std": list(STD),
                           "interpolation": "bicubic"},
            "tile_size": 224,
            "target_mpp": 0.5,
            "demo": True,
        }


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random rotation by multiples of 90 degrees and flips (tissue has no orientation), per batch."""
    k = int(torch.randint(0, 4, (1,), generator=g))
    x = torch.rot90(x, k, dims=(-2, -1))
    if bool(torch.randint(0, 2, (1,), generator=g)):
        x = x.flip(-1)
    return x


def _add_background(tiles: np.ndarray, prob: float, rng: np.random.Generator) -> np.ndarray:
    """Paint slide-like background (near-white, beyond a wavy tissue edge) over 10-45% of some tiles.

    Slide tiles at the tissue border contain background, which rendered patches never do; without this the
    model reads white areas as gland lumens.
    """
    out = tiles.copy()
    n, h, w, _ = tiles.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    for i in np.flatnonzero(rng.random(n) < prob):
        ang = rng.uniform(0, 2 * np.pi)
        d = (xx - 0.5) * np.cos(ang) + (yy - 0.5) * np.sin(ang)
        d = d + 0.03 * np.sin(2 * np.pi * (rng.uniform(1, 3) * (xx + yy) + rng.uniform()))
        cut = np.quantile(d, 1 - rng.uniform(0.1, 0.45))
        out[i][d > cut] = rng.integers(238, 252)
    return out


def _sample_captions(labels: np.ndarray, caps: list[list[str]], cfg: DemoTrainConfig,
                     rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """One caption per tile: hard-pair partner with probability pair_noise, then any wrong class with probability
    caption_noise; returns (texts, caption classes)."""
    n_cls = len(caps)
    cls = labels.copy()
    from ..synth import kind_index

    for a, b in ((kind_index(x), kind_index(y)) for x, y in HARD_PAIR_NAMES):  # captions of a hard pair name the partner class with probability pair_noise
        swap = np.isin(cls, (a, b)) & (rng.random(len(cls)) < cfg.pair_noise)
        cls[swap] = np.where(cls[swap] == a, b, a)
    flip = rng.random(len(cls)) < cfg.caption_noise
    cls[flip] = (cls[flip] + rng.integers(1, n_cls, flip.sum())) % n_cls
    texts = []
    for c in cls:
        t = caps[c][rng.integers(len(caps[c]))]
        if rng.random() < cfg.filler_prob:
            t = " ".join(rng.choice(FILLER, rng.integers(1, 36))) + " " + t
        texts.append(t)
    return texts, cls


def _multi_positive_loss(img: torch.Tensor, txt: torch.Tensor, cls_img: np.ndarray, cls_txt: np.ndarray,
                         scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with every same-class caption (resp. tile) as a positive."""
    logits = scale * img @ txt.T
    pos = torch.from_numpy(cls_img[:, None] == cls_txt[None, :]).float()
    l_i = -(pos / pos.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1)
    l_t = -(pos.T / pos.T.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1)
    ok_i, ok_t = pos.sum(1) > 0, pos.T.sum(1) > 0
    if not ok_i.any():  # no tile has a caption of its class in this batch: nothing to align
        return 0.0 * logits.sum()
    return 0.5 * (l_i[ok_i].mean() + l_t[ok_t].mean())


def _new_model(cfg: DemoTrainConfig, vocab: list[str]) -> KeepBackbone:
    """A fresh demo model with its tokenizer (built through the real vocab.txt loader)."""
    from ..backbones.keep import load_keep_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="pathpt-demo-"))
    try:
        _write_tokenizer(folder, vocab)
        tokenizer = load_keep_tokenizer(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    model = KeepBackbone(cfg.model_config(len(vocab)), Path("."), name="demo")
    model.tokenizer = tokenizer
    model.logit_scale.data.fill_(math.log(1 / 0.07))
    return model


def _step_loss(model: KeepBackbone, heads: torch.nn.ModuleList, tiles: np.ndarray, labels: np.ndarray,
               caps: list[list[str]], cfg: DemoTrainConfig, warmup: bool, rng: np.random.Generator,
               g: torch.Generator) -> torch.Tensor:
    """Loss of one batch: per-tower caption-class CE during warm-up, else the contrastive loss."""
    batch = _add_background(tiles, cfg.background_prob, rng)
    x = _augment(normalise(torch.from_numpy(batch), MEAN, STD), g)
    texts, cls_txt = _sample_captions(labels, caps, cfg, rng)
    tok = model.tokenize(texts, max_length=cfg.max_positions)
    img = model.encode_image(x)
    txt = F.normalize(model.text(**tok).pooler_output, dim=-1)
    if warmup:
        target = torch.from_numpy(cls_txt)
        return F.cross_entropy(10 * heads[0](img), target) + F.cross_entropy(10 * heads[1](txt), target)
    return _multi_positive_loss(img, txt, labels, cls_txt, model.logit_scale.exp().clamp(max=100))


def train(cfg: DemoTrainConfig, cache: Path | None = None) -> tuple[KeepBackbone, list[str], dict]:
    """Train the demo model; returns (model, vocab, training log)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    classes = class_texts()
    caps = [captions_for(c) for c in classes]
    vocab = build_vocab([t for c in caps for t in c])
    model = _new_model(cfg, vocab)
    t0 = time.monotonic()
    tiles, labels = cached_pool(cache, cfg.n_per_class, cfg.seed, cfg.img_size)
    t_render = time.monotonic() - t0
    pool_sha = hashlib.sha256(tiles.tobytes()).hexdigest()[:16]
    steps_per_epoch = len(labels) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    heads = torch.nn.ModuleList(torch.nn.Linear(model.embed_dim, len(classes)) for _ in range(2))
    opt = torch.optim.AdamW([*model.parameters(), *heads.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)
    warm = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / total))))
    g = torch.Generator().manual_seed(cfg.seed)
    history = []
    model.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(len(labels))
        losses = []
        for s in range(steps_per_epoch):
            idx = order[s * cfg.batch_size : (s + 1) * cfg.batch_size]
            loss = _step_loss(model, heads, tiles[idx], labels[idx], caps, cfg, epoch < cfg.warmup_epochs, rng, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "elapsed_s": time.monotonic() - t0})
        log.info("epoch %d loss %.4f (%.0f s)", epoch, history[-1]["loss"], history[-1]["elapsed_s"])
    model.freeze()
    return model, vocab, {"config": asdict(cfg), "history": history, "render_s": t_render, "pool_sha256": pool_sha,
                          "train_s": time.monotonic() - t0 - t_render}


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` via a temp file in the same folder and os.replace."""
    write_text_atomic(path, text)


def _write_tokenizer(folder: Path, vocab: list[str]) -> None:
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}) + "\n", encoding="utf-8")


def write_folder(model: KeepBackbone, vocab: list[str], config: dict, out: Path) -> None:
    """Write the KEEP-format folder atomically (a sibling temp folder renamed into place)."""
    from safetensors.torch import save_file

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    sd = {(k[: -len("gamma")] + "weight" if k.endswith(("ls1.gamma", "ls2.gamma")) else k): v for k, v in sd.items()}
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt", "pathpt": "demo"})
    (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    _write_tokenizer(tmp, vocab)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
    os.chmod(tmp, 0o755)
    old = out.with_name(f".{out.name}-old")
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)


def evaluate_folder(folder: Path, cfg: DemoTrainConfig, cache: Path | None = None,
                    slides: bool = True) -> dict:
    """Zero-shot results of the model saved in `folder`: held-out tiles (a seed the training never used) and,
    with `slides`, tiles of a small held-out synthetic cohort labelled by its tumour masks."""
    from ..backbones.keep import load_keep
    from ..synth import DEFAULT_SUBTYPES
    from .cohort_eval import evaluate_on_cohort

    model = load_keep(folder, name="demo")
    tiles, labels = cached_pool(cache, cfg.n_eval_per_class, cfg.seed + 1000, cfg.img_size)
    all_kinds = sorted(set(labels.tolist()))
    out: dict = {
        "all_classes": evaluate_zero_shot(model, tiles, labels, all_kinds),
        "default_cohort": evaluate_zero_shot(model, tiles, labels, list(range(DEFAULT_SUBTYPES + 1))),
        "eval_seed": cfg.seed + 1000,
    }
    if slides:
        with tempfile.TemporaryDirectory(prefix="pathpt-demo-eval-") as tmp:
            out["slides"] = evaluate_on_cohort(model, Path(tmp), seed=cfg.seed + 2000,
                                               slides_per_class=cfg.eval_slides_per_class, jobs=cfg.threads)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train the PathPT Studio demo model on synthetic tiles.")
    ap.add_argument("--out", type=Path, required=True, help="output folder (e.g. resources/models/demo)")
    ap.add_argument("--cache", type=Path, default=None, help="folder to memoise rendered tile pools")
    for f, v in asdict(DemoTrainConfig()).items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    ap.add_argument("--evaluate-only", action="store_true",
                    help="re-evaluate the model already in --out (keeps its training log) and rewrite the README")
    ap.add_argument("--no-slides", action="store_true", help="skip the synthetic-slide evaluation")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = DemoTrainConfig(**{f: getattr(args, f) for f in asdict(DemoTrainConfig())})
    torch.set_num_threads(cfg.threads)
    if args.evaluate_only:
        train_log = json.loads((args.out / "train_report.json").read_text(encoding="utf-8"))
        train_log.pop("zero_shot", None)
        cfg = DemoTrainConfig(**{**train_log["config"], "threads": cfg.threads,
                                 "eval_slides_per_class": cfg.eval_slides_per_class})
    else:
        model, vocab, train_log = train(cfg, args.cache)
        write_folder(model, vocab, cfg.model_config(len(vocab)), args.out)
    results = evaluate_folder(args.out, cfg, args.cache, slides=not args.no_slides)
    report = {**train_log, "zero_shot": results}
    from .readme import write_readme

    atomic_write_text(args.out / "train_report.json", json.dumps(report, indent=2) + "\n")
    write_readme(args.out, report)
    keys = [k for k in ("all_classes", "default_cohort", "slides") if k in results]
    log.info("zero-shot balanced accuracy: %s", json.dumps({k: results[k]["balanced_accuracy"] for k in keys}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
