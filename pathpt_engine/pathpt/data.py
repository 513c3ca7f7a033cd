"""Thin data layer: a features folder (one `<slide_id>.h5` per slide) and a labels CSV (`slide_id,label`)."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, FeatureFileError
from ..prompts.classsets import ClassSet
from .trainer import SlideData

log = logging.getLogger(__name__)


def feature_files(folder: str | os.PathLike[str]) -> dict[str, Path]:
    """slide_id -> h5 path for every `*.h5` in `folder` (sorted by id)."""
    root = Path(folder)
    if not root.is_dir():
        raise FeatureFileError(f"{root}: features folder not found")
    files = {p.stem: p for p in sorted(root.glob("*.h5"))}
    if not files:
        raise FeatureFileError(f"{root}: no <slide_id>.h5 feature files in this folder")
    return files


def raster_order(coords: np.ndarray) -> np.ndarray:
    """Stable permutation sorting tiles by (y, x) (rows top to bottom, then left to right)."""
    c = np.asarray(coords).reshape(-1, 2)
    return np.lexsort((c[:, 0], c[:, 1]))


def tile_size_level0(coords_attrs: dict, coords: np.ndarray, default: int = 224) -> int:
    """Tile edge at level 0 from CLAM/TRIDENT attributes, else the smallest grid step, else `default`."""
    if coords_attrs.get("patch_size_level0"):
        return int(coords_attrs["patch_size_level0"])
    if coords_attrs.get("patch_size"):
        ds = np.atleast_1d(coords_attrs.get("downsample", 1.0))
        return int(round(float(coords_attrs["patch_size"]) * float(ds[0])))
    steps = []
    for axis in (0, 1):
        vals = np.unique(np.asarray(coords)[:, axis])
        if len(vals) > 1:
            steps.append(int(np.diff(vals).min()))
    return min(steps) if steps else default


def load_slide(path: str | os.PathLike[str], label: int = -1, sort: bool = True) -> SlideData:
    """Read one feature file into SlideData (tiles raster-sorted unless `sort=False`)."""
    from ..features.store import read_features

    ff = read_features(path)
    feats, coords = np.asarray(ff.features, dtype=np.float32), np.asarray(ff.coords, dtype=np.int64)
    if sort and len(coords):
        order = raster_order(coords)
        feats, coords = feats[order], coords[order]
    return SlideData(Path(path).stem, feats, coords, int(label), tile_size_level0(ff.coords_attrs, coords),
                     dict(ff.attrs))


def read_labels_csv(path: str | os.PathLike[str], classset: ClassSet, skip_normal: bool = True) -> dict[str, int]:
    """slide_id -> 0-based subtype index from a `slide_id,label` CSV (label = class name or 0-based int).

    Rows labelled with the Normal class (e.g. the normal slides of a synthetic cohort) are skipped when
    `skip_normal` (subtyping uses tumour slides only); any other unknown label is an error naming the line.
    """
    normal = {classset.classes[0].name.lower(), classset.classes[0].display_name.lower()}
    skipped = 0
    p = Path(path)
    rows = _csv_rows(p)
    if not rows:
        raise ConfigError(f"{p}: labels CSV is empty")
    header = [h.strip().lower() for h in rows[0]]
    if header[:2] != ["slide_id", "label"]:
        raise ConfigError(f"{p}: first line must be the header 'slide_id,label', got {','.join(rows[0])!r}")
    out: dict[str, int] = {}
    seen: dict[str, tuple[int, str, int]] = {}  # slide_id -> (first line, label text, subtype or -1)
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) < 2 or not row[0].strip():
            raise ConfigError(f"{p}:{line}: need 'slide_id,label'")
        sid, lab = row[0].strip(), row[1].strip()
        try:
            key = -1 if lab.lower() in normal else classset.subtype_index(lab)
        except ValueError as exc:
            raise ConfigError(f"{p}:{line}: {exc}") from None
        first = seen.setdefault(sid, (line, lab, key))
        if first[2] != key:
            raise ConfigError(f"{p}: slide {sid!r} has two different labels: {first[1]!r} on line {first[0]} and "
                              f"{lab!r} on line {line}; keep one")
        if key < 0 and skip_normal:
            skipped += 1 if first[0] == line else 0
        elif key < 0:
            raise ConfigError(f"{p}:{line}: {lab!r} is the Normal class, not a subtype")
        else:
            out[sid] = key
    if skipped:
        log.info("%s: skipped %d slide(s) labelled as the Normal class", p, skipped)
    if not out:
        raise ConfigError(f"{p}: no labelled slides")
    return out


def _csv_rows(p: Path) -> list[list[str]]:
    from ..textfile import read_user_text

    try:
        return list(csv.reader(io.StringIO(read_user_text(p, "labels CSV"), newline="")))
    except csv.Error as exc:
        raise ConfigError(f"{p}: not a readable CSV ({exc})") from None


def load_labelled(features_dir: str | os.PathLike[str], labels: dict[str, int],
                  ids: list[str] | None = None) -> list[SlideData]:
    """Load the slides `ids` (default: every labelled slide) with their labels; missing files are errors."""
    files = feature_files(features_dir)
    want = list(labels) if ids is None else ids
    missing = [s for s in want if s not in files]
    if missing:
        raise FeatureFileError(f"{features_dir}: no feature file for {len(missing)} labelled slide(s), e.g. "
                               f"{missing[0]}.h5")
    return [load_slide(files[s], labels.get(s, -1)) for s in want]
