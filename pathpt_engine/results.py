"""Plain result types handed from the engine to the GUI and exporters (level-0 coordinates, numpy arrays)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TileScores:
    """Per-tile class probabilities of one slide.

    Attributes:
        slide_id: slide identifier (file stem).
        coords: int64 [N, 2] level-0 top-left (x, y) of each tile.
        probs: float32 [N, C] class probabilities (rows sum to 1); column order = `class_names`.
        tile_size_level0: tile edge length in level-0 pixels.
        class_names: C class names; for PathPT, index 0 is the Normal class.
    """

    slide_id: str
    coords: np.ndarray
    probs: np.ndarray
    tile_size_level0: int
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.coords.ndim != 2 or self.coords.shape[1] != 2:
            raise ValueError(f"{self.slide_id}: coords must be [N, 2], got {self.coords.shape}")
        if self.probs.ndim != 2 or self.probs.shape[0] != self.coords.shape[0]:
            raise ValueError(f"{self.slide_id}: probs {self.probs.shape} do not match coords {self.coords.shape}")
        if self.probs.shape[1] != len(self.class_names):
            raise ValueError(f"{self.slide_id}: {self.probs.shape[1]} prob columns but {len(self.class_names)} classes")
        if self.tile_size_level0 <= 0:
            raise ValueError(f"{self.slide_id}: tile_size_level0 must be > 0")


# What a slide-level number is. The tile vote (PathPT, zero-shot) gives shares of tile votes, never probabilities.
TUMOUR_TILE_VOTES = "tumour_tile_votes"  # share of the tumour tiles (argmax a subtype) voting for each subtype
ALL_TILE_VOTES = "all_tile_votes"  # vote fallback: share of all tiles, by their argmax over the subtypes only
TILE_VOTES = "tile_votes"  # share of tile votes, which tiles voted not recorded (files from earlier versions)
PROBABILITY = "probability"  # a model's slide probability (MIL heads)
SCORE_KINDS = (TUMOUR_TILE_VOTES, ALL_TILE_VOTES, TILE_VOTES, PROBABILITY)


@dataclass(frozen=True)
class SlidePrediction:
    """Slide-level subtype call.

    Attributes:
        slide_id: slide identifier.
        predicted: predicted class name (a subtype, never Normal for PathPT).
        probs: class name -> slide score (sums to 1 over the classes the method predicts). What the score is
            says `score_kind`: for the tile vote, a share of tile votes, not a probability.
        n_tiles: number of tiles scored.
        score_kind: one of SCORE_KINDS.
        n_voters: how many tiles voted (tile-vote kinds; None when unknown).
    """

    slide_id: str
    predicted: str
    probs: dict[str, float]
    n_tiles: int
    score_kind: str = TILE_VOTES
    n_voters: int | None = None

    def __post_init__(self) -> None:
        if self.score_kind not in SCORE_KINDS:
            raise ValueError(f"{self.slide_id}: unknown slide score kind {self.score_kind!r} "
                             f"(known: {', '.join(SCORE_KINDS)})")

    @property
    def is_vote(self) -> bool:
        return self.score_kind != PROBABILITY


def score_heading(kind: str, n_voters: int | None = None) -> str:
    """What the slide numbers are, as a heading: "tile votes: share of the 120 tumour tiles"."""
    n = f" {n_voters:,}" if n_voters is not None else ""
    if kind == TUMOUR_TILE_VOTES:
        return f"tile votes: share of the{n} tumour tiles"
    if kind == ALL_TILE_VOTES:
        return f"tile votes: share of all{n} tiles (no tumour majority; each tile votes its likeliest subtype)"
    if kind == TILE_VOTES:
        return "tile votes: share of the voting tiles"
    return "slide probability"


def score_text(kind: str, value: float) -> str:
    """One slide number as what it is: "65% of tumour tiles", "65% of all tiles", "probability 0.65"."""
    if kind == TUMOUR_TILE_VOTES:
        return f"{value:.0%} of tumour tiles"
    if kind == ALL_TILE_VOTES:
        return f"{value:.0%} of all tiles"
    if kind == TILE_VOTES:
        return f"{value:.0%} of the voting tiles"
    return f"probability {value:.2f}"
