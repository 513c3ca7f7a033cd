"""Read a (possibly huge) QuPath GeoJSON file as a job: streamed feature by feature, with progress, cancel and a
memory cap, for the GUI's "Show QuPath GeoJSON on Slide".

`json.loads` of a 200 MB file builds ~2 GB of Python objects and blocks for half a minute. Here the text is read
in chunks; each feature of the top-level `features` array (or bare list) is decoded alone and reduced at once to
what an overlay needs (tile corner, edge, one probability row); only the slide summary and classified
annotations are kept whole. A file whose tiles would exceed `max_tiles`, or one feature larger than
`max_feature_bytes`, is refused with one line; so is malformed or absurdly nested JSON, and features whose parts
have the wrong JSON types (properties as a list, measurements as a string).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..annotations.qupath import object_type
from ..jobs import Job, Progress, check_cancel
from ..results import TileScores
from ._atomic import ExportError
from .geojson import KIND_KEY, SLIDE_KIND, GeoJsonImport, Region, _polygons, _prediction, classification

CHUNK = 1 << 20
MAX_TILES = 2_000_000  # ~ 2M x (C + 3) numbers: well under 1 GB for any class count we ship
MAX_FEATURE_BYTES = 32 << 20
_FEATURES = re.compile(r'"features"\s*:\s*\[')
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class StreamedGeoJson:
    """What `read_geojson_job` read, and the slide id the file states (PathPT metadata), if it states one."""

    imported: GeoJsonImport
    stated_slide_id: str | None


def check_fits_slide(scores: TileScores, stated_slide_id: str | None, slide_id: str,
                     dimensions: tuple[int, int]) -> str | None:
    """Why these tiles may belong to another slide (None when they fit): another stated slide id, or tiles
    outside the slide's level-0 `dimensions` (width, height)."""
    if stated_slide_id and slide_id and stated_slide_id != slide_id:
        return f"this GeoJSON is for slide {stated_slide_id!r}, but the open slide is {slide_id!r}"
    if len(scores.coords):
        lo = scores.coords.min(axis=0)
        hi = scores.coords.max(axis=0) + scores.tile_size_level0
        w, h = dimensions
        if lo.min() < 0 or hi[0] > w * 1.01 + 1 or hi[1] > h * 1.01 + 1:
            return (f"its tiles reach {int(hi[0])} x {int(hi[1])} px, beyond this slide's {w} x {h} px "
                    "(a GeoJSON of another slide?)")
    return None


def _props(feat: Mapping[str, Any]) -> dict[str, Any]:
    props = feat.get("properties")
    return props if isinstance(props, dict) else {}


def _measurements(props: Mapping[str, Any]) -> dict[str, float]:
    raw = props.get("measurements")
    if isinstance(raw, list):
        raw = {m["name"]: m.get("value") for m in raw if isinstance(m, dict) and isinstance(m.get("name"), str)}
    if not isinstance(raw, dict):
        return {}
    return {str(k): float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class _Tiles:
    """Tile (or detection) rows accumulated compactly: corner, edge and measurements in the first tile's order."""

    def __init__(self, path: Path, max_tiles: int) -> None:
        self.path, self.max_tiles = path, max_tiles
        self.names: tuple[str, ...] | None = None
        self.xy: list[tuple[int, int]] = []
        self.sizes: set[tuple[int, int]] = set()
        self.rows: list[np.ndarray] = []
        self.keysets: set[tuple[str, ...]] = set()

    def add(self, feat: Mapping[str, Any], m: dict[str, float]) -> None:
        if len(self.xy) >= self.max_tiles:
            raise ExportError(f"{self.path}: more than {self.max_tiles} tiles; too large to show (memory cap)")
        polys = _polygons(feat.get("geometry"), self.path)
        if len(polys) != 1:
            raise ExportError(f"{self.path}: tile feature {len(self.xy)} has no single polygon geometry")
        ring = polys[0][0]
        xs, ys = [q[0] for q in ring], [q[1] for q in ring]
        x0, y0 = min(xs), min(ys)
        self.sizes.add((round(max(xs) - x0), round(max(ys) - y0)))
        self.names = self.names or tuple(m)
        self.keysets.add(tuple(sorted(m)))
        self.xy.append((round(x0), round(y0)))
        self.rows.append(np.array([m.get(n, np.nan) for n in self.names], dtype=np.float32))

    def scores(self, meta: Mapping[str, Any], slide_id: str) -> TileScores | None:
        if not self.xy:
            return None
        names = self.names or ()
        if "pathpt.class_names" in meta:
            try:
                names = tuple(str(n) for n in json.loads(meta["pathpt.class_names"]))
            except (TypeError, ValueError):
                raise ExportError(f"{self.path}: bad pathpt.class_names in the slide summary") from None
        if any(set(names) - set(k) for k in self.keysets):
            raise ExportError(f"{self.path}: some tiles lack measurements for classes {list(names)}")
        order = [self.names.index(n) for n in names] if self.names else []
        sizes = set(self.sizes)
        if "pathpt.tile_size_level0" in meta:
            sizes.add((int(meta["pathpt.tile_size_level0"]),) * 2)
        if len(sizes) != 1 or any(w != h for w, h in sizes):
            raise ExportError(f"{self.path}: tiles are not squares of one size ({sorted(sizes)[:3]})")
        probs = np.stack(self.rows)[:, order]
        return TileScores(slide_id, np.asarray(self.xy, dtype=np.int64), probs, sizes.pop()[0], names)


def read_geojson_job(path: str | os.PathLike[str], cancel: threading.Event | None = None,
                     max_tiles: int | None = None, max_feature_bytes: int | None = None) -> Job[StreamedGeoJson]:
    """Job: stream `path` into a `StreamedGeoJson` (progress in MB read; cancellable between chunks).

    Tiles are `tile` objects with measurements, else `detection` objects when they all share the same
    measurement names (as `read_geojson`).

    Raises:
        ExportError: unreadable, not GeoJSON, malformed or too deeply nested JSON, or over the memory cap.
    """
    path = Path(path)
    max_tiles = MAX_TILES if max_tiles is None else max_tiles
    max_feature_bytes = MAX_FEATURE_BYTES if max_feature_bytes is None else max_feature_bytes
    try:
        total = path.stat().st_size
    except OSError as exc:
        raise ExportError(f"{path}: cannot read GeoJSON ({exc.strerror or exc})") from None
    tiles, dets = _Tiles(path, max_tiles), _Tiles(path, max_tiles)
    summary: dict[str, Any] | None = None
    annotations: list[dict[str, Any]] = []
    last = -1
    for feat, done in _stream(path, cancel, max_feature_bytes):
        if not isinstance(feat, dict):
            raise ExportError(f"{path}: every feature must be a JSON object")
        kind, props = object_type(feat), _props(feat)
        meta = props.get("metadata")
        if isinstance(meta, dict) and meta.get(KIND_KEY) == SLIDE_KIND:
            summary = feat
        elif kind in ("tile", "detection") and (m := _measurements(props)):
            (tiles if kind == "tile" else dets).add(feat, m)
        elif kind == "annotation":
            annotations.append(feat)
        if done >> 20 != last:  # one event per MB read, not per feature
            last = done >> 20
            yield Progress("read", min(last, total >> 20), max(1, total >> 20), message=f"{path.name}: {last} MB")
    meta = _props(summary).get("metadata", {}) if summary else {}
    meta = meta if isinstance(meta, dict) else {}
    stated = str(meta["pathpt.slide_id"]) if meta.get("pathpt.slide_id") else None
    slide_id = stated or path.name.removesuffix(".geojson").removesuffix(".json")
    source = tiles if tiles.xy else (dets if len(dets.keysets) == 1 else _Tiles(path, 0))
    scores = source.scores(meta, slide_id)
    if scores is not None and not np.isfinite(scores.probs).all():
        raise ExportError(f"{path}: tile measurements hold NaN or infinite values")
    try:
        prediction = _prediction(summary, scores, path) if summary else None
    except (AttributeError, TypeError, ValueError) as exc:
        raise ExportError(f"{path}: malformed slide summary feature ({exc})") from None
    return StreamedGeoJson(GeoJsonImport(scores, prediction, _regions(annotations, path)), stated)


def _regions(annotations: list[dict[str, Any]], path: Path) -> list[Region]:
    out = []
    for f in annotations:
        props = _props(f)
        name, color = classification(props)
        polys = _polygons(f.get("geometry"), path)
        if name is not None and polys:
            out.append(Region(name, color, polys, str(props.get("name") or ""), "annotation"))
    return out


def _stream(path: Path, cancel: threading.Event | None, max_feature_bytes: int) -> Iterator[tuple[Any, int]]:
    """(feature, characters read so far) for each element of the features array."""
    try:
        fh = path.open("r", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"{path}: cannot read GeoJSON ({exc.strerror or exc})") from None
    with fh:
        reader = _Reader(fh, path, cancel, max_feature_bytes)
        yield from reader.features()


class _Reader:
    def __init__(self, fh: Any, path: Path, cancel: threading.Event | None, limit: int) -> None:
        self.fh, self.path, self.cancel, self.limit = fh, path, cancel, limit
        self.buf, self.pos, self.read_bytes, self.eof = "", 0, 0, False

    def _more(self) -> bool:
        check_cancel(self.cancel)
        try:
            chunk = self.fh.read(CHUNK)
        except UnicodeDecodeError as exc:
            raise ExportError(f"{self.path}: not UTF-8 text ({exc.reason})") from None
        if not chunk:
            self.eof = True
            return False
        self.buf = self.buf[self.pos:] + chunk
        self.pos = 0
        self.read_bytes += len(chunk)
        if len(self.buf) > self.limit:
            raise ExportError(f"{self.path}: one GeoJSON feature is larger than {self.limit >> 20} MB; refused")
        return True

    def _skip(self, chars: str) -> str:
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in chars:
                self.pos += 1
            if self.pos < len(self.buf) or not self._more():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def features(self) -> Iterator[tuple[Any, int]]:
        first = self._skip(" \t\r\n\ufeff")
        if first == "{":
            while not (m := _FEATURES.search(self.buf, self.pos)):
                if len(self.buf) > self.limit or not self._more():
                    yield self._whole(), self.read_bytes  # a single Feature (small), or no features array
                    return
            self.pos = m.end()
        elif first == "[":
            self.pos += 1
        else:
            raise ExportError(f"{self.path}: not GeoJSON (expected a FeatureCollection, a feature list or a Feature)")
        while True:
            c = self._skip(" \t\r\n,")
            if c == "]":
                return
            if c == "":
                raise ExportError(f"{self.path}: the GeoJSON ends inside the features list (truncated file?)")
            yield self._decode(), self.read_bytes

    def _decode(self) -> Any:
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if not self.eof and self._more():
                    continue
                raise ExportError(f"{self.path}: malformed GeoJSON near character {exc.pos} ({exc.msg})") from None
            except RecursionError:
                raise ExportError(f"{self.path}: JSON nested too deeply to be GeoJSON; refused") from None
            self.pos = end
            return obj

    def _whole(self) -> Any:
        text = self.buf[self.pos:]
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ExportError(f"{self.path}: malformed GeoJSON ({exc.msg})") from None
        except RecursionError:
            raise ExportError(f"{self.path}: JSON nested too deeply to be GeoJSON; refused") from None
        if isinstance(doc, dict) and doc.get("type") == "Feature":
            return doc
        raise ExportError(f"{self.path}: not GeoJSON (no features list)")
