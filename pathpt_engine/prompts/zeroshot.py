"""Zero-shot classifiers from prompts (method.md §3.4, §4.1).

* `mean_classifier`: all prompts of a class (synonyms x templates) encoded, averaged, L2-normalised. No labels.
* `select_prompt_ensemble`: 200 random one-prompt-per-class classifiers, each scored by balanced accuracy on the
  labelled (k-shot training) slides with the tile-vote rule; the top 100 are averaged per class, L2-normalised.
  This is PathPT's W* ("manual prompting"): tuned on training labels, not pure zero-shot.
  The paper recipe draws and ranks exactly as the reference: classifier r is `random.seed(r)` then one
  `random.choice` per class in class order (the same draws for every fold), and the top 100 are
  `np.argsort(bacc)[::-1][:100]` (that order decides ties at rank 100). The clean recipe draws classifier r,
  class c with `np.random.default_rng([seed, r, c])` (seed = the fold) and breaks ties towards the lower r.
* `zeroshot_tile_probs`: softmax(10 · cos(tile, class)) per tile.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812

from ..backbones.base import Backbone
from ..metrics import balanced_accuracy
from ..ops.vote import tile_vote
from .classsets import ClassSet

log = logging.getLogger(__name__)

TEMPERATURE = 10.0
ENSEMBLE_RECIPES = ("paper", "clean")


_PROMPT_CACHE: dict[tuple, list[torch.Tensor]] = {}  # (backbone, weights hash, prompts) -> embeddings
_PROMPT_CACHE_SIZE = 4


@torch.no_grad()
def encode_class_prompts(backbone: Backbone, classset: ClassSet, batch_size: int = 64) -> list[torch.Tensor]:
    """L2-normalised embeddings of every prompt, one [P_c, D] float32 CPU tensor per class.

    Cached per process for backbones whose weights are identified by content (`weights_hash`): the frozen text
    tower gives the same embeddings for the same prompts, so a retrain after an annotation edit skips them.
    """
    if not getattr(backbone, "weights_hash", ""):
        return _encode_class_prompts(backbone, classset, batch_size)
    device = str(next(iter(backbone.parameters()), torch.empty(0)).device)
    key = (backbone.name, backbone.weights_hash, device, batch_size,
           tuple(tuple(classset.prompts(c)) for c in range(classset.n_classes)))
    hit = _PROMPT_CACHE.get(key)
    if hit is None:
        hit = _encode_class_prompts(backbone, classset, batch_size)
        while len(_PROMPT_CACHE) >= _PROMPT_CACHE_SIZE:
            _PROMPT_CACHE.pop(next(iter(_PROMPT_CACHE)))
        _PROMPT_CACHE[key] = hit
    return [t.clone() for t in hit]


@torch.no_grad()
def _encode_class_prompts(backbone: Backbone, classset: ClassSet, batch_size: int) -> list[torch.Tensor]:
    was_training = backbone.training
    backbone.eval()
    out = []
    try:
        for c in range(classset.n_classes):
            prompts = classset.prompts(c)
            chunks = [backbone.encode_text(prompts[i : i + batch_size]).float().cpu()
                      for i in range(0, len(prompts), batch_size)]
            out.append(F.normalize(torch.cat(chunks), dim=-1))
    finally:
        backbone.train(was_training)
    return out


def mean_classifier(class_embeddings: list[torch.Tensor]) -> torch.Tensor:
    """Average all prompt embeddings per class and L2-normalise: [C, D]."""
    return F.normalize(torch.stack([e.mean(dim=0) for e in class_embeddings]), dim=-1)


@dataclass(frozen=True)
class EnsembleResult:
    """The selected classifier W* and the selection record."""

    classifier: torch.Tensor  # [C, D]
    choices: np.ndarray  # [n_random, C] prompt index per class
    scores: np.ndarray  # [n_random] train BACC of each one-prompt classifier
    kept: np.ndarray  # indices of the kept classifiers


def _draw_choices(sizes: list[int], n_random: int, seed: int, recipe: str) -> np.ndarray:
    """[n_random, C] prompt index per class for each random classifier."""
    if recipe == "paper":
        # the reference: random.seed(r), then random.choice(class prompts) for each class in class order;
        # a private Random(r) draws the same indices without touching the global generator
        draws = []
        for r in range(n_random):
            rnd = random.Random(r)
            draws.append([rnd.choice(range(n)) for n in sizes])
        return np.array(draws, dtype=np.int64).reshape(n_random, len(sizes))
    return np.array([[np.random.default_rng([seed, r, c]).integers(n) for c, n in enumerate(sizes)]
                     for r in range(n_random)], dtype=np.int64).reshape(n_random, len(sizes))


def _rank(scores: np.ndarray, recipe: str) -> np.ndarray:
    """Classifier indices, best first: the reference's reversed argsort (paper) or stable, lower r first (clean)."""
    if recipe == "paper":
        return np.argsort(scores)[::-1]
    return np.argsort(-scores, kind="stable")


def select_prompt_ensemble(
    class_embeddings: list[torch.Tensor],
    slides: list[tuple[np.ndarray | torch.Tensor, int]],
    n_random: int = 200,
    n_keep: int = 100,
    seed: int = 0,
    recipe: str = "paper",
) -> EnsembleResult:
    """PathPT's prompt-ensemble selection (§4.1).

    Args:
        class_embeddings: per class [P_c, D] L2-normalised prompt embeddings (class 0 = Normal).
        slides: labelled slides (tile features [N, D], 0-based subtype label).
        n_random: number of random one-prompt classifiers.
        n_keep: how many of the best (by train BACC) are averaged.
        seed: the clean recipe's base seed (the fold index in the protocol); the paper recipe ignores it,
            as the reference draws the same classifiers for every fold.
        recipe: "paper" (the reference's draws and tie order) or "clean" (seeded draws, ties -> lower r).
    """
    if not slides:
        raise ValueError("select_prompt_ensemble: no labelled slides")
    if recipe not in ENSEMBLE_RECIPES:
        raise ValueError(f"select_prompt_ensemble: recipe must be one of {ENSEMBLE_RECIPES}, got {recipe!r}")
    n_classes = len(class_embeddings)
    offsets = np.cumsum([0] + [len(e) for e in class_embeddings])
    all_emb = torch.cat(class_embeddings).float()
    choices = _draw_choices([len(e) for e in class_embeddings], n_random, seed, recipe)
    columns = choices + offsets[:-1][None]
    preds = np.zeros((n_random, len(slides)), dtype=np.int64)
    labels = np.array([int(y) for _, y in slides])
    for s, (feats, _) in enumerate(slides):
        sims = (torch.as_tensor(feats, dtype=torch.float32) @ all_emb.T).numpy()  # [N, P_total]
        for r in range(n_random):
            preds[r, s] = tile_vote(sims[:, columns[r]])[0]
    scores = np.array([balanced_accuracy(labels, preds[r], n_classes - 1) for r in range(n_random)])
    kept = _rank(scores, recipe)[: min(n_keep, n_random)]
    per_class = [torch.stack([class_embeddings[c][choices[r, c]] for r in kept]).mean(0) for c in range(n_classes)]
    w = F.normalize(torch.stack(per_class), dim=-1)
    log.info("prompt ensemble (%s draws): kept %d/%d classifiers, train BACC best %.3f mean kept %.3f", recipe,
             len(kept), n_random, scores[kept[0]], scores[kept].mean())
    return EnsembleResult(w, choices, scores, kept)


def zeroshot_tile_probs(features: np.ndarray | torch.Tensor, classifier: torch.Tensor,
                        temperature: float = TEMPERATURE) -> np.ndarray:
    """softmax(temperature · cos) per tile: float32 [N, C] (features are L2-normalised first)."""
    f = F.normalize(torch.as_tensor(features, dtype=torch.float32), dim=-1)
    return (temperature * f @ classifier.float().T).softmax(dim=-1).numpy()
