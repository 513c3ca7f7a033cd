"""QuPath GeoJSON (v0.4) export of tile scores and the slide prediction, and an importer that reads it back.

Export: a FeatureCollection with one `tile` object per tile (closed square Polygon in level-0 pixels,
`classification` = argmax class with its colour, `measurements` = class name -> probability) and one locked
whole-tissue `annotation` (the union of the tile squares, or a given tissue outline) carrying the slide prediction
in `measurements` and `metadata` (`pathpt.*` keys, so the tile columns and tile size round-trip exactly).
The slide numbers are named for what they are: `vote share: <class>` (share of the tiles that voted, with
`n_voters`; `pathpt.slide_score` says which tiles) or `probability: <class>`; the annotation's name reads e.g.
"slide: glandular (tile votes: 65% of tumour tiles)". Files from earlier versions (class-name measurements, no
`pathpt.slide_score`) read as kind `tile_votes`.

Import: v0.4 and the legacy v0.2/0.3 forms (`measurements` list of {name, value}, `classification.colorRGB`
packed int, `object_type`/`type` property keys, `"id": "PathAnnotationObject"`), a FeatureCollection, a bare list
of features or a single feature. Other classified annotations come back as labelled `Region`s.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations.qupath import object_type
from ..colors import class_colors, packed_to_rgb
from ..results import PROBABILITY, SCORE_KINDS, TILE_VOTES, SlidePrediction, TileScores, score_text
from ._atomic import ExportError, write_text_atomic
from .polygons import Polygon, tile_square, tile_union

log = logging.getLogger(__name__)

KIND_KEY = "pathpt.kind"
SLIDE_KIND = "slide_prediction"


@dataclass(frozen=True)
class Region:
    """A classified QuPath annotation: class name, colour, polygons `[outer, *holes]` in level-0 pixels."""

    classification: str
    color: tuple[int, int, int] | None
    polygons: list[Polygon]
    name: str = ""
    object_type: str = "annotation"


@dataclass
class GeoJsonImport:
    """What a GeoJSON file held: tile scores (None without tiles), the slide prediction, labelled regions."""

    scores: TileScores | None
    prediction: SlidePrediction | None
    regions: list[Region] = field(default_factory=list)


# ---- export ------------------------------------------------------------------------------------------------
def geometry(polygons: Sequence[Polygon]) -> dict[str, Any]:
    """GeoJSON geometry for polygons; a single part is written as a Polygon, never a one-part MultiPolygon."""
    if len(polygons) == 1:
        return {"type": "Polygon", "coordinates": polygons[0]}
    return {"type": "MultiPolygon", "coordinates": list(polygons)}


def _classification(name: str, rgb: tuple[int, int, int]) -> dict[str, Any]:
    return {"name": name, "color": list(rgb)}


def tile_features(scores: TileScores, colors: Mapping[str, tuple[int, int, int]]) -> list[dict[str, Any]]:
    """One QuPath `tile` feature per tile (argmax classification, per-class probability measurements)."""
    names = scores.class_names
    t = int(scores.tile_size_level0)
    argmax = np.argmax(scores.probs, axis=1) if len(scores.probs) else np.zeros(0, dtype=int)
    probs = scores.probs.astype(np.float32).tolist()
    feats = []
    for (x, y), row, k in zip(scores.coords.tolist(), probs, argmax.tolist(), strict=True):
        feats.append({
            "type": "Feature",
            "id": str(uuid.uuid4()),
            "geometry": {"type": "Polygon", "coordinates": [tile_square(int(x), int(y), t)]},
            "properties": {
                "objectType": "tile",
                "classification": _classification(names[k], colors[names[k]]),
                "measurements": dict(zip(names, row, strict=True)),
            },
        })
    return feats


def slide_feature(scores: TileScores, prediction: SlidePrediction | None,
                  colors: Mapping[str, tuple[int, int, int]],
                  tissue: Sequence[Polygon] | None = None) -> dict[str, Any] | None:
    """The whole-tissue annotation with the slide prediction; None when there are no tiles and no outline."""
    polygons = list(tissue) if tissue else tile_union(scores.coords, scores.tile_size_level0)
    if not polygons:
        return None
    meta = {KIND_KEY: SLIDE_KIND, "pathpt.slide_id": scores.slide_id,
            "pathpt.class_names": json.dumps(list(scores.class_names)),
            "pathpt.tile_size_level0": str(int(scores.tile_size_level0))}
    props: dict[str, Any] = {"objectType": "annotation", "name": f"{scores.slide_id}: PathPT", "isLocked": True,
                             "metadata": meta}
    if prediction is not None:
        top = float(prediction.probs.get(prediction.predicted, 0.0))
        what = "tile votes: " if prediction.is_vote else ""
        props["name"] = (f"{scores.slide_id}: {prediction.predicted} "
                         f"({what}{score_text(prediction.score_kind, top)})")
        rgb = colors.get(prediction.predicted, (128, 128, 128))
        props["classification"] = _classification(prediction.predicted, rgb)
        label = _score_label(prediction.score_kind)
        props["measurements"] = {**{f"{label}{k}": float(v) for k, v in prediction.probs.items()},
                                 "n_tiles": int(prediction.n_tiles)}
        if prediction.n_voters is not None:
            props["measurements"]["n_voters"] = int(prediction.n_voters)
        meta["pathpt.predicted"] = prediction.predicted
        meta["pathpt.slide_score"] = prediction.score_kind
    return {"type": "Feature", "id": str(uuid.uuid4()), "geometry": geometry(polygons), "properties": props}


def to_geojson(scores: TileScores, prediction: SlidePrediction | None = None,
               colors: Mapping[str, str] | None = None, normal_index: int | None = 0,
               tissue: Sequence[Polygon] | None = None, include_tiles: bool = True) -> dict[str, Any]:
    """A QuPath v0.4 FeatureCollection for one slide (see module docstring)."""
    rgb = class_colors(scores.class_names, colors, normal_index)
    feats = tile_features(scores, rgb) if include_tiles else []
    summary = slide_feature(scores, prediction, rgb, tissue)
    if summary is not None:
        feats.insert(0, summary)
    return {"type": "FeatureCollection", "features": feats}


def write_geojson(path: str | os.PathLike[str], scores: TileScores, prediction: SlidePrediction | None = None,
                  **kwargs: Any) -> Path:
    """Write `to_geojson(scores, prediction, **kwargs)` to `path` atomically (NaN/inf refused: not JSON)."""
    from .guards import require_finite

    require_finite(path, scores, prediction)
    text = json.dumps(to_geojson(scores, prediction, **kwargs), separators=(",", ":"), allow_nan=False)
    return write_text_atomic(path, text)


# ---- import ------------------------------------------------------------------------------------------------
def _features(doc: Any, path: Path) -> list[dict[str, Any]]:
    if isinstance(doc, list):
        feats = doc
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        feats = [doc]
    elif isinstance(doc, dict) and isinstance(doc.get("features"), list):
        feats = doc["features"]
    else:
        raise ExportError(f"{path}: not GeoJSON (expected a FeatureCollection, a feature list or a Feature)")
    if not all(isinstance(f, dict) for f in feats):
        raise ExportError(f"{path}: every feature must be a JSON object")
    return feats


def measurements(props: Mapping[str, Any]) -> dict[str, float]:
    """Measurements as name -> float, from a v0.4 object or a legacy list of {name, value}."""
    raw = props.get("measurements") or {}
    if isinstance(raw, list):
        raw = {m["name"]: m.get("value") for m in raw if isinstance(m, dict) and "name" in m}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def classification(props: Mapping[str, Any]) -> tuple[str | None, tuple[int, int, int] | None]:
    """(class name, colour) from `classification` ({name|names, color|colorRGB}); (None, None) if unclassified."""
    cls = props.get("classification")
    if not isinstance(cls, dict):
        return None, None
    name = cls.get("name")
    if name is None and isinstance(cls.get("names"), list):
        name = ": ".join(str(n) for n in cls["names"])
    color = None
    if isinstance(cls.get("color"), list) and len(cls["color"]) >= 3:
        color = tuple(int(c) for c in cls["color"][:3])
    elif isinstance(cls.get("colorRGB"), int):
        color = packed_to_rgb(cls["colorRGB"])
    return (str(name) if name is not None else None), color  # type: ignore[return-value]


def _polygons(geom: Any, path: Path) -> list[Polygon]:
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        return []
    parts: Any = [geom.get("coordinates")] if geom["type"] == "Polygon" else geom.get("coordinates")  # checked below
    out = []
    try:
        for part in parts:
            rings = [[[float(p[0]), float(p[1])] for p in ring] for ring in part]
            out.append([r if r[0] == r[-1] else [*r, r[0]] for r in rings if len(r) >= 3])
    except (TypeError, IndexError, ValueError) as exc:
        raise ExportError(f"{path}: malformed polygon coordinates ({exc})") from exc
    return [p for p in out if p]


def read_geojson(path: str | os.PathLike[str], with_tiles: bool = True) -> GeoJsonImport:
    """Read a QuPath GeoJSON file back into tile scores, the slide prediction and labelled regions.

    Tiles are the `tile` objects with measurements; when there are none, `detection` objects are used only if
    they all carry the same measurement names (so a file of cell detections does not read as tiles).
    With `with_tiles=False` only the prediction and the regions are read.

    Raises:
        ExportError: the file is missing, not JSON/GeoJSON, or tiles are inconsistent (sizes, classes).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ExportError(f"{path}: cannot read GeoJSON ({type(exc).__name__}: {exc})") from None
    try:
        return _read_doc(doc, path, with_tiles)
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:  # wrong JSON types inside a feature
        raise ExportError(f"{path}: malformed GeoJSON feature ({type(exc).__name__}: {exc})") from None


def _read_doc(doc: Any, path: Path, with_tiles: bool) -> GeoJsonImport:
    feats = _features(doc, path)
    summary = next((f for f in feats if ((f.get("properties") or {}).get("metadata") or {}).get(KIND_KEY)
                    == SLIDE_KIND), None)
    meta = (summary or {}).get("properties", {}).get("metadata", {}) if summary else {}
    scores = _tiles_to_scores(_tile_candidates(feats), meta, path) if with_tiles else None
    prediction = _prediction(summary, scores, path) if summary else None
    regions = []
    for f in feats:
        if f is summary or object_type(f) != "annotation":
            continue
        props = f.get("properties") or {}
        name, color = classification(props)
        polys = _polygons(f.get("geometry"), path)
        if name is not None and polys:
            regions.append(Region(name, color, polys, str(props.get("name") or ""), object_type(f)))
    return GeoJsonImport(scores, prediction, regions)


def _tile_candidates(feats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    tiles = [f for f in feats if object_type(f) == "tile" and measurements(f.get("properties") or {})]
    if tiles:
        return tiles
    dets = [f for f in feats if object_type(f) == "detection" and measurements(f.get("properties") or {})]
    keys = {tuple(sorted(measurements(f["properties"]))) for f in dets}
    if len(keys) > 1:
        log.info("detections carry different measurements; not reading them as tiles")
        return []
    return dets


def read_regions(path: str | os.PathLike[str]) -> list[Region]:
    """Only the classified annotations of a QuPath GeoJSON file (for labels), ignoring tiles/detections."""
    return read_geojson(path, with_tiles=False).regions


def _tiles_to_scores(tiles: list[dict[str, Any]], meta: Mapping[str, Any], path: Path) -> TileScores | None:
    if "pathpt.class_names" in meta:
        names = tuple(json.loads(meta["pathpt.class_names"]))
    elif tiles:
        names = tuple(measurements(tiles[0]["properties"]))
    else:
        return None
    slide_id = str(meta.get("pathpt.slide_id") or path.stem.removesuffix(".geojson"))
    coords, rows, sizes = [], [], set()
    for i, f in enumerate(tiles):
        polys = _polygons(f.get("geometry"), path)
        if len(polys) != 1:
            raise ExportError(f"{path}: tile feature {i} has no single polygon geometry")
        ring = polys[0][0]
        xs, ys = [q[0] for q in ring], [q[1] for q in ring]
        x0, y0 = min(xs), min(ys)
        sizes.add((round(max(xs) - x0), round(max(ys) - y0)))
        m = measurements(f["properties"])
        missing = [n for n in names if n not in m]
        if missing:
            raise ExportError(f"{path}: tile feature {i} lacks measurements {missing}")
        coords.append((round(x0), round(y0)))
        rows.append([m[n] for n in names])
    tile = int(meta["pathpt.tile_size_level0"]) if "pathpt.tile_size_level0" in meta else None
    if tile is not None:
        sizes.add((tile, tile))
    if len(sizes) != 1 or any(w != h for w, h in sizes):
        raise ExportError(f"{path}: tiles are not squares of one size ({sorted(sizes)[:3]})")
    tile = sizes.pop()[0]
    return TileScores(slide_id, np.asarray(coords, dtype=np.int64).reshape(-1, 2),
                      np.asarray(rows, dtype=np.float32).reshape(-1, len(names)), tile, names)


def _prediction(summary: Mapping[str, Any], scores: TileScores | None, path: Path) -> SlidePrediction | None:
    props = summary.get("properties") or {}
    meta = props.get("metadata") or {}
    predicted = meta.get("pathpt.predicted")
    if predicted is None:
        return None
    m = measurements(props)
    n_tiles = int(m.pop("n_tiles", len(scores.coords) if scores else 0))
    n_voters = int(m.pop("n_voters")) if "n_voters" in m else None
    slide_id = str(meta.get("pathpt.slide_id") or path.stem)
    kind = str(meta.get("pathpt.slide_score", TILE_VOTES))  # earlier versions: class-name keys, tile-vote shares
    if kind not in SCORE_KINDS:
        raise ExportError(f"{path}: unknown pathpt.slide_score {kind!r} (known: {', '.join(SCORE_KINDS)})")
    if "pathpt.slide_score" in meta:
        label = _score_label(kind)
        m = {k[len(label):]: v for k, v in m.items() if k.startswith(label)}
    return SlidePrediction(slide_id, str(predicted), m, n_tiles, score_kind=kind, n_voters=n_voters)


def _score_label(kind: str) -> str:
    """Measurement-name prefix of the slide numbers: "vote share: " or "probability: "."""
    return "probability: " if kind == PROBABILITY else "vote share: "
