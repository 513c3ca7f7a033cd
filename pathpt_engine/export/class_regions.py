"""QuPath GeoJSON of class regions: the tiles of each class merged into annotation polygons.

For every class that is the argmax of at least one tile (the Normal class too: a pathologist may want to correct
it), the union of its tile squares is traced into polygons with holes (`polygons.tile_union`: exact on the tile
grid, collinear vertices removed, so a straight run of tiles is one edge), then simplified (Douglas-Peucker,
`simplify` level-0 px; a polygon that would become invalid keeps its exact outline: `simplify.py`). One QuPath `annotation` per class, a
Polygon or MultiPolygon in level-0 pixels (y down), `classification` {name, color}, `measurements` with the tile
count and the area (of the polygons as written) in px² and, when the slide's pixel size is known, µm². The file reads back through the
annotation importer (`annotations.qupath.read_qupath`) as one region per class.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..colors import class_colors
from ..results import TileScores
from ._atomic import write_text_atomic
from .geojson import KIND_KEY, geometry
from .polygons import Polygon, ring_area, tile_union
from .simplify import simplify_polygons

REGION_KIND = "tile_class_region"
AREA_PX = "Area px^2"
AREA_UM = "Area µm^2"


def polygons_area(polygons: list[Polygon]) -> float:
    """Area (px²) of polygons `[outer, *holes]`: outer areas minus hole areas."""
    return float(sum(abs(ring_area(p[0])) - sum(abs(ring_area(h)) for h in p[1:]) for p in polygons))


def region_features(scores: TileScores, colors: Mapping[str, str] | None = None, normal_index: int | None = 0,
                    mpp: float | None = None, simplify: float = 0.0) -> list[dict[str, Any]]:
    """One QuPath annotation feature per argmax class present (see the module docstring)."""
    rgb = class_colors(scores.class_names, dict(colors or {}), normal_index)
    if len(scores.probs) == 0:
        return []
    k = np.argmax(scores.probs, axis=1)
    feats = []
    for c, name in enumerate(scores.class_names):
        sel = k == c
        if not sel.any():
            continue
        polygons = simplify_polygons(tile_union(scores.coords[sel], scores.tile_size_level0), simplify)
        area = polygons_area(polygons)
        meas: dict[str, float] = {"n_tiles": int(sel.sum()), AREA_PX: area}
        if mpp is not None:
            meas[AREA_UM] = area * mpp * mpp
        feats.append({
            "type": "Feature", "id": str(uuid.uuid4()), "geometry": geometry(polygons),
            "properties": {"objectType": "annotation", "name": f"{name} (PathPT tile class region)",
                           "classification": {"name": name, "color": list(rgb[name])},
                           "measurements": meas,
                           "metadata": {KIND_KEY: REGION_KIND, "pathpt.slide_id": scores.slide_id}},
        })
    return feats


def write_class_regions(path: str | os.PathLike[str], scores: TileScores, colors: Mapping[str, str] | None = None,
                        normal_index: int | None = 0, mpp: float | None = None, simplify: float = 0.0) -> Path:
    """Write the class-region FeatureCollection atomically (`simplify`: tolerance in level-0 px, 0 = exact)."""
    doc = {"type": "FeatureCollection", "features": region_features(scores, colors, normal_index, mpp, simplify)}
    return write_text_atomic(path, json.dumps(doc, ensure_ascii=False, allow_nan=False))
