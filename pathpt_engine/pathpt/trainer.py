"""PathPT training as a job (method.md §4-§5).

Per fold: prompt-ensemble selection W* on the training slides -> tile labels -> Adam over ctx + spatial module,
one slide per step, lr schedule stepped per epoch (epoch 0 at lr 0). On CUDA `amp="auto"` trains under bf16
autocast where the GPU supports it, else fp16 with ONE GradScaler for the whole run (the reference re-creates it
every epoch, which resets the scale to 65,536 and silently skips the first steps of each epoch; we do not
reproduce that). Skipped steps are counted per epoch ("skipped_steps" in the history) and logged.

Host syncs: tile labels are split once per run (`LabelPlan`), the vote and loss terms stay on the device, and each
step reads its metrics with one transfer (plus the GradScaler's own found-inf check with a non-fused optimiser; on
CUDA Adam is fused and needs none). A non-finite loss stops training at once (`NonFiniteLossError`); so do
non-finite weights at the end: no checkpoint is written either way. An out-of-memory step is retried once with
activation checkpointing in the spatial module (same results, less memory), then fails with a clear message.

Events: stage "prompts" while encoding prompts; stage "train" once per step (metrics: loss terms, lr) and once
per epoch (metrics include "epoch", "train_acc", "skipped_steps", plus "val_bacc" for the clean recipe).
Cancellation is checked between steps; a cancelled run writes no checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones.base import Backbone
from ..errors import DeviceMemoryError, NonFiniteLossError
from ..jobs import Job, Progress, check_cancel
from ..metrics import balanced_accuracy
from ..ops.gpu import bytes_per_tile, cuda_numerics, free_bytes, is_oom, release_cached, tile_vote_tensor
from ..ops.vote import tile_vote
from ..prompts.classsets import ClassSet
from ..prompts.zeroshot import encode_class_prompts, select_prompt_ensemble
from .checkpoint import save_checkpoint
from .losses import LabelPlan, LossConfig, pathpt_loss
from .model import PathPTConfig, PathPTModel
from .pseudo import slide_tile_labels
from .schedule import lr_factor

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


_TERMS = ("loss", "labelled", "candidate", "pseudo")


def amp_settings(amp: str, device: torch.device) -> tuple[bool, torch.dtype, bool]:
    """(autocast on, dtype, GradScaler on) for a config amp mode and device.

    "auto": off on CPU; on CUDA bf16 (no scaler needed) where the GPU supports it, else fp16 with a GradScaler.
    """
    cuda = device.type == "cuda"
    if amp == "auto":
        if not cuda:
            return False, torch.float32, False
        return (True, torch.bfloat16, False) if torch.cuda.is_bf16_supported() else (True, torch.float16, True)
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
    labels = [slide_tile_labels(s, ens.classifier) for s in train]  # annotated tiles carry their class
    return ens.classifier, labels


class _Fitter:
    """The epoch/step loop (state shared between steps: optimiser, one GradScaler, schedule, best validation state)."""

    def __init__(self, model: PathPTModel, train: list[SlideData], labels: list[torch.Tensor],
                 config: PathPTConfig, val: list[SlideData] | None, n_subtypes: int) -> None:
        self.model, self.train, self.config, self.n_sub = model, train, config, n_subtypes
        self.dev = torch.device(config.device)
        params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.Adam(params, lr=config.lr, fused=True if self.dev.type == "cuda" else None)
        self.loss_cfg = LossConfig(pseudo=config.pseudo_loss)
        self.amp_on, self.amp_dtype, use_scaler = amp_settings(config.amp, self.dev)
        self.scaler = torch.amp.GradScaler(self.dev.type) if use_scaler else None  # one for the whole run
        self.feats = [torch.as_tensor(s.features, dtype=torch.float32, device=self.dev) for s in train]
        self.plans = [LabelPlan.build(lab.to(self.dev)) for lab in labels]  # tile labels never change
        self.targets = torch.tensor([s.label for s in train], device=self.dev)
        self._plan_memory()
        self.val = val if config.recipe == "clean" and val else None
        if config.recipe == "clean" and not val:
            log.warning("clean recipe without held-out pool slides: keeping the last epoch")
        self.gen = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, float]] = []
        self.best: tuple[float, int, dict | None] = (-1.0, -1, None)  # (val bacc, epoch, state)

    def _plan_memory(self) -> None:
        """Checkpoint the spatial module's activations from the start when the largest slide's estimated training
        memory does not fit in the device's free memory (CUDA; same results, recomputed in backward)."""
        free = free_bytes(self.dev)
        n_max = max(len(s.features) for s in self.train)
        need = n_max * bytes_per_tile(self.model.spatial.dim, training=True)
        if free is not None and need > 0.7 * free:
            log.warning("largest slide: %d tiles, about %.1f GiB to train against %.1f GiB free on %s: "
                        "checkpointing activations", n_max, need / 2**30, free / 2**30, self.dev)
            self.model.spatial.checkpoint_activations = True

    def step(self, i: int, epoch: int) -> tuple[dict[str, float], bool]:
        """One optimiser step on slide i: (loss terms, slide vote correct); out of memory retries once with
        activation checkpointing."""
        spatial = self.model.spatial
        while True:
            try:
                return self._step(i, epoch)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried, anything else re-raised
                if not is_oom(exc):
                    raise
                if spatial.checkpoint_activations:
                    raise DeviceMemoryError(f"out of memory on {self.dev} training on slide "
                                            f"{self.train[i].slide_id} ({len(self.train[i].features)} tiles) even "
                                            "with activation checkpointing (use --device cpu)") from None
            self.opt.zero_grad(set_to_none=True)
            release_cached(self.dev)  # outside the except block: the failed step's tensors are gone by now
            log.warning("out of memory on %s training on slide %s (%d tiles); retrying with activation "
                        "checkpointing", self.dev, self.train[i].slide_id, len(self.train[i].features))
            spatial.checkpoint_activations = True

    def _step(self, i: int, epoch: int) -> tuple[dict[str, float], bool]:
        with _autocast(self.dev, self.amp_on, self.amp_dtype):
            cos = self.model.cosine(self.feats[i])
        logits = self.config.temperature * cos.float()
        probs = logits.softmax(dim=-1)
        out = pathpt_loss(probs if self.config.recipe == "paper" else logits, self.plans[i], epoch, self.loss_cfg)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(out["loss"]).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            out["loss"].backward()
            self.opt.step()
        correct = tile_vote_tensor(probs.detach()) == self.targets[i]
        values = torch.stack([*(out[k].detach() for k in _TERMS), correct.float()]).tolist()  # the step's one read
        terms = dict(zip(_TERMS, values[:4], strict=True))
        if not math.isfinite(terms["loss"]):
            raise NonFiniteLossError(f"training stopped at epoch {epoch + 1}, slide {self.train[i].slide_id}: the "
                                     f"loss is {terms['loss']}; no run was saved (check the features for huge or "
                                     f"non-finite values and the learning rate, {self.config.lr})")
        return terms, values[4] > 0.5

    def adam_steps(self) -> int:
        """Optimiser steps taken so far (a GradScaler-skipped step does not count); read once per epoch."""
        state = self.opt.state.get(self.opt.param_groups[0]["params"][0], {})
        return int(state["step"]) if "step" in state else 0

    def fit(self, cancel: threading.Event | None) -> Job[int]:
        """Run all epochs; returns the selected epoch (its weights are loaded)."""
        cfg, n = self.config, len(self.train)
        done, stale = 0, 0
        for epoch in range(cfg.epochs):
            lr = cfg.lr * lr_factor(epoch, cfg.epochs)
            for group in self.opt.param_groups:
                group["lr"] = lr
            self.model.train()
            sums = dict.fromkeys(_TERMS, 0.0)
            correct, steps0 = 0, self.adam_steps()
            for i in torch.randperm(n, generator=self.gen).tolist():
                check_cancel(cancel)
                terms, ok = self.step(i, epoch)
                correct += ok
                sums = {k: sums[k] + terms[k] for k in sums}
                done += 1
                yield Progress("train", done, cfg.epochs * n, message=f"epoch {epoch + 1}/{cfg.epochs}",
                               metrics={**terms, "lr": lr})
            record = {"epoch": float(epoch), **{k: v / n for k, v in sums.items()}, "train_acc": correct / n,
                      "lr": lr, "skipped_steps": float(n - (self.adam_steps() - steps0))}
            if record["skipped_steps"]:
                log.warning("epoch %d: %d of %d optimiser steps skipped by the GradScaler (inf/nan gradients in "
                            "fp16)", epoch + 1, int(record["skipped_steps"]), n)
            stale = yield from self._end_epoch(epoch, record, stale, done)
            if self.val and cfg.early_stop and stale >= cfg.early_stop:
                log.info("early stop after epoch %d (best %d)", epoch, self.best[1])
                break
        if self.val and self.best[2] is not None:
            self.model.load_state_dict(self.best[2])
            return self.best[1]
        return len(self.history) - 1

    def _end_epoch(self, epoch: int, record: dict[str, float], stale: int, done: int) -> Job[int]:
        if self.val:
            record["val_bacc"] = validation_bacc(self.model, self.val, self.n_sub)
            if record["val_bacc"] > self.best[0]:  # ties keep the earlier epoch
                self.best, stale = (record["val_bacc"], epoch, copy.deepcopy(self.model.state_dict())), 0
            else:
                stale += 1
        self.history.append(record)
        cfg = self.config
        yield Progress("train", done, cfg.epochs * len(self.train), message=f"epoch {epoch + 1} done",
                       metrics=record)
        return stale


def check_finite_weights(model: PathPTModel) -> None:
    """Raise `NonFiniteLossError` if a learned tensor holds NaN or inf (one host read for all of them)."""
    bad = [name for name, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise NonFiniteLossError(f"training produced non-finite weights ({', '.join(bad[:3])}); no run was saved "
                                 "(check the learning rate and the features)")


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
        with cuda_numerics(fitter.dev, config.tf32, config.deterministic):
            best_epoch = yield from fitter.fit(cancel)
    finally:
        model.eval()  # also the backbone (train mode turned its dropout on)
        model.spatial.checkpoint_activations = False
    check_finite_weights(model)
    path = None
    if out_dir is not None:
        info = dict(meta or {}, backbone=backbone.describe(), classes=classset.to_dict(), config=config.to_dict(),
                    feature_dim=backbone.embed_dim, best_epoch=best_epoch, history=fitter.history,
                    train_slides=[s.slide_id for s in train], val_slides=[s.slide_id for s in (val or [])],
                    tile_size_level0=int(train[0].tile_size_level0),
                    tile_params=train[0].attrs.get("tile_params"))
        path = save_checkpoint(out_dir, model.state_dict(), info).parent
    return TrainResult(model, classifier, fitter.history, path, best_epoch)
