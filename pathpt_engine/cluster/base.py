"""Cluster options, the cluster error, and the lazy Ray import."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ..errors import ClusterError

__all__ = ["FAULTS", "ClusterError", "ClusterOptions", "import_ray", "ray_available"]

FAULTS = ("crash", "hang", "slow")


def ray_available() -> bool:
    """Whether the optional `ray` package is installed."""
    return importlib.util.find_spec("ray") is not None


def import_ray() -> ModuleType:
    """Import Ray or raise `ClusterError` telling how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("--cluster needs Ray: pip install 'pathpt[cluster]' (or pip install ray)") from exc
    return ray


@dataclass(frozen=True)
class ClusterOptions:
    """How to run on Ray.

    Attributes:
        address: "local" (start Ray here on all local GPUs/CPUs) or "auto" (join the running cluster or job);
            any other value is passed to `ray.init(address=...)`.
        num_workers: actors to start (None: one per GPU of the cluster, or one on a CPU-only cluster).
        cpus_per_worker: CPUs reserved per actor (tile decode threads and CPU torch threads).
        in_flight: slides queued per actor (2: the next slide waits while the current one encodes).
        max_attempts: a slide whose worker dies this many times is `crashed` (not retried again).
        max_restarts: restarts allowed per actor (Ray reloads the backbone in the new process).
        slide_timeout_s: a slide running longer is `timeout` and its worker is restarted (None: no limit).
        stage_dir: copy each slide to this local folder before reading its tiles (None: read in place).
        allow_network: start or join Ray although the process can reach other hosts (real clusters only).
        num_cpus: CPUs of a local Ray (None: all); ignored when joining a cluster.
        num_gpus: GPUs of a local Ray (None: all visible); tests pass logical GPUs on CPU machines.
        poll_s: how often the driver wakes up to report progress and check cancel/timeouts.
        fault_injection: testing only, (slide name, "crash" | "hang" | "slow") pairs the actor acts out.
    """

    address: str = "local"
    num_workers: int | None = None
    cpus_per_worker: int = 2
    in_flight: int = 2
    max_attempts: int = 2
    max_restarts: int = 4
    slide_timeout_s: float | None = 3600.0
    stage_dir: Path | None = None
    allow_network: bool = False
    num_cpus: int | None = None
    num_gpus: int | None = None
    poll_s: float = 0.2
    fault_injection: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("ClusterOptions: address must be 'local', 'auto' or a Ray address")
        if self.num_workers is not None and self.num_workers < 1:
            raise ValueError(f"ClusterOptions: num_workers must be >= 1, got {self.num_workers}")
        if self.cpus_per_worker < 0 or self.in_flight < 1 or self.max_attempts < 1 or self.max_restarts < 0:
            raise ValueError("ClusterOptions: cpus_per_worker >= 0, in_flight >= 1, max_attempts >= 1 and "
                             "max_restarts >= 0 are required")
        if self.slide_timeout_s is not None and not self.slide_timeout_s > 0:
            raise ValueError(f"ClusterOptions: slide_timeout_s must be > 0, got {self.slide_timeout_s}")
        if not self.poll_s > 0:
            raise ValueError(f"ClusterOptions: poll_s must be > 0, got {self.poll_s}")
        for _, fault in self.fault_injection:
            if fault not in FAULTS:
                raise ValueError(f"ClusterOptions: unknown fault {fault!r}; use one of {', '.join(FAULTS)}")
