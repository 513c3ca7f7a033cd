"""A run's output folder: `tiles/<slide_id>.h5` per called slide and `predictions.csv`, every file atomic.

Slide ids come from the data, so each is checked (`export.guards.safe_child`) before anything is written:
one that would leave the folder is refused with one line.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ..export.guards import safe_child
from ..export.scores import write_scores_h5
from ..export.tables import write_predictions_csv
from ..results import SlidePrediction, TileScores

TILES = "tiles"
PREDICTIONS_CSV = "predictions.csv"


def write_tile_scores(out: str | os.PathLike[str], pred: SlidePrediction, scores: TileScores) -> Path:
    """Write one slide's `<out>/tiles/<slide_id>.h5` (tile scores + its call), atomically."""
    folder = Path(out) / TILES
    path = safe_child(folder, pred.slide_id, ".h5")
    folder.mkdir(parents=True, exist_ok=True)
    return write_scores_h5(path, scores, pred)


def write_run_outputs(out: str | os.PathLike[str], results: Sequence[tuple[SlidePrediction, TileScores | None]],
                      class_names: Sequence[str]) -> Path:
    """Write `tiles/<id>.h5` for every result with scores (None: already written, e.g. by a Ray task) and
    `predictions.csv` (one row per call, columns in `class_names` order); returns the CSV path."""
    out = Path(out)
    for pred, _ in results:
        safe_child(out / TILES, pred.slide_id, ".h5")  # every id is checked before anything is written
    for pred, scores in results:
        if scores is not None:
            write_tile_scores(out, pred, scores)
    (out / TILES).mkdir(parents=True, exist_ok=True)
    return write_predictions_csv(out / PREDICTIONS_CSV, [p for p, _ in results], list(class_names))


def output_lines(out: str | os.PathLike[str], calls: Sequence[SlidePrediction], empty: Sequence[str] = ()
                 ) -> list[str]:
    """What the CLI prints after a run: `slide_id<TAB>call` per slide, the files written, then one line per
    slide without a call."""
    out = Path(out)
    return [*(f"{p.slide_id}\t{p.predicted}" for p in calls),
            f"wrote {out / PREDICTIONS_CSV} and {len(calls)} tile score files in {out / TILES}",
            *(f"{sid}\tno tissue tiles (no call)" for sid in empty)]
