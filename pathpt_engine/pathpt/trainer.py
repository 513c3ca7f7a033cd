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
    preds = [tile_vote(model.predict_probs(torch.as_tensor(s.features, device=dev)).cpu().numpy())[0]
             for s in slides]
    return balanced_accuracy(np.array([s.label for s in slides]), np.array(preds), n_subtypes)


def _prepare(backbone: Backbone, classset: ClassSet, train: list[SlideData], config: PathPTConfig,
             ensemble_seed: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
    embs = encode_class_prompts(backbone, classset)
    ens = select_prompt_ensemble(embs, [(s.features, s.label) for s in train], config.n_prompts_random,
                                 config.n_prompts_keep, seed=ensemble_seed)
    labels = [tile_labels(torch.as_tensor(s.features), ens.classifier, s.label) for s in train]
    return ens.classifier, labels


def train_pathpt(  # noqa: PLR0913
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
    """Train PathPT on labelled slides; writes a checkpoint to `out_dir` at the end (if given)."""
    if not train or any(not 0 <= s.label < classset.n_classes - 1 for s in train):
        raise ValueError("train_pathpt: need training slides with labels in 0..n_subtypes-1")
    dims = {s.features.shape[1] for s in train}
    if dims != {backbone.embed_dim}:
        raise ValueError(f"features are {sorted(dims)}-d but backbone {backbone.name} embeds to "
                         f"{backbone.embed_dim}-d (features from another backbone?)")
    dev = torch.device(config.device)
    torch.manual_seed(config.seed)
    yield Progress("prompts", 0, 1, message="encoding prompts, selecting the ensemble")
    classifier, labels = _prepare(backbone, classset, train, config, ensemble_seed)
    yield Progress("prompts", 1, 1)
    check_cancel(cancel)
    model = PathPTModel(backbone, classset.learnable_names(), config, train[0].features.shape[1]).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    loss_cfg = LossConfig(pseudo=config.pseudo_loss)
    amp_on, amp_dtype, use_scaler = amp_settings(config.amp, dev)
    feats = [torch.as_tensor(s.features, dtype=torch.float32, device=dev) for s in train]
    labels = [lab.to(dev) for lab in labels]
    use_val = config.recipe == "clean" and bool(val)
    if config.recipe == "clean" and not val:
        log.warning("clean recipe without held-out pool slides: keeping the last epoch")
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best = (-1.0, -1, None)  # (val bacc, epoch, state)
    total, step, stale = config.epochs * len(train), 0, 0
    for epoch in range(config.epochs):
        lr = config.lr * lr_factor(epoch, config.epochs)
        for group in opt.param_groups:
            group["lr"] = lr
        scaler = torch.amp.GradScaler(dev.type) if use_scaler else None
        model.train()
        sums = {"loss": 0.0, "labelled": 0.0, "candidate": 0.0, "pseudo": 0.0}
        correct = 0
        for i in torch.randperm(len(train), generator=gen).tolist():
            check_cancel(cancel)
            with _autocast(dev, amp_on, amp_dtype):
                cos = model.cosine(feats[i])
            logits = config.temperature * cos.float()
            probs = logits.softmax(dim=-1)
            out = pathpt_loss(probs if config.recipe == "paper" else logits, labels[i], epoch, loss_cfg)
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(out["loss"]).backward()
                scaler.step(opt)
                scaler.update()
            else:
                out["loss"].backward()
                opt.step()
            correct += int(tile_vote(probs.detach().cpu().numpy())[0] == train[i].label)
            terms = {k: float(out[k].detach()) for k in sums}
            for k, v in terms.items():
                sums[k] += v
            step += 1
            yield Progress("train", step, total, message=f"epoch {epoch + 1}/{config.epochs}",
                           metrics={**terms, "lr": lr})
        record = {"epoch": float(epoch), **{k: v / len(train) for k, v in sums.items()},
                  "train_acc": correct / len(train), "lr": lr}
        if use_val:
            record["val_bacc"] = validation_bacc(model, val, classset.n_classes - 1)
            if record["val_bacc"] > best[0]:
                best, stale = (record["val_bacc"], epoch, copy.deepcopy(model.state_dict())), 0
            else:
                stale += 1
        history.append(record)
        yield Progress("train", step, total, message=f"epoch {epoch + 1} done", metrics=record)
        if use_val and config.early_stop and stale >= config.early_stop:
            log.info("early stop after epoch %d (best %d)", epoch, best[1])
            break
    best_epoch = len(history) - 1
    if use_val and best[2] is not None:
        model.load_state_dict(best[2])
        best_epoch = best[1]
    model.eval()
    path = None
    if out_dir is not None:
        info = dict(meta or {}, backbone=backbone.describe(), classes=classset.to_dict(), config=config.to_dict(),
                    feature_dim=int(train[0].features.shape[1]), best_epoch=best_epoch, history=history,
                    train_slides=[s.slide_id for s in train], val_slides=[s.slide_id for s in (val or [])],
                    tile_size_level0=int(train[0].tile_size_level0))
        path = save_checkpoint(out_dir, model.state_dict(), info).parent
    return TrainResult(model, classifier, history, path, best_epoch)
