"""Background tile reads: a small pool of reader threads fed by a replaceable, ordered request list.

Flow (architecture style 5): the GUI thread freezes a request (an ordered tuple of `TileKey`) and hands it to
`TileLoader.request`, which *replaces* whatever was still queued (QuPath-style) and bumps a generation counter.
Worker threads pop keys in order, skip keys that are no longer wanted, read through the engine's `SlideReader`
(native-tile fast path when the level has one) and convert to a `QImage` off the GUI thread. Finished reads are
delivered in batches: a worker appends its result to an outbox and posts one queued wake-up only when the outbox
was empty, so the GUI thread handles every result that landed since its last turn in one go (`batch_loaded`,
after one `loaded` per result) instead of paying one queued event and one settle check per tile. The GUI thread
then accepts a result only if the key is still wanted; stale results are dropped and never painted. The GUI
thread never waits on a read.

With `threads=0` the loader is synchronous, for tests: no threads; each request or job is read on the GUI thread
in the next event-loop turn (a queued call), and delivered the same way, so a test waits on state (`is_idle`),
never on time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QImage

from pathpt_engine.errors import SlideError
from pathpt_engine.slides.base import SlideReader

from .tiles import TileKey, TileLayout

log = logging.getLogger(__name__)

READER_NICE = 5  # reader threads yield the CPU to the GUI thread (Linux per-thread niceness)


@dataclass(frozen=True)
class TileResult:
    """A finished read: the image (None when the read failed), the request generation, and any error text."""

    key: TileKey
    generation: int
    image: QImage | None
    error: str = ""


@dataclass
class LoaderStats:
    """Counters for tests and benchmarks."""

    reads: int = 0
    errors: int = 0
    skipped: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def array_to_qimage(rgb: np.ndarray) -> QImage:
    """RGB uint8 (h, w, 3) -> an owned QImage in the fast-to-paint RGB32 format."""
    rgb = np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
    h, w = rgb.shape[:2]
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return img.convertToFormat(QImage.Format.Format_RGB32)


def read_view_tile(reader: SlideReader, layout: TileLayout, key: TileKey) -> np.ndarray:
    """Read one tile through the reader: its native tile when the level has a fast path, else a region."""
    info = layout.levels[key.level]
    if info.native:
        return reader.read_native_tile(key.level, key.col, key.row)
    x, y, _, _ = layout.tile_rect(key)
    return reader.read_region((int(round(x)), int(round(y))), key.level, layout.tile_pixel_size(key))


class TileLoader(QObject):
    """Reads tiles of one slide on `threads` background threads; results arrive on the GUI thread."""

    loaded = Signal(object)  # TileResult, emitted on the GUI thread, once per result
    batch_loaded = Signal(object)  # list[TileResult]: the results of one delivery, after their `loaded`
    job_done = Signal(str, object, str)  # name, result, error message
    _wake = Signal()  # worker -> GUI thread (queued): the outbox became non-empty, see _deliver
    _work_soon = Signal()  # synchronous mode (threads=0): run the queued work in the next event-loop turn

    def __init__(self, reader: SlideReader, layout: TileLayout, threads: int = 4, parent: QObject | None = None) -> None:
        super().__init__(parent)
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0: synchronous, for tests), got {threads}")
        self.reader = reader
        self.layout = layout
        self.stats = LoaderStats()
        self._cv = threading.Condition()
        self._pending: deque[TileKey] = deque()
        self._jobs: deque[tuple[str, Callable[[], Any]]] = deque()
        self._wanted: frozenset[TileKey] = frozenset()
        self._inflight: set[TileKey] = set()
        self._outbox: list[TileResult] = []
        self._generation = 0
        self._closing = False
        self._wake.connect(self._deliver, Qt.ConnectionType.QueuedConnection)
        self._work_soon.connect(self._work_now, Qt.ConnectionType.QueuedConnection)
        self.synchronous = threads == 0
        self._threads = [threading.Thread(target=self._work, name=f"pathpt-tiles-{i}", daemon=True)
                         for i in range(threads)]
        for t in self._threads:
            t.start()

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The reader threads (none when synchronous, or once closed)."""
        return tuple(self._threads)

    def request(self, keys: tuple[TileKey, ...] | list[TileKey]) -> int:
        """Replace the queued requests by `keys` (in priority order); returns the new generation."""
        with self._cv:
            self._generation += 1
            self._wanted = frozenset(keys)
            self._pending = deque(k for k in keys if k not in self._inflight)
            self._cv.notify_all()
            generation = self._generation
        if self.synchronous:
            self._work_soon.emit()
        return generation

    def submit_job(self, name: str, fn: Callable[[], Any]) -> None:
        """Run `fn()` ahead of tile reads; `job_done(name, result, error)` fires on the GUI thread."""
        with self._cv:
            self._jobs.append((name, fn))
            self._cv.notify()
        if self.synchronous:
            self._work_soon.emit()

    def is_wanted(self, key: TileKey) -> bool:
        return key in self._wanted

    def is_idle(self) -> bool:
        """True when nothing is queued or being read."""
        with self._cv:
            return not self._pending and not self._inflight and not self._jobs and not self._busy_jobs()

    def _busy_jobs(self) -> bool:
        return self.stats.extra.get("jobs_running", 0) > 0

    def close(self) -> None:
        """Stop the workers and wait for them (a read in progress finishes first)."""
        with self._cv:
            self._closing = True
            self._pending.clear()
            self._jobs.clear()
            self._cv.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []

    def _take(self) -> tuple[str, Any] | None:
        """The next job or wanted tile (jobs first), or None when there is nothing to do; caller holds _cv."""
        if self._jobs:
            self.stats.extra["jobs_running"] = self.stats.extra.get("jobs_running", 0) + 1
            return ("job", self._jobs.popleft())
        while self._pending:
            key = self._pending.popleft()
            if key in self._wanted and key not in self._inflight:
                self._inflight.add(key)
                return ("tile", (key, self._generation))
            self.stats.skipped += 1
        return None

    def _next(self) -> tuple[str, Any] | None:
        with self._cv:
            while not self._closing:
                if (item := self._take()) is not None:
                    return item
                self._cv.wait()
            return None

    def _run(self, item: tuple[str, Any]) -> None:
        kind, payload = item
        if kind == "job":
            self._run_job(*payload)
        else:
            self._read(*payload)

    def _work(self) -> None:
        _lower_thread_priority(READER_NICE)
        while (item := self._next()) is not None:
            self._run(item)

    def _work_now(self) -> None:
        """Synchronous mode, on the GUI thread: everything queued, read in order (deliveries are queued calls)."""
        while True:
            with self._cv:
                item = None if self._closing else self._take()
            if item is None:
                return
            self._run(item)

    def _run_job(self, name: str, fn: Callable[[], Any]) -> None:
        try:
            result, error = fn(), ""
        except SlideError as exc:
            result, error = None, str(exc)
        except Exception as exc:  # a bug in a job must reach the log, not kill the worker
            log.exception("background job %s failed", name)
            result, error = None, f"{type(exc).__name__}: {exc}"
        with self._cv:
            self.stats.extra["jobs_running"] -= 1
        self.job_done.emit(name, result, error)

    def _read(self, key: TileKey, generation: int) -> None:
        image, error = None, ""
        try:
            image = array_to_qimage(read_view_tile(self.reader, self.layout, key))
        except SlideError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - keep the worker alive; the view logs it once and shows a missing tile
            error = f"{type(exc).__name__}: {exc}"
        with self._cv:
            self.stats.reads += 1
            self.stats.errors += bool(error)
            self._outbox.append(TileResult(key, generation, image, error))
            wake = len(self._outbox) == 1  # else a wake-up is already on its way and will take this one too
        if wake:
            self._wake.emit()

    def _deliver(self) -> None:
        """On the GUI thread: hand over every finished read.

        A key stays in flight until here, so a new request cannot read it twice.
        """
        with self._cv:
            batch, self._outbox = self._outbox, []
            for result in batch:
                self._inflight.discard(result.key)
        if not batch:
            return
        for result in batch:
            self.loaded.emit(result)
        self.batch_loaded.emit(batch)


def _lower_thread_priority(nice: int) -> None:
    """Raise this thread's niceness so decoding never starves the event loop (no-op where unsupported)."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except OSError as exc:  # e.g. not permitted in a sandbox: keep the default priority
        log.debug("cannot lower reader thread priority: %s", exc)
