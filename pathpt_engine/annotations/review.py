"""Where to look next: tiles and regions worth a pathologist's check, most useful first.

Tiles are ranked by how unsure the model is (margin between its two most likely classes; 0 = a coin toss), with
a bonus when the model disagrees with zero-shot on the tile. Regions are listed when the model disagrees with the
region's class on most of the tiles it covers (these are the corrections the next training must learn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .coverage import COVER_THRESHOLD, tile_coverage
from .regions import IGNORE_CLASS, Region

DISAGREE_BONUS = 0.5


@dataclass(frozen=True)
class ReviewItem:
    """One place to look at: level-0 box (x, y, w, h), a score (higher = look first) and why."""

    kind: str  # "tile" or "region"
    x: float
    y: float
    w: float
    h: float
    score: float
    reason: str
    region_id: str = ""


def _margin(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def review_items(coords: np.ndarray, tile_size: int, probs: np.ndarray, class_names: Sequence[str],
                 zeroshot: np.ndarray | None = None, regions: Sequence[Region] = (), k: int = 20) -> list[ReviewItem]:
    """Up to `k` tiles plus every disagreeing region, best first (regions first: they contradict a person)."""
    coords = np.asarray(coords).reshape(-1, 2)
    probs = np.asarray(probs, dtype=np.float64)
    out = _regions(coords, tile_size, probs, class_names, regions)
    if not len(probs):
        return out
    unsure = 1.0 - _margin(probs)
    pred = probs.argmax(1)
    disagree = np.zeros(len(probs), dtype=bool)
    if zeroshot is not None and np.shape(zeroshot) == probs.shape:
        disagree = np.asarray(zeroshot).argmax(1) != pred
    score = unsure + DISAGREE_BONUS * disagree
    for i in np.argsort(-score, kind="stable")[:k]:
        a, b = np.argsort(-probs[i])[:2]
        why = f"{class_names[a]} {probs[i, a]:.2f} vs {class_names[b]} {probs[i, b]:.2f}"
        if disagree[i]:
            why += f"; zero-shot said {class_names[int(np.asarray(zeroshot)[i].argmax())]}"
        x, y = (float(v) for v in coords[i])
        out.append(ReviewItem("tile", x, y, float(tile_size), float(tile_size), float(score[i]), why))
    return out


def _regions(coords: np.ndarray, tile_size: int, probs: np.ndarray, class_names: Sequence[str],
             regions: Sequence[Region]) -> list[ReviewItem]:
    items = []
    for r in regions:
        if r.class_name == IGNORE_CLASS or r.class_name not in class_names or not len(probs):
            continue
        covered = tile_coverage(r.geometry, coords, tile_size) >= COVER_THRESHOLD
        if not covered.any():
            continue
        want = list(class_names).index(r.class_name)
        wrong = float((probs[covered].argmax(1) != want).mean())
        if wrong > 0.5:
            x0, y0, x1, y1 = r.geometry.bounds()
            items.append(ReviewItem("region", x0, y0, x1 - x0, y1 - y0, 1.0 + wrong,
                                    f"region {r.class_name}: model disagrees on {wrong:.0%} of its "
                                    f"{int(covered.sum())} tiles", r.region_id))
    return sorted(items, key=lambda it: -it.score)
