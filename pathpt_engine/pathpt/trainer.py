"""PathPT training as a job (method.md §4-§5).

Per fold: prompt-ensemble selection W* on the training slides -> tile labels -> Adam over ctx + spatial module,
one slide per step, lr schedule stepped per epoch (epoch 0 at lr 0), fp16 autocast + GradScaler (re-created per
epoch) on CUDA. Events: stage "prompts" while encoding prompts; stage "train" once per step (metrics: loss
terms, lr) and once per epoch (metrics include "epoch" and "train_acc", plus "val_bacc" for the clean recipe).
Cancellation is checked between steps; a cancelled run writes no checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones.base import Backbone
from ..jobs import Job, Progress, check_cancel
from ..metrics import balanced_accuracy
from ..prompts.classsets import ClassSet
from ..prompts.zeroshot import encode_class_prompts, select_prompt_ensemble
from .checkpoint import save_checkpoint
from .losses import LossConfig, pathpt_loss
from .model import PathPTConfig, PathPTModel
from .pseudo import tile_labels
from .schedule import lr_factor
from .vote import tile_vote

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlideData:
    """One slide's tiles (raster order) and, for training, its 0-based subtype label (-1 if unknown)."""

    slide_id: str
    features: np.ndarray
    coords: np.ndarray
    label: int = -1
    tile_size_level0: int = 224
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    """The trained model, the zero-shot classifier W*, per-epoch history and the checkpoint folder."""

    model: PathPTModel
    classifier: torch.Tensor
    history: list[dict[str, float]]
    checkpoint: Path | None
    best_epoch: int


def amp_settings(amp: str, device: torch.device) -> tuple[bool, torch.dtype, bool]:
    """(autocast on, dtype, GradScaler on) for a config amp mode and device."""
    cuda = device.type == "cuda"
    if amp == "auto":
        return (True, torch.float16, True) if cuda else (False, torch.float32, False)
    if amp == "fp16":
        if not cuda:
            raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' or 'off' on CPU")
        return True, torch.float16, True
    if amp == "bf16":
        return True, torch.bfloat16, False
    return False, torch.float32, False


def _autocast(device: torch.device, on: bool, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if on else contextlib.nullcontext()


def validation_bacc(model: PathPTModel, slides: list[SlideData], n_subtypes: int) -> float:
    """Slide BACC of the vote rule on eval-mode predictions."""
    dev = next(model.parameters()).device
    model.eval()
    with torch.no_grad():
        text = model.text_features()
    preds = [tile_vote(model.predict_probs(torch.as_tensor(s.features, device=dev), text=text).cpu().numpy())[0]
             for s in slides]
    return balanced_accuracy(np.array([s.label for s in slides]), np.array(preds), n_subtypes)


def _prepare(backbone: Backbone, classset: ClassSet, train: list[SlideData], config: PathPTConfig,
             ensemble_seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    embs = encode_class_prompts(backbone, classset)
    ens = select_prompt_ensemble(embs, [(s.features, s.label) for s in train], config.n_prompts_random,
                                 config.n_prompts_keep, seed=ensemble_seed, recipe=config.recipe)
    labels = [tile_labels(torch.as_tensor(s.features), ens.classifier, s.label) for s in train]
    return ens.classifier, labels


class _Fitter:
    """The epoch/step loop (state shared between steps: optimiser, AMP, schedule, best validation state)."""

    def __init__(self, model: PathPTModel, train: list[SlideData], labels: list[torch.Tensor],
                 config: PathPTConfig, val: list[SlideData] | None, n_subtypes: int) -> None:
        self.model, self.train, self.config, self.n_sub = model, train, config, n_subtypes
        self.dev = torch.device(config.device)
        self.opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.lr)
        self.loss_cfg = LossConfig(pseudo=config.pseudo_loss)
        self.amp_on, self.amp_dtype, self.use_scaler = amp_settings(config.amp, self.dev)
        self.feats = [torch.as_tensor(s.features, dtype=torch.float32, device=self.dev) for s in train]
        self.labels = [lab.to(self.dev) for lab in labels]
        self.val = val if config.recipe == "clean" and val else None
        if config.recipe == "clean" and not val:
            log.warning("clean recipe without held-out pool slides: keeping the last epoch")
        self.gen = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, int, dict | None] = (-1.0, -1, None)  # (val bacc, epoch, state)

    def step(self, i: int, epoch: int, scaler: torch.amp.GradScaler | None) -> tuple[dict[str, float], bool]:
        """One optimiser step on slide i: (loss terms, slide vote correct)."""
        with _autocast(self.dev, self.amp_on, self.amp_dtype):
            cos = self.model.cosine(self.feats[i])
        logits = self.config.temperature * cos.float()
        probs = logits.softmax(dim=-1)
        out = pathpt_loss(probs if self.config.recipe == "paper" else logits, self.labels[i], epoch, self.loss_cfg)
        self.opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(out["loss"]).backward()
            scaler.step(self.opt)
            scaler.update()
        else:
            out["loss"].backward()
            self.opt.step()
        correct = tile_vote(probs.detach().cpu().numpy())[0] == self.train[i].label
        return {k: float(out[k].detach()) for k in ("loss", "labelled", "candidate", "pseudo")}, bool(correct)

    def fit(self, cancel: threading.Event | None) -> Job[int]:
        """Run all epochs; returns the selected epoch (its weights are loaded)."""
        cfg, n = self.config, len(self.train)
        done, stale = 0, 0
        for epoch in range(cfg.epochs):
            lr = cfg.lr * lr_factor(epoch, cfg.epochs)
            for group in self.opt.param_groups:
                group["lr"] = lr
            scaler = torch.amp.GradScaler(self.dev.type) if self.use_scaler else None  # re-created per epoch
            self.model.train()
            sums = dict.fromkeys(("loss", "labelled", "candidate", "pseudo"), 0.0)
            correct = 0
            for i in torch.randperm(n, generator=self.gen).tolist():
                check_cancel(cancel)
                terms, ok = self.step(i, epoch, scaler)
                correct += ok
                sums = {k: sums[k] + terms[k] for k in sums}
                done += 1
                yield Progress("train", done, cfg.epochs * n, message=f"epoch {epoch + 1}/{cfg.epochs}",
                               metrics={**terms, "lr": lr})
            record = {"epoch": float(epoch), **{k: v / n for k, v in sums.items()}, "train_acc": correct / n,
                      "lr": lr}
            if self.val:
                record["val_bacc"] = validation_bacc(self.model, self.val, self.n_sub)
                if record["val_bacc"] > self.best[0]:  # ties keep the earlier epoch
                    self.best, stale = (record["val_bacc"], epoch, copy.deepcopy(self.model.state_dict())), 0
                else:
                    stale += 1
            self.history.append(record)
            yield Progress("train", done, cfg.epochs * n, message=f"epoch {epoch + 1} done", metrics=record)
            if self.val and cfg.early_stop and stale >= cfg.early_stop:
                log.info("early stop after epoch %d (best %d)", epoch, self.best[1])
                break
        if self.val and self.best[2] is not None:
            self.model.load_state_dict(self.best[2])
            return self.best[1]
        return len(self.history) - 1


def train_pathpt(
    backbone: Backbone,
    classset: ClassSet,
    train: list[SlideData],
    config: PathPTConfig = PathPTConfig(),
    out_dir: str | Path | None = None,
    val: list[SlideData] | None = None,
    ensemble_seed: int = 0,
    cancel: threading.Event | None = None,
    meta: dict[str, Any] | None = None,
) -> Job[TrainResult]:
    """Train PathPT on labelled slides; writes a checkpoint to `out_dir` at the end (if given).

    A cancelled or failed run writes nothing and leaves the backbone in eval mode.
    """
    if not train or any(not 0 <= s.label < classset.n_classes - 1 for s in train):
        raise ValueError("train_pathpt: need training slides with labels in 0..n_subtypes-1")
    dims = {s.features.shape[1] for s in train}
    if dims != {backbone.embed_dim}:
        raise ValueError(f"features are {sorted(dims)}-d but backbone {backbone.name} embeds to "
                         f"{backbone.embed_dim}-d (features from another backbone?)")
    torch.manual_seed(config.seed)
    yield Progress("prompts", 0, 1, message="encoding prompts, selecting the ensemble")
    classifier, labels = _prepare(backbone, classset, train, config, ensemble_seed)
    yield Progress("prompts", 1, 1)
    check_cancel(cancel)
    model = PathPTModel(backbone, classset.learnable_names(), config, backbone.embed_dim).to(config.device)
    fitter = _Fitter(model, train, labels, config, val, classset.n_classes - 1)
    try:
        best_epoch = yield from fitter.fit(cancel)
    finally:
        model.eval()  # also the backbone (train mode turned its dropout on)
    path = None
    if out_dir is not None:
        info = dict(meta or {}, backbone=backbone.describe(), classes=classset.to_dict(), config=config.to_dict(),
                    feature_dim=backbone.embed_dim, best_epoch=best_epoch, history=fitter.history,
                    train_slides=[s.slide_id for s in train], val_slides=[s.slide_id for s in (val or [])],
                    tile_size_level0=int(train[0].tile_size_level0),
                    tile_params=train[0].attrs.get("tile_params"))
        path = save_checkpoint(out_dir, model.state_dict(), info).parent
    return TrainResult(model, classifier, fitter.history, path, best_epoch)
