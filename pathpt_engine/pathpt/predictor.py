"""Prediction with a trained PathPT run (method.md §5.3, §5.5): tile probabilities (the heat map) + tile vote."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..backbones.base import Backbone
from ..errors import ConfigError
from ..jobs import Job, Progress, check_cancel
from ..ops.vote import TUMOUR, vote_summary
from ..prompts.classsets import ClassSet, classset_from_dict
from ..results import ALL_TILE_VOTES, TUMOUR_TILE_VOTES, SlidePrediction, TileScores
from .checkpoint import load_checkpoint
from .model import PathPTConfig, PathPTModel
from .trainer import SlideData

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    """A rebuilt model with its class set and metadata."""

    model: PathPTModel
    classset: ClassSet
    meta: dict[str, Any]


def load_run(run_dir: str | Path, backbone: Backbone | None = None, weights: str | Path | None = None,
             device: str = "cpu") -> LoadedRun:
    """Rebuild a trained model from a run folder (loads the recorded backbone unless one is given)."""
    state, meta = load_checkpoint(run_dir)
    classset = classset_from_dict(meta.get("classes"), f"{run_dir}/checkpoint.json")
    info = meta.get("backbone") or {}
    if backbone is None:
        from ..backbones import load_backbone

        backbone = load_backbone(str(info.get("backbone", "")), weights, device).freeze()
    recorded = str(info.get("weights_hash", ""))
    if recorded and backbone.weights_hash and recorded != backbone.weights_hash:
        raise ConfigError(f"{run_dir}: trained with {info.get('backbone')} weights {recorded}, but the loaded "
                          f"weights are {backbone.weights_hash} (pass the same --weights)")
    cfg_dict = dict(meta.get("config") or {})
    cfg_dict["device"] = device
    try:
        config = PathPTConfig(**cfg_dict)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{run_dir}/checkpoint.json: bad config ({exc})") from None
    model = PathPTModel(backbone, classset.learnable_names(), config, int(meta["feature_dim"])).to(device)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{run_dir}: weights do not fit the recorded model ({exc})") from None
    model.eval()
    return LoadedRun(model, classset, meta)


def predict_slide(model: PathPTModel, classset: ClassSet, slide: SlideData) -> tuple[SlidePrediction, TileScores]:
    """Tile probabilities [N, C] (class 0 Normal) and the slide call by tile vote (shares of tile votes)."""
    return _result(classset, slide, predict_probs(model, slide.features))


def predict_probs(model: PathPTModel, features: np.ndarray) -> np.ndarray:
    """A trained model's tile probabilities float32 [N, C] (class 0 Normal) for one slide's features."""
    dev = next(model.parameters()).device
    probs = model.predict_probs(torch.as_tensor(features, dtype=torch.float32, device=dev))
    return probs.cpu().numpy().astype(np.float32)


def _result(classset: ClassSet, slide: SlideData, probs: np.ndarray) -> tuple[SlidePrediction, TileScores]:
    vote = vote_summary(probs if len(probs) else np.zeros((0, classset.n_classes), np.float32))
    names = classset.subtype_names
    kind = TUMOUR_TILE_VOTES if vote.basis == TUMOUR else ALL_TILE_VOTES
    pred = SlidePrediction(slide.slide_id, names[vote.subtype],
                           {n: float(v) for n, v in zip(names, vote.shares, strict=True)}, int(len(probs)),
                           score_kind=kind, n_voters=vote.n_voters)
    scores = TileScores(slide.slide_id, np.asarray(slide.coords, dtype=np.int64).reshape(-1, 2), probs,
                        int(slide.tile_size_level0), classset.class_names)
    return pred, scores


def scores_from_probs(classset: ClassSet, slide: SlideData, probs: np.ndarray) -> tuple[SlidePrediction, TileScores]:
    """Same packaging for tile probabilities computed elsewhere (e.g. zero-shot)."""
    return _result(classset, slide, np.asarray(probs, dtype=np.float32))


def predict_slides(model: PathPTModel, classset: ClassSet, slides: list[SlideData],
                   cancel: threading.Event | None = None) -> Job[list[tuple[SlidePrediction, TileScores]]]:
    """Predict every slide (a job: one progress event per slide)."""
    out = []
    for i, slide in enumerate(slides):
        check_cancel(cancel)
        out.append(predict_slide(model, classset, slide))
        yield Progress("predict", i + 1, len(slides), message=slide.slide_id)
    return out
