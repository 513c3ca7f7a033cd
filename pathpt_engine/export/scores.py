"""Score grids as h5 files: the predictor's per-slide output and our raw-grid export.

Layout (CLAM/TRIDENT-friendly): dataset `coords` int64 [N, 2] (level-0 top-left x, y) with attrs
`patch_size_level0`; dataset `probs` float32 [N, C]; file attrs `class_names` (list of str), `tile_size_level0`,
`slide_id`, and, when a slide prediction is known, `slide_predicted`, `slide_scores` (JSON class -> number),
`slide_score_kind` (what the numbers are: `tumour_tile_votes`, `all_tile_votes` (shares of tile votes, not
probabilities) or `probability`), `slide_n_voters` (tiles that voted, when known) and `slide_n_tiles`.
Files from earlier versions hold the tile-vote shares as `slide_probs`; they read as kind `tile_votes`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from ..results import TILE_VOTES, SlidePrediction, TileScores
from ._atomic import ExportError, atomic_path


def write_scores_h5(path: str | os.PathLike[str], scores: TileScores,
                    prediction: SlidePrediction | None = None) -> Path:
    """Write `scores` (and optionally the slide prediction) to `path` atomically (NaN/inf refused)."""
    from .guards import require_finite

    path = Path(path)
    require_finite(path, scores, prediction)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        coords = f.create_dataset("coords", data=np.asarray(scores.coords, dtype=np.int64))
        coords.attrs["patch_size_level0"] = int(scores.tile_size_level0)
        f.create_dataset("probs", data=np.asarray(scores.probs, dtype=np.float32))
        f.attrs["class_names"] = list(scores.class_names)
        f.attrs["tile_size_level0"] = int(scores.tile_size_level0)
        f.attrs["slide_id"] = scores.slide_id
        if prediction is not None:
            f.attrs["slide_predicted"] = prediction.predicted
            f.attrs["slide_scores"] = json.dumps({k: float(v) for k, v in prediction.probs.items()})
            f.attrs["slide_score_kind"] = prediction.score_kind
            if prediction.n_voters is not None:
                f.attrs["slide_n_voters"] = int(prediction.n_voters)
            f.attrs["slide_n_tiles"] = int(prediction.n_tiles)
    return path


def _str_list(value: object) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)):
        value = json.loads(value) if isinstance(value, str) and value.startswith("[") else [value]
    return tuple(v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(value))  # type: ignore[call-overload]  # h5 attr


def read_scores_h5(path: str | os.PathLike[str]) -> tuple[TileScores, SlidePrediction | None]:
    """Read a score h5 file (ours or the predictor's) into `TileScores` and the slide prediction if stored.

    Accepts `class_names` / `tile_size_level0` as file attrs or as attrs of `probs` / `coords`
    (`patch_size_level0`); the slide id defaults to the file stem.

    Raises:
        ExportError: the file is missing, not h5, or lacks a required dataset/attribute.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            for name in ("coords", "probs"):
                if name not in f:
                    raise ExportError(f"{path}: no '{name}' dataset; expected a PathPT scores h5 file")
            coords = np.asarray(f["coords"][()], dtype=np.int64)
            probs = np.asarray(f["probs"][()], dtype=np.float32)
            attrs = {**dict(f["coords"].attrs), **dict(f["probs"].attrs), **dict(f.attrs)}
    except OSError as exc:
        raise ExportError(f"{path}: cannot read as h5 ({exc})") from exc
    if "class_names" not in attrs:
        raise ExportError(f"{path}: no 'class_names' attribute; cannot name the probability columns")
    tile = attrs.get("tile_size_level0", attrs.get("patch_size_level0"))
    if tile is None:
        raise ExportError(f"{path}: no 'tile_size_level0' attribute")
    slide_id = attrs.get("slide_id", path.stem)
    slide_id = slide_id.decode() if isinstance(slide_id, bytes) else str(slide_id)
    try:
        scores = TileScores(slide_id, coords, probs, int(tile), _str_list(attrs["class_names"]))
    except ValueError as exc:
        raise ExportError(f"{path}: {exc}") from exc
    pred = _slide_prediction(path, attrs, slide_id, len(coords)) if "slide_predicted" in attrs else None
    return scores, pred


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _slide_prediction(path: Path, attrs: dict, slide_id: str, n_tiles: int) -> SlidePrediction:
    """The stored slide call: `slide_scores` + `slide_score_kind`, or an earlier version's `slide_probs`."""
    key = "slide_scores" if "slide_scores" in attrs else "slide_probs"
    kind = _text(attrs.get("slide_score_kind", TILE_VOTES))  # earlier versions stored only tile-vote shares
    try:
        scores_map = {str(k): float(v) for k, v in json.loads(attrs[key]).items()}
        n_voters = int(attrs["slide_n_voters"]) if "slide_n_voters" in attrs else None
        return SlidePrediction(slide_id, _text(attrs["slide_predicted"]), scores_map,
                               int(attrs.get("slide_n_tiles", n_tiles)), score_kind=kind, n_voters=n_voters)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:
        raise ExportError(f"{path}: corrupt slide prediction attributes ({key}, slide_score_kind): {exc}") from exc
