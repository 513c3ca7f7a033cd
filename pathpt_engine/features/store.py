"""Per-slide h5 files of tile coordinates and features, compatible with CLAM, TRIDENT and PathPT.

Layout (one file per slide, `<slide_id>.h5`):

- `coords`: int64 [N, 2], level-0 top-left (x, y), raster order. Attributes (CLAM + TRIDENT names): `patch_size`
  (edge at `patch_level`), `patch_level`, `downsample` ([d, d] of that level), `patch_size_level0`, `target_mpp`,
  `tile_size` (edge handed to the backbone), `slide_mpp`, `mpp_source`, `level_dim`, `downsampled_level_dim`,
  `level0_magnification`, `target_magnification` (10 / mpp), `overlap` (0), `name`.
- `features`: float [N, D], once extracted, rows aligned with `coords`.
- `labels` (optional, PathPT reference files): int [N] tile labels.
- File attributes: whatever identifies the content, e.g. `slide_id` (OpenSlide quickhash), `slide_name`,
  `backbone`, `weights_hash`, `tile_params` (JSON), so `is_valid(path, expected)` can detect a stale cache.

Files written by CLAM (`features` + `coords`), TRIDENT and the PathPT release read as well; missing attributes are
tolerated. Every write goes to a temp file in the same folder and is renamed into place. Reads check the file and
raise `FeatureFileError` naming it: missing dataset, wrong rank/dtype, mismatched N, NaN/inf features.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from ..atomic import atomic_path
from ..errors import FeatureFileError
from ..slides.grid import GridParams, TileGrid, size_pair

if TYPE_CHECKING:
    from ..slides.base import SlideReader

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


@dataclass(frozen=True)
class CoordsFile:
    """Tile coordinates of a slide and their attributes."""

    path: Path
    coords: np.ndarray
    coords_attrs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FeatureFile:
    """Features [N, D] (float32), coords [N, 2] (int64), attributes; `labels` [N] when the file has them."""

    path: Path
    features: np.ndarray
    coords: np.ndarray
    attrs: dict[str, Any] = field(default_factory=dict)
    coords_attrs: dict[str, Any] = field(default_factory=dict)
    labels: np.ndarray | None = None

    @property
    def slide_id(self) -> str | None:
        """The slide identity recorded in the file (OpenSlide quickhash), if any."""
        value = self.attrs.get("slide_id")
        return None if value is None else str(value)


def grid_coords_attrs(grid: TileGrid, name: str = "") -> dict[str, Any]:
    """CLAM/TRIDENT-style attributes of the `coords` dataset for a tile grid."""
    ds = grid.level_downsample
    return {
        "patch_size": grid.read_size,
        "patch_level": grid.level,
        "downsample": np.array([ds, ds], np.float64),
        "patch_size_level0": grid.size_level0,
        "tile_size": grid.tile_size,
        "target_mpp": grid.params.target_mpp,
        "slide_mpp": grid.slide_mpp,
        "mpp_source": grid.mpp_source,
        "level_dim": np.array(grid.slide_dimensions, np.int64),
        "downsampled_level_dim": np.array(grid.level_dimensions, np.int64),
        "level0_magnification": 10.0 / grid.slide_mpp,
        "target_magnification": 10.0 / grid.params.target_mpp,
        "overlap": 0,
        "name": name,
    }


def feature_attrs(coords: CoordsFile, backbone: str, weights_hash: str, **extra: Any) -> dict[str, Any]:
    """File attributes for a feature file made from `coords`: slide identity and tiling carried over, plus the
    backbone. Pass the same dict to `is_valid` to decide whether an existing feature file can be reused."""
    carried: dict[str, Any] = {k: coords.attrs[k] for k in ("slide_id", "slide_name", "tile_params") if k in coords.attrs}
    return {**carried, "backbone": backbone, "weights_hash": weights_hash, **extra}


def grid_from_coords(coords: CoordsFile, reader: SlideReader) -> TileGrid:
    """A `TileGrid` (for `iter_tiles`) from a coords file: ours, CLAM's or TRIDENT's.

    Uses `patch_level`/`patch_size` (CLAM; default level 0), `patch_size_level0` (else patch_size x the level's
    downsample) and `tile_size` (ours; else the tile is handed on at `patch_size`).

    Raises:
        FeatureFileError: the attributes do not fit the slide (level out of range, missing sizes).
    """
    a = coords.coords_attrs
    level = int(a.get("patch_level", 0))
    if not 0 <= level < reader.level_count:
        raise FeatureFileError(f"{coords.path}: patch_level {level} does not exist in {reader.path}")
    level_ds = float(reader.level_downsamples[level])
    if "patch_size" not in a and "patch_size_level0" not in a:
        raise FeatureFileError(f"{coords.path}: 'coords' has neither 'patch_size' nor 'patch_size_level0'")
    size0 = int(a.get("patch_size_level0", round(int(a.get("patch_size", 0)) * level_ds)))
    read_size = int(a.get("patch_size", round(size0 / level_ds)))
    tile_size = int(a.get("tile_size", read_size))
    mpp = a.get("slide_mpp") or (reader.mpp[0] if reader.mpp else None)
    target_mpp = float(a.get("target_mpp") or (mpp * size0 / tile_size if mpp else GridParams.target_mpp))
    return TileGrid(coords=coords.coords, tissue=np.full(len(coords.coords), np.nan, np.float32),
                    params=GridParams(target_mpp=target_mpp, tile_size=tile_size, min_tissue=0.0),
                    slide_mpp=float(mpp) if mpp else float("nan"), mpp_source=str(a.get("mpp_source", "file")),
                    level=level, level_downsample=level_ds, read_size=read_size, size_level0=size0,
                    slide_dimensions=size_pair(reader.dimensions), level_dimensions=size_pair(reader.level_dimensions[level]))


def write_coords(path: str | os.PathLike[str], grid: TileGrid, attrs: Mapping[str, Any] | None = None) -> Path:
    """Write a coords-only file for `grid` (atomically); `attrs` become file attributes."""
    path = Path(path)
    coords_attrs = grid_coords_attrs(grid, name=str((attrs or {}).get("slide_name", path.stem)))
    return _write(path, grid.coords, None, dict(attrs or {}), coords_attrs)


def write_features(
    path: str | os.PathLike[str],
    coords: np.ndarray,
    features: np.ndarray,
    attrs: Mapping[str, Any] | None = None,
    coords_attrs: Mapping[str, Any] | None = None,
) -> Path:
    """Write features [N, D] and coords [N, 2] (atomically). Pass the coords file's `coords_attrs` to keep them.

    Raises:
        FeatureFileError: shapes disagree or features are not finite (nothing is written).
    """
    path = Path(path)
    coords = _check_coords(path, np.asarray(coords))
    features = _check_features(path, np.asarray(features), len(coords))
    return _write(path, coords, features, dict(attrs or {}), dict(coords_attrs or {}))


def read_coords(path: str | os.PathLike[str]) -> CoordsFile:
    """Read `coords` (and attributes) from a coords or feature file."""
    path = Path(path)
    with _open(path) as f:
        coords = _check_coords(path, _dataset(f, path, "coords"))
        return CoordsFile(path, coords, _attrs(f["coords"].attrs), _attrs(f.attrs))


def read_features(path: str | os.PathLike[str]) -> FeatureFile:
    """Read a feature file (ours, CLAM, TRIDENT or PathPT's)."""
    path = Path(path)
    with _open(path) as f:
        coords = _check_coords(path, _dataset(f, path, "coords"))
        features = _check_features(path, _dataset(f, path, "features"), len(coords))
        labels = None
        if "labels" in f:
            labels = np.asarray(f["labels"][()])
            if labels.shape != (len(coords),) or not np.issubdtype(labels.dtype, np.integer):
                raise FeatureFileError(f"{path}: 'labels' must be int [{len(coords)}], got {labels.dtype} "
                                       f"{labels.shape}")
        return FeatureFile(path, features, coords, _attrs(f.attrs), _attrs(f["coords"].attrs), labels)


def stale_reason(path: str | os.PathLike[str], expected: Mapping[str, Any], need_features: bool = True) -> str | None:
    """Why `path` is not a valid cache for `expected` file attributes, or None if it is.

    The file must read cleanly (features too, if `need_features`) and every expected attribute must be present
    with an equal value (floats to 1e-9 relative).
    """
    path = Path(path)
    if not path.is_file():
        return "missing"
    try:
        attrs = read_features(path).attrs if need_features else read_coords(path).attrs
    except FeatureFileError as exc:
        return str(exc)
    for key, want in expected.items():
        if key not in attrs:
            return f"attribute {key!r} missing"
        if not _same(attrs[key], _plain(want)):
            return f"attribute {key!r} is {attrs[key]!r}, expected {_plain(want)!r}"
    return None


def is_valid(path: str | os.PathLike[str], expected: Mapping[str, Any], need_features: bool = True) -> bool:
    """Whether `path` can be reused for `expected` attributes (see `stale_reason`)."""
    reason = stale_reason(path, expected, need_features)
    if reason is not None:
        logger.debug("%s: not reusable (%s)", path, reason)
    return reason is None


# ---- internals ------------------------------------------------------------------------------------------------
def _write(path: Path, coords: np.ndarray, features: np.ndarray | None, attrs: dict[str, Any],
           coords_attrs: dict[str, Any]) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            dset = f.create_dataset("coords", data=coords.astype(np.int64))
            for key, value in coords_attrs.items():
                dset.attrs[key] = _h5_value(value)
            if features is not None:
                f.create_dataset("features", data=features)
            f.attrs["pathpt_format"] = FORMAT_VERSION
            for key, value in attrs.items():
                f.attrs[key] = _h5_value(value)
    except OSError as exc:
        raise FeatureFileError(f"{path}: cannot write ({exc})") from exc
    return path


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise FeatureFileError(f"{path}: no such feature file")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise FeatureFileError(f"{path}: not a readable HDF5 file ({exc})") from exc


def _dataset(f: h5py.File, path: Path, name: str) -> np.ndarray:
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise FeatureFileError(f"{path}: no '{name}' dataset (has: {', '.join(sorted(f.keys())) or 'nothing'})")
    try:
        return np.asarray(f[name][()])
    except (OSError, TypeError, ValueError) as exc:
        raise FeatureFileError(f"{path}: cannot read '{name}' ({exc})") from exc


def _check_coords(path: Path, coords: np.ndarray) -> np.ndarray:
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise FeatureFileError(f"{path}: 'coords' must be [N, 2], got shape {coords.shape}")
    if np.issubdtype(coords.dtype, np.integer):
        return coords.astype(np.int64, copy=False)
    if np.issubdtype(coords.dtype, np.floating) and np.all(np.isfinite(coords)) and np.all(coords == np.round(coords)):
        return coords.astype(np.int64)  # some tools store whole-number float coords
    raise FeatureFileError(f"{path}: 'coords' must hold integers, got {coords.dtype}")


def _check_features(path: Path, features: np.ndarray, n: int) -> np.ndarray:
    if features.ndim == 3 and features.shape[0] == 1:
        features = features[0]  # [1, N, D] as some exporters save a batch
    if features.ndim != 2:
        raise FeatureFileError(f"{path}: 'features' must be [N, D], got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        raise FeatureFileError(f"{path}: 'features' must be floating point, got {features.dtype}")
    if features.shape[0] != n:
        raise FeatureFileError(f"{path}: {features.shape[0]} feature rows but {n} coords")
    if not np.all(np.isfinite(features)):
        bad = int(np.count_nonzero(~np.isfinite(features).all(axis=1)))
        raise FeatureFileError(f"{path}: 'features' has NaN/inf values in {bad} of {n} rows")
    return features.astype(np.float32, copy=False)


def _h5_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Mapping | list | tuple) and not isinstance(value, np.ndarray):
        return json.dumps(value, sort_keys=True)
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True)
    return value


def _attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    return {key: _plain(attrs[key]) for key in attrs}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9)
    return a == b
