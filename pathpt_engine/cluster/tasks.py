"""The evaluation protocol on Ray: one task per (method, shots, fold), each writing its own result file.

Units whose result file exists are skipped (before anything starts), so an interrupted evaluation resumes, on a
cluster or in one process alike. A task loads the backbone once per Ray worker process (cached) and only the
feature files of its fold from shared storage, runs `evaluate_fold` (the same code as the single-process
protocol) and writes `runs/<method>/<k>shot/fold<i>.json` atomically. Ray retries a task whose worker died
(`max_attempts`); one that raised is `failed` with its message. The driver then writes the results table.

Devices: the requested device (`--device`) is honoured: "cpu" runs on the CPU even where Ray assigns GPUs (and
then no GPU is requested), "cuda" and "auto" use the GPU Ray assigned to the task. GPU tasks run with
`max_calls=1` (Ray only defaults to that when `num_gpus` is given to the decorator, not to `.options`), so a
worker process never carries its first GPU's CUDA context into a task assigned another GPU; the caches are keyed
by the assigned GPU ids as well.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

try:
    import ray
except ImportError:  # the optional extra is missing: importable, not usable (import_ray raises)
    ray = None  # type: ignore[assignment]

from ..features.ledger import Ledger, LedgerEntry
from ..jobs import Job, Progress, check_cancel
from .base import ClusterError, ClusterOptions, import_ray
from .driver import _connect
from .lock import RunLock, clean_temp_files
from .netns import require_private_network

log = logging.getLogger(__name__)

EVAL_LEDGER = "evaluate-ledger.jsonl"
_BACKBONES: dict[tuple[str, ...], Any] = {}


@dataclass(frozen=True)
class EvalInputs:
    """What every evaluation task reads (paths must be the same on every node)."""

    backbone: str
    weights: Path | None
    classes: str
    features: Path
    masks: Path | None = None


def task_device(requested: str) -> str:
    """The torch device of this task for the requested one ("auto", "cpu", "cuda[:i]"): "cpu" stays on the CPU
    even with a GPU assigned; "cuda"/"auto" take the GPU Ray assigned (CUDA_VISIBLE_DEVICES holds only it, so it
    is cuda:0 in this process); "cuda" without an assigned GPU is an error, "auto" falls back to the CPU."""
    import torch

    if requested == "cpu":
        return "cpu"
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return "cuda"
    if requested.startswith("cuda"):
        raise ClusterError(f"--device {requested}: Ray assigned this task no GPU (ids {ray.get_gpu_ids()}, "
                           f"torch sees {torch.cuda.device_count()} CUDA devices)")
    return "cpu"


def cache_key(*parts: str) -> tuple[str, ...]:
    """A worker cache key: the given parts plus the GPU ids Ray assigned to this task."""
    return (*parts, ",".join(str(g) for g in ray.get_gpu_ids()))


def _backbone(name: str, weights: Path | None, device: str) -> Any:
    from ..backbones.registry import load_backbone

    key = cache_key(name, str(weights), device)
    if key not in _BACKBONES:
        _BACKBONES[key] = load_backbone(name, weights, device).freeze()
    return _BACKBONES[key]


def run_eval_unit(inputs: EvalInputs, cfg: Any, method: str, shots: int, fold: Any, out_dir: str) -> dict:
    """One (method, shots, fold) in this process (the body of the Ray task); returns a short record."""
    from ..evaluate import FoldRunner, evaluate_fold
    from ..jobs import run_job
    from ..pathpt.data import load_labelled
    from ..prompts.classsets import load_classset

    device = task_device(cfg.pathpt.device)
    cfg = replace(cfg, pathpt=replace(cfg.pathpt, device=device))
    cs = load_classset(inputs.classes)
    ids = sorted({*fold.train, *fold.val, *fold.test})
    slides = {s.slide_id: s for s in load_labelled(inputs.features, {}, ids)}
    runner = FoldRunner(_backbone(inputs.backbone, inputs.weights, device), cs, cfg, None)
    rep = run_job(evaluate_fold(runner, slides, method, shots, fold, out_dir, inputs.masks))
    return {"summary": {"bacc": float(rep["bacc"]), "seconds": float(rep["seconds"]), "device": device,
                        **placement()}}


def placement() -> dict[str, Any]:
    """Where this task ran: pid, CUDA_VISIBLE_DEVICES and Ray's GPU ids (the ledger and gpu_check record them)."""
    import os

    return {"pid": os.getpid(), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids())}


def evaluate_cluster(inputs: EvalInputs, folds_by_shots: Mapping[int, list[Any]], out_dir: str | Path, cfg: Any,
                     copts: ClusterOptions = ClusterOptions(),
                     cancel: threading.Event | None = None) -> Job[dict[str, Any]]:
    """Job: every (method, shots, fold) not yet done as a Ray task, then the results table (`summarize`).

    Raises:
        ClusterError: Ray missing or cannot start, network not private, folder locked.
        JobCancelled: `cancel` was set (running tasks are cancelled; finished folds stay).
    """
    from ..evaluate import fold_result_path, summarize

    import_ray()
    require_private_network(copts.allow_network)
    out = Path(out_dir)
    units = [(m, k, f) for k, folds in sorted(folds_by_shots.items()) for f in folds for m in cfg.methods]
    todo = [u for u in units if not fold_result_path(out, u[0], u[1], u[2].index).is_file()]
    with RunLock(out):
        clean_temp_files(out)
        yield Progress("evaluate", len(units) - len(todo), len(units), message=f"{len(todo)} tasks to run")
        if todo:
            with ray_session(copts):
                yield from _run_tasks(inputs, todo, len(units), out, cfg, copts, cancel)
    return summarize(out, cfg.methods, sorted(folds_by_shots), grounded=inputs.masks is not None)


@contextmanager
def ray_session(copts: ClusterOptions) -> Iterator[None]:
    """Start or join Ray for the block (shut down on exit only if this block started it)."""
    owned = _connect(ray, copts)
    try:
        yield
    finally:
        if owned:
            ray.shutdown()


def _run_tasks(inputs: EvalInputs, todo: list[tuple[str, int, Any]], total: int, out: Path, cfg: Any,
               copts: ClusterOptions, cancel: threading.Event | None) -> Job[dict[str, Any]]:
    task = remote_task(run_eval_unit, copts, cfg.pathpt.device)
    pending = {task.remote(inputs, cfg, m, k, f, str(out)): f"{m}/{k}shot/fold{f.index}" for m, k, f in todo}
    return (yield from run_tasks(pending, Ledger(out, name=EVAL_LEDGER), "evaluate", total, inputs.backbone,
                                 copts, cancel))


def remote_task(fn: Any, copts: ClusterOptions, device: str = "auto") -> Any:
    """`fn` as a Ray remote function with `task_resources` (given to `ray.remote` itself: Ray refuses `max_calls`
    in `.options()`)."""
    return ray.remote(**task_resources(copts, device))(fn)


def task_resources(copts: ClusterOptions, device: str = "auto") -> dict[str, Any]:
    """Ray task options: a GPU per task when the cluster has GPUs and `device` is not "cpu" (then a fresh worker
    process per task, `max_calls=1`), CPUs, retries after a worker crash."""
    gpus = int(ray.cluster_resources().get("GPU", 0)) if device != "cpu" else 0
    opts = {"num_gpus": 1 if gpus else 0, "num_cpus": copts.cpus_per_worker, "max_retries": copts.max_attempts - 1}
    if gpus:
        opts["max_calls"] = 1
    return opts


def run_tasks(pending: dict[Any, str], ledger: Ledger, stage: str, total: int, backbone: str,
              copts: ClusterOptions, cancel: threading.Event | None) -> Job[dict[str, Any]]:
    """Job: wait for submitted Ray tasks (ref -> key), log each in the ledger; returns key -> task result.

    Raises:
        ClusterError: a task failed or crashed (every other task still ran to the end).
        JobCancelled: `cancel` was set (unfinished tasks are cancelled).
    """
    done, results, failed = total - len(pending), {}, []
    try:
        while pending:
            check_cancel(cancel)
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=copts.poll_s)
            for ref in ready:
                key = pending.pop(ref)
                entry, value = _entry(ref, key, backbone)
                ledger.append(entry)
                if entry.status == "done":
                    results[key] = value
                else:
                    failed.append(entry)
                done += 1
                metrics = {k: float(v) for k, v in (entry.extra or {}).items() if isinstance(v, (int, float))}
                yield Progress(stage, done, total, message=key, metrics=metrics)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
    if failed:
        raise ClusterError(f"{len(failed)} {stage} task(s) failed, e.g. {failed[0].slide}: {failed[0].reason} "
                           f"(see {ledger.path})")
    return results


def _entry(ref: Any, key: str, backbone: str) -> tuple[LedgerEntry, Any]:
    try:
        r = ray.get(ref)
    except ray.exceptions.WorkerCrashedError as exc:
        return LedgerEntry(slide=key, status="crashed", backbone=backbone, reason=str(exc).splitlines()[0]), None
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if isinstance(getattr(exc, "cause", None), Exception) else exc
        return LedgerEntry(slide=key, status="failed", backbone=backbone, reason=str(cause).splitlines()[-1]), None
    summary = r.get("summary", {}) if isinstance(r, dict) else {}
    return LedgerEntry(slide=key, status="done", backbone=backbone, seconds=float(summary.get("seconds", 0.0)),
                       extra=summary or None), r
