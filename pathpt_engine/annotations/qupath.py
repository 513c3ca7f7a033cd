"""QuPath annotation GeoJSON (0.4/0.5 "Export objects as GeoJSON"), both ways.

Import accepts a FeatureCollection, a list of features (nested lists too), one Feature, `.gz` files, and
`childObjects`. Only `annotation` objects (`objectType`, or the legacy `object_type`/`type`; a missing type means
annotation, as in QuPath) with a Polygon or MultiPolygon geometry become regions; the first ring of a polygon is
its outline and the rest are holes. Detections, tiles, cells, points, lines and unclassified annotations are
counted and skipped. Every region is validated (see `geometry.validate`): one that cannot be stored refuses the
whole file with a message naming the feature, so an import is all or nothing. Coordinates are taken as they are
(level-0 pixels, y down): nothing is snapped or shifted.

Export writes a FeatureCollection of annotation features: `id` = the region's UUID, closed rings in the stored
vertex order, `classification` {name, color}, and the drawing tool in `metadata` (`pathpt.kind`). A region of
one part is a Polygon (never a one-part MultiPolygon). `ignore` is written as QuPath's built-in `Ignore*` class.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..prompts.classsets import ClassSet
from .geometry import Geometry, InvalidRegion, Part, _ring, validate
from .regions import IGNORE_CLASS, Region, class_color, resolve_classes

QUPATH_IGNORE = "Ignore*"
KIND_KEY = "pathpt.kind"


@dataclass
class ImportReport:
    """What a GeoJSON file gave: regions (classes already mapped), skipped objects by reason, repairs."""

    regions: list[Region]
    skipped: dict[str, int] = field(default_factory=dict)
    repairs: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(self.regions)} region(s)"]
        parts += [f"skipped {n} {why}" for why, n in sorted(self.skipped.items())]
        if self.repairs:
            parts.append(f"{len(self.repairs)} repair(s): {'; '.join(self.repairs[:3])}")
        return ", ".join(parts)


def _load(path: Path) -> Any:
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return json.loads(raw.decode("utf-8"))
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read GeoJSON ({' '.join(str(exc).split())})") from None


def _walk(doc: Any, path: Path) -> Iterator[dict[str, Any]]:
    if isinstance(doc, list):
        for item in doc:
            yield from _walk(item, path)
    elif isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        yield from _walk(doc.get("features") or [], path)
    elif isinstance(doc, dict) and (doc.get("type") == "Feature" or "geometry" in doc):
        yield doc
        yield from _walk((doc.get("properties") or {}).get("childObjects") or doc.get("childObjects") or [], path)
    elif isinstance(doc, dict) and "coordinates" in doc:
        yield {"type": "Feature", "geometry": doc, "properties": {}}
    else:
        raise ConfigError(f"{path}: not QuPath GeoJSON (expected a FeatureCollection, a list of features or a "
                          "Feature)")


_LEGACY_IDS = {"PathAnnotationObject": "annotation", "PathDetectionObject": "detection", "PathTileObject": "tile",
               "PathCellObject": "cell", "PathTMACoreObject": "tmaCore", "PathRootObject": "root"}


def object_type(feat: Mapping[str, Any]) -> str:
    """QuPath object type of a feature (the one reader of it, also for `pathpt_engine.export`): v0.4+
    `objectType`, v0.3 `object_type`/`type`, v0.2 the object class in `id`; missing: annotation."""
    props = feat.get("properties")
    props = props if isinstance(props, dict) else {}
    for key in ("objectType", "object_type", "type"):
        value = props.get(key)
        if isinstance(value, str) and value and value != "Feature":
            return value
    fid = feat.get("id")
    return _LEGACY_IDS.get(fid, "annotation") if isinstance(fid, str) else "annotation"


def _class_name(props: Mapping[str, Any]) -> str | None:
    cls = props.get("classification")
    if isinstance(cls, str):
        return cls.strip() or None
    if not isinstance(cls, dict):
        return None
    if isinstance(cls.get("names"), list) and cls["names"]:
        return ": ".join(str(n).strip() for n in cls["names"])
    name = cls.get("name")
    return str(name).strip() or None if name is not None else None


def _geometry(geom: Any, label: str) -> Geometry | None:
    if not isinstance(geom, dict) or geom.get("type") not in ("Polygon", "MultiPolygon"):
        return None
    coords = geom.get("coordinates")
    parts: Any = [coords] if geom["type"] == "Polygon" else coords  # shape checked below (TypeError)
    try:
        out = []
        for part in parts:
            rings = [_ring([[float(p[0]), float(p[1])] for p in ring]) for ring in part]
            if rings:
                out.append(Part(rings[0], tuple(rings[1:])))
    except (TypeError, IndexError, ValueError, KeyError):
        raise InvalidRegion(f"{label}: malformed polygon coordinates") from None
    if not out:
        raise InvalidRegion(f"{label}: empty polygon")
    return Geometry(tuple(out))


def read_qupath(path: str | os.PathLike[str], slide_id: str, classset: ClassSet,
                mapping: Mapping[str, str] | None = None) -> ImportReport:
    """Regions of one slide from a QuPath annotation GeoJSON file.

    Raises:
        ConfigError: unreadable file, unknown class names (map them), or a region that cannot be stored
            (the message names the file, the feature and the problem).
    """
    path = Path(path)
    raw: list[tuple[str, Geometry, str, str | None, str, str]] = []
    skipped: dict[str, int] = {}
    for i, feat in enumerate(_walk(_load(path), path)):
        props = feat.get("properties") or {}
        kind = object_type(feat)
        label = f"{path}: feature {i + 1}" + (f" ({props['name']!r})" if props.get("name") else "")
        if kind != "annotation":
            skipped[f"{kind} object(s)"] = skipped.get(f"{kind} object(s)", 0) + 1
            continue
        try:
            geom = _geometry(feat.get("geometry"), label)
        except InvalidRegion as exc:
            raise ConfigError(str(exc)) from None
        if geom is None:
            skipped["non-polygon annotation(s)"] = skipped.get("non-polygon annotation(s)", 0) + 1
            continue
        name = _class_name(props)
        if name is None:
            skipped["unclassified annotation(s)"] = skipped.get("unclassified annotation(s)", 0) + 1
            continue
        meta = props["metadata"] if isinstance(props.get("metadata"), dict) else {}
        fid = feat.get("id")
        raw.append((name, geom, label, fid if _is_uuid(fid) else None, str(meta.get(KIND_KEY) or "imported"),
                    str(props.get("name") or "")))
    names = resolve_classes(classset, [r[0] for r in raw], mapping, str(path))
    regions, repairs = [], []
    for name, geom, label, fid, kind, title in raw:
        try:
            fixed, notes = validate(geom, label)
        except InvalidRegion as exc:
            raise ConfigError(str(exc)) from None
        repairs += notes
        regions.append(Region(slide_id, names[name], fixed, kind, title, **({"region_id": fid} if fid else {})))
    return ImportReport(regions, skipped, repairs)


def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _closed(ring: Any) -> list[list[float]]:
    pts = [[float(x), float(y)] for x, y in ring.tolist()]
    return [*pts, pts[0]]


def region_feature(region: Region, classset: ClassSet) -> dict[str, Any]:
    """One QuPath annotation feature for a region."""
    parts = [[_closed(r) for r in p.rings] for p in region.geometry.parts]
    geometry = ({"type": "Polygon", "coordinates": parts[0]} if len(parts) == 1
                else {"type": "MultiPolygon", "coordinates": parts})
    hexcol = class_color(classset, region.class_name).lstrip("#")
    rgb = [int(hexcol[i:i + 2], 16) for i in (0, 2, 4)]
    name = QUPATH_IGNORE if region.class_name == IGNORE_CLASS else region.class_name
    props: dict[str, Any] = {"objectType": "annotation", "classification": {"name": name, "color": rgb},
                             "metadata": {KIND_KEY: region.kind}}
    if region.name:
        props["name"] = region.name
    return {"type": "Feature", "id": region.region_id, "geometry": geometry, "properties": props}


def to_qupath(regions: Sequence[Region], classset: ClassSet) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": [region_feature(r, classset) for r in regions]}


def write_qupath(path: str | os.PathLike[str], regions: Sequence[Region], classset: ClassSet) -> Path:
    """Write regions as a QuPath GeoJSON FeatureCollection (atomically; `.gz` is gzip-compressed)."""
    path = Path(path)
    text = json.dumps(to_qupath(regions, classset), allow_nan=False)
    if path.suffix == ".gz":
        from ..atomic import write_bytes_atomic

        return write_bytes_atomic(path, gzip.compress(text.encode("utf-8"), mtime=0))
    return write_text_atomic(path, text)


def class_names_in(path: str | os.PathLike[str]) -> list[str]:
    """The class names of the classified annotation polygons in a GeoJSON file (first-seen order), e.g. to ask
    the user how to map the unknown ones before `read_qupath`."""
    path = Path(path)
    names: dict[str, None] = {}
    for feat in _walk(_load(path), path):
        props = feat.get("properties") or {}
        geom = feat.get("geometry")
        if object_type(feat) == "annotation" and isinstance(geom, dict) and \
                geom.get("type") in ("Polygon", "MultiPolygon") and (name := _class_name(props)) is not None:
            names.setdefault(name)
    return list(names)
