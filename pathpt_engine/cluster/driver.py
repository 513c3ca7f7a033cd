"""The driver job: schedule slides onto Ray workers, keep the ledger, report progress, obey cancel.

Largest slides first, `in_flight` calls queued per actor. A slide whose call fails because its worker died is
retried on the restarted worker (the other slides queued on that worker go back to the queue without counting an
attempt); after `max_attempts` deaths it is `crashed`. A slide running past `slide_timeout_s` is `timeout` and its
worker is killed and restarted. Cancel kills the workers within seconds; the temp files they leave are removed by
the next run (under the run lock), and finished slides are skipped then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..features.extract import ExtractOptions
from ..features.ledger import Ledger, LedgerEntry
from ..jobs import Eta, Job, Progress, check_cancel
from .base import ClusterError, ClusterOptions, import_ray
from .lock import RunLock, clean_temp_files
from .netns import require_private_network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSummary:
    """What a cluster run did."""

    backbone: str
    workers: tuple[dict[str, Any], ...]
    results: tuple[LedgerEntry, ...]
    startup_s: float
    run_s: float
    tiles: int
    removed_temp_files: int = 0

    @property
    def tiles_per_s(self) -> float:
        return self.tiles / self.run_s if self.run_s > 0 else 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


def extract_cluster(paths: Sequence[str | Path], out_dir: str | Path, opts: ExtractOptions = ExtractOptions(),
                    copts: ClusterOptions = ClusterOptions(),
                    cancel: threading.Event | None = None) -> Job[ClusterSummary]:
    """Job: extract every slide on Ray workers (same outputs as `extract_slides`); returns a `ClusterSummary`.

    Raises:
        ClusterError: Ray missing, network not private, folder locked, or every worker died.
        ConfigError: two slides share a name.
        JobCancelled: `cancel` was set (workers are killed; finished slides stay valid).
    """
    slides = _order(paths)
    ray = import_ray()
    require_private_network(copts.allow_network)
    out = Path(out_dir)
    t0 = time.monotonic()
    with RunLock(out):
        removed = clean_temp_files(out)
        owned = _connect(ray, copts)
        pool: _Pool | None = None
        try:
            yield Progress("start", 0, None, message=f"starting {opts.backbone} workers")
            pool = _Pool(ray, opts, out, copts)
            yield from pool.start(cancel)
            startup = time.monotonic() - t0
            results, run_s = yield from _schedule(pool, slides, Ledger(out), opts, copts, cancel)
            tiles = sum(r.n_tiles for r in results if r.status == "done")
            return ClusterSummary(opts.backbone, tuple(pool.infos), tuple(results), startup, run_s, tiles,
                                  len(removed))
        finally:
            if pool is not None:
                pool.kill_all()
            if owned:
                ray.shutdown()


def _order(paths: Sequence[str | Path]) -> list[Path]:
    """Unique slide names, largest file first (a missing file sorts last and fails in its worker)."""
    slides = [Path(p) for p in paths]
    seen: dict[str, Path] = {}
    for p in slides:
        if seen.setdefault(p.stem, p) != p:
            raise ConfigError(f"{p}: same slide name {p.stem!r} as {seen[p.stem]}; outputs would collide")

    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return -1

    return sorted(slides, key=size, reverse=True)


def _connect(ray: Any, copts: ClusterOptions) -> bool:
    """Start or join Ray; True when this call started it (and must shut it down)."""
    if ray.is_initialized():
        return False
    kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    try:
        if copts.address == "local":
            ray.init(num_cpus=copts.num_cpus, num_gpus=copts.num_gpus, **kw)
        else:
            ray.init(address=copts.address, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot start or join Ray at {copts.address!r}: {exc}") from exc
    return True


@dataclass
class _Pool:
    """The actors, their queued calls (submission order = execution order) and when each queue's head began."""

    ray: Any
    opts: ExtractOptions
    out: Path
    copts: ClusterOptions
    actors: list[Any] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from .actor import worker_class

        res = self.ray.cluster_resources()
        gpus = int(res.get("GPU", 0))
        n = self.copts.num_workers or max(1, gpus)
        per_gpu = 1 if gpus else 0
        cls = worker_class(self.copts)
        self.actors = [cls.options(num_gpus=per_gpu, num_cpus=self.copts.cpus_per_worker,
                                   max_restarts=self.copts.max_restarts, max_task_retries=0)
                       .remote(self.opts, str(self.out), self.copts, i) for i in range(n)]
        self.infos = [{} for _ in self.actors]
        self._starting = {a.info.remote(): i for i, a in enumerate(self.actors)}
        self.queues: list[deque[Any]] = [deque() for _ in self.actors]
        self.head_since = [0.0] * len(self.actors)
        self.deaths = [0] * len(self.actors)
        self.alive = [True] * len(self.actors)
        self.ready = [True] * len(self.actors)
        self.probes: dict[Any, int] = {}

    def start(self, cancel: threading.Event | None) -> Job[None]:
        """Job: wait until every actor has loaded the backbone (cancellable)."""
        n = len(self.actors)
        while self._starting:
            check_cancel(cancel)
            ready, _ = self.ray.wait(list(self._starting), num_returns=len(self._starting),
                                     timeout=self.copts.poll_s)
            for ref in ready:
                i = self._starting.pop(ref)
                try:
                    self.infos[i] = self.ray.get(ref)
                except self.ray.exceptions.RayError as exc:
                    last = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    raise ClusterError(f"workers could not load {self.opts.backbone}: {last}") from exc
            if ready:
                yield Progress("start", n - len(self._starting), n, message=f"{self.opts.backbone} workers ready")

    def usable(self, i: int) -> bool:
        return self.alive[i] and self.ready[i]

    def died(self, i: int) -> None:
        """Actor i died (or was killed): use it again once a probe shows it restarted."""
        self.deaths[i] += 1
        self.ready[i] = False
        if self.deaths[i] > self.copts.max_restarts:
            self.alive[i] = False
            log.warning("worker %d died %d times; not used again", i, self.deaths[i])
        elif i not in self.probes.values():
            self.probes[self.actors[i].info.remote()] = i

    def settle_probes(self, ready_refs: list[Any]) -> None:
        """Mark restarted actors usable; probe again those still restarting."""
        for ref in ready_refs:
            i = self.probes.pop(ref, None)
            if i is None:
                continue
            try:
                self.infos[i] = self.ray.get(ref)
                self.ready[i] = True
            except self.ray.exceptions.ActorUnavailableError:
                self.probes[self.actors[i].info.remote()] = i
            except self.ray.exceptions.RayError as exc:
                self.alive[i] = False
                log.warning("worker %d did not come back: %s", i, exc)

    def submit(self, i: int, path: Path) -> Any:
        if self.copts.stage_dir is not None:
            self.actors[i].stage.remote(str(path))
        ref = self.actors[i].extract.remote(str(path))
        if not self.queues[i]:
            self.head_since[i] = time.monotonic()
        self.queues[i].append(ref)
        return ref

    def pop(self, i: int, ref: Any) -> None:
        """Forget a finished call (the next one queued on that actor starts now)."""
        if self.queues[i] and self.queues[i][0] == ref:
            self.head_since[i] = time.monotonic()
        self.queues[i].remove(ref)

    def restart(self, i: int) -> list[Any]:
        """Kill actor i (Ray restarts it) and return the calls that were queued on it."""
        refs = list(self.queues[i])
        self.queues[i].clear()
        self.ray.kill(self.actors[i], no_restart=False)
        return refs

    def kill_all(self) -> None:
        for a in self.actors:
            try:
                self.ray.kill(a, no_restart=True)
            except Exception as exc:  # noqa: BLE001 - best effort on shutdown; a dead actor is fine
                log.debug("kill: %s", exc)


@dataclass
class _Run:
    """Scheduling state of one run."""

    queue: deque[Path]
    total: int
    flights: dict[Any, tuple[int, Path]] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    results: list[LedgerEntry] = field(default_factory=list)
    tiles: int = 0


def _schedule(pool: _Pool, slides: list[Path], ledger: Ledger, opts: ExtractOptions, copts: ClusterOptions,
              cancel: threading.Event | None) -> Job[tuple[list[LedgerEntry], float]]:
    run = _Run(deque(slides), len(slides))
    eta, last_yield = Eta(), 0.0
    t0 = time.monotonic()
    yield Progress("extract", 0, run.total, message=f"{run.total} slides on {len(pool.actors)} workers")
    while run.queue or run.flights:
        check_cancel(cancel)
        _fill(pool, run)
        if not run.flights and not pool.probes:
            raise ClusterError(f"every worker died ({sum(pool.deaths)} deaths); see {ledger.path}")
        refs = [*run.flights, *pool.probes]
        ready, _ = pool.ray.wait(refs, num_returns=len(refs), timeout=copts.poll_s)
        pool.settle_probes(ready)
        new = [_collect(pool, run, ref, ledger, opts, copts) for ref in ready]
        new += _check_timeouts(pool, run, ledger, opts, copts)
        finished = [e for e in new if e is not None]
        now = time.monotonic()
        if finished or now - last_yield > 1.0:
            done = len(run.results)
            msg = finished[-1].slide if finished else ""
            yield Progress("extract", done, run.total, message=msg, metrics={
                "tiles_per_s": run.tiles / (now - t0) if now > t0 else 0.0, "eta_s": eta.eta_s(done, run.total)
                or 0.0, "failed": float(sum(r.status in ("failed", "crashed", "timeout") for r in run.results))})
            last_yield = now
    return run.results, time.monotonic() - t0


def _fill(pool: _Pool, run: _Run) -> None:
    for _ in range(pool.copts.in_flight):
        for i in range(len(pool.actors)):
            if run.queue and pool.usable(i) and len(pool.queues[i]) < pool.copts.in_flight:
                path = run.queue.popleft()
                run.flights[pool.submit(i, path)] = (i, path)


def _collect(pool: _Pool, run: _Run, ref: Any, ledger: Ledger, opts: ExtractOptions,
             copts: ClusterOptions) -> LedgerEntry | None:
    """Turn one finished call into a ledger entry (None when the slide went back to the queue)."""
    if ref not in run.flights:
        return None
    i, path = run.flights[ref]
    try:
        r = pool.ray.get(ref)
    except pool.ray.exceptions.RayActorError as exc:
        return _worker_died(pool, run, i, ledger, opts, copts, exc)
    except pool.ray.exceptions.RayTaskError as exc:
        r = {"slide": path.stem, "path": str(path), "status": "failed", "reason": f"worker error: {exc}"}
    del run.flights[ref]
    pool.pop(i, ref)
    extra = {k: r[k] for k in ("output", "encode_calls", "pid", "gpu_ids") if k in r}
    entry = LedgerEntry(slide=r["slide"], status=r["status"], backbone=opts.backbone, path=str(path),
                        reason=r.get("reason", ""), n_tiles=int(r.get("n_tiles", 0)),
                        seconds=round(float(r.get("seconds", 0.0)), 3),
                        attempt=run.attempts.get(path.stem, 0) + 1, extra=extra)
    if entry.status == "done":
        run.tiles += entry.n_tiles
    return _final(run, ledger, entry)


def _worker_died(pool: _Pool, run: _Run, i: int, ledger: Ledger, opts: ExtractOptions, copts: ClusterOptions,
                 exc: Exception) -> LedgerEntry | None:
    """Worker i died: the slide it was running counts an attempt; the ones queued behind it go back unharmed."""
    refs = list(pool.queues[i])
    pool.queues[i].clear()
    paths = [run.flights.pop(r)[1] for r in refs]
    run.queue.extendleft(reversed(paths[1:]))
    path, was_ready = paths[0], pool.ready[i]
    if was_ready:
        pool.died(i)
    if not was_ready:  # it was already known dead: this call never ran
        run.queue.appendleft(path)
        return None
    attempt = run.attempts.get(path.stem, 0) + 1
    reason = f"worker died ({type(exc).__name__})"
    if attempt >= copts.max_attempts:
        return _final(run, ledger, LedgerEntry(slide=path.stem, status="crashed", backbone=opts.backbone,
                                               path=str(path), reason=reason, attempt=attempt))
    run.attempts[path.stem] = attempt
    ledger.append(LedgerEntry(slide=path.stem, status="retry", backbone=opts.backbone, path=str(path),
                              reason=reason, attempt=attempt))
    run.queue.appendleft(path)
    return None


def _check_timeouts(pool: _Pool, run: _Run, ledger: Ledger, opts: ExtractOptions,
                    copts: ClusterOptions) -> list[LedgerEntry | None]:
    if copts.slide_timeout_s is None:
        return []
    out: list[LedgerEntry | None] = []
    now = time.monotonic()
    for i, q in enumerate(pool.queues):
        if not q or now - pool.head_since[i] <= copts.slide_timeout_s:
            continue
        head = q[0]
        path = run.flights[head][1]
        for ref in pool.restart(i):
            _, p = run.flights.pop(ref)
            if ref != head:
                run.queue.appendleft(p)
        pool.died(i)
        out.append(_final(run, ledger, LedgerEntry(
            slide=path.stem, status="timeout", backbone=opts.backbone, path=str(path),
            reason=f"still running after {copts.slide_timeout_s:g} s; worker {i} restarted")))
    return out


def _final(run: _Run, ledger: Ledger, entry: LedgerEntry) -> LedgerEntry:
    entry = ledger.append(entry)
    run.results.append(entry)
    log.info("%s: %s %s", entry.slide, entry.status, entry.reason)
    return entry

