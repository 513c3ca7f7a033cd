"""Scale-out on Ray: cohort extraction with one actor per GPU, a run lock, a ledger and a driver job.

Optional extra (`pip install pathpt[cluster]`); nothing here imports Ray at module import time, and the
single-process path (`pathpt_engine.features.extract.extract_slides`) stays the default. Every Ray start is guarded
by `pathpt_engine.cluster.netns`: a local Ray listens on all interfaces, so on machines without a real cluster it
must run inside a private network namespace with only loopback up.

Modules:
    base: `ClusterOptions`, `ClusterError`, `import_ray`.
    netns: the network-namespace guard.
    ledger: `extract-ledger.jsonl`, one line per slide result, read by `pathpt extract --status`.
    lock: one run lock per output folder; cleanup of temp files left by killed workers.
    staging: optional copy of a slide to local disk before it is read.
    actor: the per-GPU worker holding the backbone.
    driver: `extract_cluster`, the engine job that schedules slides onto the workers.
    tasks: `evaluate_cluster`, one Ray task per (method, shots, fold) of the evaluation protocol.
    predict: `predict_cluster`, cohort prediction with a trained run, slides in chunks as Ray tasks.
    cli: the `--cluster`/`--status`/`--stage-dir` wiring of `pathpt extract`, `predict` and `evaluate`.
"""

from __future__ import annotations

from .base import ClusterError, ClusterOptions, ray_available

__all__ = ["ClusterError", "ClusterOptions", "extract_cluster", "ray_available"]


def __getattr__(name: str) -> object:
    if name == "extract_cluster":
        from .driver import extract_cluster

        return extract_cluster
    raise AttributeError(name)
