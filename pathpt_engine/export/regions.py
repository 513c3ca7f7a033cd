"""Use imported QuPath annotations as labels: which region class covers each tile (for few-shot training)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.path import Path as MplPath

from .geojson import Region


def _inside(polygon: Sequence[Sequence[Sequence[float]]], points: np.ndarray) -> np.ndarray:
    inside = MplPath(np.asarray(polygon[0], dtype=np.float64)).contains_points(points)
    for hole in polygon[1:]:
        inside &= ~MplPath(np.asarray(hole, dtype=np.float64)).contains_points(points)
    return inside


def tile_labels_from_regions(regions: Sequence[Region], coords: np.ndarray, tile_size: int) -> list[str | None]:
    """The class of the region containing each tile's centre (level-0 pixels), or None.

    Where regions overlap, the later region in `regions` wins (QuPath draws later objects on top).
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    centres = coords + tile_size / 2.0
    labels: list[str | None] = [None] * len(coords)
    for region in regions:
        hit = np.zeros(len(coords), dtype=bool)
        for polygon in region.polygons:
            hit |= _inside(polygon, centres)
        for i in np.flatnonzero(hit).tolist():
            labels[i] = region.classification
    return labels
