"""Slide-prediction CSV (`slide_id,predicted,n_tiles,slide_score,n_voters,vote_share_<class>...`) and
trained-checkpoint folder copies."""

from __future__ import annotations

import csv
import io
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from ..results import PROBABILITY, SCORE_KINDS, TILE_VOTES, SlidePrediction
from ._atomic import ExportError, write_text_atomic

VOTE_PREFIX = "vote_share_"  # share of tile votes per subtype (the tile vote: PathPT, zero-shot)
PROB_PREFIX = "p_"  # slide probability per class (MIL heads)


def write_predictions_csv(path: str | os.PathLike[str], predictions: Sequence[SlidePrediction],
                          class_names: Sequence[str] | None = None) -> Path:
    """Write one row per slide (atomic): `slide_id, predicted, n_tiles, slide_score, n_voters`, then one column
    per class named for what it holds: `vote_share_<class>` (share of the tiles that voted; `slide_score` says
    which tiles: `tumour_tile_votes`, `all_tile_votes`) or `p_<class>` (a probability, `slide_score` =
    `probability`).

    Args:
        path: output CSV.
        predictions: slide predictions.
        class_names: score column order; defaults to the first prediction's order plus any new names.
    """
    from .guards import require_finite

    for p in predictions:
        require_finite(path, None, p)
    names = list(class_names or [])
    if not names:
        for p in predictions:
            names.extend(k for k in p.probs if k not in names)
    prefixes = [pre for pre, vote in ((VOTE_PREFIX, True), (PROB_PREFIX, False))
                if any(p.is_vote == vote for p in predictions)] or [VOTE_PREFIX]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["slide_id", "predicted", "n_tiles", "slide_score", "n_voters",
                *[f"{pre}{c}" for pre in prefixes for c in names]])
    for p in predictions:
        own = VOTE_PREFIX if p.is_vote else PROB_PREFIX
        cells = [_fmt(p.probs.get(c)) if pre == own else "" for pre in prefixes for c in names]
        w.writerow([p.slide_id, p.predicted, p.n_tiles, p.score_kind, "" if p.n_voters is None else p.n_voters,
                    *cells])
    return write_text_atomic(path, buf.getvalue())


def _fmt(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def read_predictions_csv(path: str | os.PathLike[str]) -> list[SlidePrediction]:
    """Read a predictions CSV written by us or by the predictor (`n_tiles`, `slide_score`, `n_voters` optional).

    Files from earlier versions have `p_<class>` columns and no `slide_score`: every writer then stored shares of
    tile votes there, so they read as kind `tile_votes`.

    Raises:
        ExportError: missing file, no `slide_id`/`predicted` columns, an unknown `slide_score` or a non-numeric
            score.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
            fields = list(rows[0].keys()) if rows else []
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ExportError(f"{path}: cannot read predictions CSV ({exc})") from exc
    if rows and not {"slide_id", "predicted"} <= set(fields):
        raise ExportError(f"{path}: needs columns 'slide_id' and 'predicted', found {fields}")
    return [_read_row(path, line, r) for line, r in enumerate(rows, start=2)]


def _read_row(path: Path, line: int, r: dict[str, str]) -> SlidePrediction:
    kind = r.get("slide_score") or TILE_VOTES
    if kind not in SCORE_KINDS:
        raise ExportError(f"{path}: line {line}: unknown slide_score {kind!r} (known: {', '.join(SCORE_KINDS)})")
    if "slide_score" in r:
        prefix = PROB_PREFIX if kind == PROBABILITY else VOTE_PREFIX
    else:  # an earlier version's file: tile-vote shares under p_
        prefix = VOTE_PREFIX if any(k and k.startswith(VOTE_PREFIX) for k in r) else PROB_PREFIX
    try:
        scores = {k[len(prefix):]: float(v) for k, v in r.items()
                  if k and k.startswith(prefix) and v not in (None, "")}
        n = int(r["n_tiles"]) if r.get("n_tiles") else 0
        voters = int(r["n_voters"]) if r.get("n_voters") else None
    except ValueError as exc:
        raise ExportError(f"{path}: line {line}: {exc}") from exc
    return SlidePrediction(r["slide_id"], r["predicted"], scores, n, score_kind=kind, n_voters=voters)


def copy_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Copy a trained checkpoint folder to `dst` atomically (copied under a temp name, then renamed).

    Raises:
        ExportError: `src` is not a folder, or `dst` exists and `overwrite` is False.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise ExportError(f"{src}: checkpoint folder not found")
    if dst.exists() and not overwrite:
        raise ExportError(f"{dst}: already exists; choose another destination or allow overwrite")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.tmp")
    old = dst.with_name(f".{dst.name}.{uuid.uuid4().hex[:8]}.old")
    try:
        shutil.copytree(src, tmp)
        if dst.exists():
            os.replace(dst, old)
        os.replace(tmp, dst)
    except OSError as exc:
        if old.exists() and not dst.exists():
            os.replace(old, dst)  # put the previous copy back
        raise ExportError(f"{dst}: cannot copy checkpoint from {src} ({exc})") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return dst
