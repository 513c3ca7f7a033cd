"""Guards every export passes: names taken from data stay inside the output folder, and no NaN or infinite
value is written.

A slide id stored in a scores h5 or a GeoJSON such as ``../evil`` or ``/etc/x`` is refused with one line, never
written; so are tile or slide scores that are not finite (bare ``NaN`` is not even valid JSON)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..results import SlidePrediction, TileScores
from ._atomic import ExportError


def safe_child(folder: str | os.PathLike[str], slide_id: str, suffix: str = "") -> Path:
    """`folder / (slide_id + suffix)`, refused unless it is a plain file name that resolves inside `folder`.

    Raises:
        ExportError: the id is empty, has a path separator, NUL or control character, is `.`/`..`, or the
            resolved path leaves `folder`.
    """
    root = Path(folder)
    name = f"{slide_id}{suffix}"
    bad = (not slide_id or slide_id in (".", "..") or any(c in slide_id for c in "/\\")
           or any(ord(c) < 32 for c in slide_id))
    if not bad:
        base = root.resolve()
        target = (base / name).resolve()
        bad = target.parent != base
    if bad:
        raise ExportError(f"{root}: slide id {slide_id!r} (from the input data) is not a safe file name; it would "
                          "be written outside the output folder, so it is refused")
    return root / name


def require_finite(path: str | os.PathLike[str], scores: TileScores | None,
                   prediction: SlidePrediction | None = None) -> None:
    """Refuse to export scores or a slide call holding NaN or infinite values.

    Raises:
        ExportError: naming the output, the slide and how many tiles are affected.
    """
    if scores is not None:
        ok = np.asarray(np.isfinite(np.asarray(scores.probs, dtype=np.float64)).all(axis=1), dtype=bool)
        if not ok.all():
            raise ExportError(f"{path}: {int((~ok).sum())} of {len(ok)} tiles of slide {scores.slide_id!r} have "
                              "NaN or infinite scores (a diverged model?); nothing exported")
    if prediction is not None and not all(np.isfinite(float(v)) for v in prediction.probs.values()):
        raise ExportError(f"{path}: the slide call of {prediction.slide_id!r} has NaN or infinite scores; nothing "
                          "exported")
