"""Cohort prediction with a trained run on Ray: slides in chunks, one task per chunk.

Each task rebuilds the run once per Ray worker process (cached), reads its slides' feature files from shared
storage, writes `tiles/<slide_id>.h5` atomically (the same `pathpt_engine.workflow` predict job and writer as the
single-process `pathpt predict`) and returns the slide calls; the driver writes `predictions.csv`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from ..features.ledger import Ledger
from ..jobs import Job, Progress
from ..results import SlidePrediction, TileScores
from .base import ClusterOptions, import_ray
from .lock import RunLock
from .netns import require_private_network
from .tasks import cache_key, placement, ray_session, remote_task, run_tasks, task_device

log = logging.getLogger(__name__)

PREDICT_LEDGER = "predict-ledger.jsonl"
_RUNS: dict[tuple[str, ...], Any] = {}


def predict_chunk(run_dir: str, weights: str | None, paths: list[str], out_dir: str,
                  device: str = "auto") -> dict[str, Any]:
    """Predict some slides in this process (the body of the Ray task): `pathpt_engine.workflow.predict`, each
    slide's `tiles/<id>.h5` written as it is called; returns the calls and the ids of slides without tiles."""
    from ..jobs import run_job
    from ..pathpt import predictor
    from ..pathpt.data import load_slide
    from ..workflow import Predictions, model_probs, predict, write_tile_scores

    device = task_device(device)
    key = cache_key(run_dir, str(weights), device)
    if key not in _RUNS:
        _RUNS[key] = predictor.load_run(run_dir, weights=weights, device=device)
    run = _RUNS[key]
    slides = [load_slide(p) for p in paths]

    def write(pred: SlidePrediction, scores: TileScores) -> None:
        write_tile_scores(out_dir, pred, scores)

    found = run_job(predict(run.classset, slides, model_probs(run.model), on_result=write)) if slides \
        else Predictions()
    return {"predictions": found.calls, "empty": found.empty,
            "summary": {"slides": len(found.calls), "device": device, **placement()}}


def predict_cluster(run_dir: str | Path, features: list[Path], out_dir: str | Path, weights: str | Path | None,
                    copts: ClusterOptions = ClusterOptions(), chunk: int = 16,
                    cancel: threading.Event | None = None,
                    device: str = "auto") -> Job[tuple[list[SlidePrediction], list[str]]]:
    """Job: predict every feature file on Ray (the tasks write the tile scores); returns the calls in input
    order and the ids of the slides without tiles (no call). `device` as `--device`
    ("cpu" keeps every task on the CPU; see `tasks.task_device`).

    Raises:
        ClusterError: Ray missing or cannot start, network not private, folder locked, a task failed.
        JobCancelled: `cancel` was set.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    import_ray()
    require_private_network(copts.allow_network)
    out = Path(out_dir)
    chunks = [[str(p) for p in features[i : i + chunk]] for i in range(0, len(features), chunk)]
    with RunLock(out):
        yield Progress("predict", 0, len(chunks), message=f"{len(features)} slides in {len(chunks)} tasks")
        with ray_session(copts):
            task = remote_task(predict_chunk, copts, device)
            w = None if weights is None else str(weights)
            pending = {task.remote(str(run_dir), w, c, str(out), device): f"chunk{i:05d}"
                       for i, c in enumerate(chunks)}
            results = yield from run_tasks(pending, Ledger(out, name=PREDICT_LEDGER), "predict", len(chunks),
                                           "", copts, cancel)
    return ([p for key in sorted(results) for p in results[key]["predictions"]],
            [sid for key in sorted(results) for sid in results[key].get("empty", [])])
