"""Predict jobs: tile probabilities from a trained model or zero-shot prompts, then the tile vote per slide.

A slide without tiles (no tissue, or every tile in an 'ignore' region) gets no call: it is logged ("no tissue
tiles (no call)") and listed in `Predictions.empty`, never given a confident answer from no tiles.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..backbones.base import Backbone
from ..jobs import Job, Progress, check_cancel
from ..pathpt.model import PathPTModel
from ..pathpt.predictor import predict_probs, scores_from_probs
from ..pathpt.trainer import SlideData
from ..prompts.classsets import ClassSet
from ..results import SlidePrediction, TileScores

log = logging.getLogger(__name__)

ProbsFn = Callable[[SlideData], np.ndarray]
"""Tile probabilities float32 [N, C] (column 0 Normal) for one slide."""

OnResult = Callable[[SlidePrediction, TileScores], None]


@dataclass
class Predictions:
    """What a predict job returns: (call, tile scores) per slide with tiles, in input order, and the ids of the
    slides that got no call because they have no tiles."""

    results: list[tuple[SlidePrediction, TileScores]] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)

    @property
    def calls(self) -> list[SlidePrediction]:
        return [p for p, _ in self.results]


def model_probs(model: PathPTModel) -> ProbsFn:
    """A trained model's tile probabilities (`pathpt.predictor.predict_probs`) as a `ProbsFn`."""
    return lambda slide: predict_probs(model, slide.features)


def predict(classset: ClassSet, slides: Sequence[SlideData], probs: ProbsFn, cancel: threading.Event | None = None,
            on_result: OnResult | None = None) -> Job[Predictions]:
    """Job: score every slide and call it by tile vote; one progress event per slide (message: its id, except
    for a slide without tiles). `on_result` sees each slide's result as soon as it exists (e.g. to store it)."""
    out = Predictions()
    for i, slide in enumerate(slides):
        check_cancel(cancel)
        if len(slide.features) == 0:  # nothing to call: never a confident answer from no tiles
            log.warning("%s: no tissue tiles (no call)", slide.slide_id)
            out.empty.append(slide.slide_id)
            yield Progress("predict", i + 1, len(slides))
            continue
        pred, scores = scores_from_probs(classset, slide, probs(slide))
        if on_result is not None:
            on_result(pred, scores)
        out.results.append((pred, scores))
        yield Progress("predict", i + 1, len(slides), message=slide.slide_id)
    return out


def zeroshot_classifier(backbone: Backbone, classset: ClassSet, labelled: Sequence[SlideData] = ()
                        ) -> Job[torch.Tensor]:
    """Job: the zero-shot classifier W* [C, D] on the CPU: the mean prompt embedding per class, or the prompt
    ensemble picked on `labelled` slides (those with tiles) when some are given (method.md §4.1)."""
    from ..prompts.zeroshot import encode_class_prompts, mean_classifier, select_prompt_ensemble

    yield Progress("prompts", 0, 1, message="encoding class prompts")
    embs = encode_class_prompts(backbone, classset)
    w = mean_classifier(embs)
    usable = [s for s in labelled if len(s.features)]
    if usable:
        w = select_prompt_ensemble(embs, [(s.features, s.label) for s in usable]).classifier
    yield Progress("prompts", 1, 1)
    return w.cpu()


def zeroshot(backbone: Backbone, classset: ClassSet, slides: Sequence[SlideData],
             labelled: Sequence[SlideData] = (), cancel: threading.Event | None = None,
             on_result: OnResult | None = None) -> Job[Predictions]:
    """Job: zero-shot tile probabilities and slide calls (see `zeroshot_classifier` and `predict`)."""
    from ..prompts.zeroshot import zeroshot_tile_probs

    check_cancel(cancel)
    w = yield from zeroshot_classifier(backbone, classset, labelled)
    return (yield from predict(classset, slides, lambda s: zeroshot_tile_probs(s.features, w), cancel, on_result))
