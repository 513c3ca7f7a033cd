"""Slide-prediction CSV (`slide_id,predicted,p_<class>...`) and trained-checkpoint folder copies."""

from __future__ import annotations

import csv
import io
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

from ..results import SlidePrediction
from ._atomic import ExportError, write_text_atomic


def write_predictions_csv(path: str | os.PathLike[str], predictions: Sequence[SlidePrediction],
                          class_names: Sequence[str] | None = None) -> Path:
    """Write one row per slide: `slide_id, predicted, n_tiles, p_<class>...` (atomic).

    Args:
        path: output CSV.
        predictions: slide predictions.
        class_names: probability column order; defaults to the first prediction's order plus any new names.
    """
    from .guards import require_finite

    for p in predictions:
        require_finite(path, None, p)
    names = list(class_names or [])
    if not names:
        for p in predictions:
            names.extend(k for k in p.probs if k not in names)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["slide_id", "predicted", "n_tiles", *[f"p_{c}" for c in names]])
    for p in predictions:
        w.writerow([p.slide_id, p.predicted, p.n_tiles, *[_fmt(p.probs.get(c)) for c in names]])
    return write_text_atomic(path, buf.getvalue())


def _fmt(v: float | None) -> str:
    return "" if v is None else repr(float(v))


def read_predictions_csv(path: str | os.PathLike[str]) -> list[SlidePrediction]:
    """Read a predictions CSV written by us or by the predictor (`n_tiles` optional).

    Raises:
        ExportError: missing file, no `slide_id`/`predicted` columns, or a non-numeric probability.
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
    out = []
    for line, r in enumerate(rows, start=2):
        try:
            probs = {k[2:]: float(v) for k, v in r.items() if k and k.startswith("p_") and v not in (None, "")}
            n = int(r["n_tiles"]) if r.get("n_tiles") else 0
        except ValueError as exc:
            raise ExportError(f"{path}: line {line}: {exc}") from exc
        out.append(SlidePrediction(r["slide_id"], r["predicted"], probs, n))
    return out


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
