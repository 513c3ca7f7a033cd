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


@dataclass(frozen=True)
class SlidePrediction:
    """Slide-level subtype call.

    Attributes:
        slide_id: slide identifier.
        predicted: predicted class name (a subtype, never Normal for PathPT).
        probs: class name -> score (rows sum to 1 over the classes the method predicts).
        n_tiles: number of tiles scored.
    """

    slide_id: str
    predicted: str
    probs: dict[str, float]
    n_tiles: int
