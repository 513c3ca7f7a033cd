"""The one worker that runs engine jobs off the GUI thread.

Engine jobs are generators of `Progress` events that honour a `threading.Event` for cancellation
(`pathpt_engine.jobs`). `JobWorker` drives one job in a `QThread` and reports through signals, which Qt delivers
queued on the GUI thread:

- `progress(Progress, fraction, eta_s)`: throttled (at most ~20 per second, plus every event that carries
  epoch-level metrics and the last event of a stage), with an ETA estimated per stage;
- `finished(result)`: the job's return value;
- `errored(message)`: every exception, as one line (PathPTError messages are already user-facing);
- `cancelled()`: the job stopped at a cancellation point.

Exactly one of finished / errored / cancelled is emitted per run, then `done(name)`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator
from typing import Any

from PySide6.QtCore import QThread, Signal

from pathpt_engine.errors import JobCancelled, PathPTError
from pathpt_engine.jobs import Eta, Progress

log = logging.getLogger(__name__)

JobFactory = Callable[[threading.Event], Generator[Progress, None, Any]]
_MIN_INTERVAL_S = 0.05


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, PathPTError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else 'no detail'}"


class JobWorker(QThread):
    """Runs one engine job at a time in its own thread; `cancel()` asks it to stop, `shutdown()` joins it."""

    progress = Signal(object, object, object)  # Progress, fraction | None, eta seconds | None
    finished_ok = Signal(object)  # the job's result
    errored = Signal(str)
    cancelled = Signal()
    done = Signal(str)  # job name, after any of the three above

    def __init__(self, parent: object | None = None) -> None:
        super().__init__(parent)  # type: ignore[arg-type]
        self._factory: JobFactory | None = None
        self._cancel = threading.Event()
        self._active = False
        self.name = ""

    @property
    def busy(self) -> bool:
        """True from `start_job` until the job's outcome signal is emitted."""
        return self._active

    def start_job(self, name: str, factory: JobFactory) -> None:
        """Start `factory(cancel_event)` in the worker thread.

        Raises:
            RuntimeError: a job is already running (the GUI disables its buttons meanwhile).
        """
        if self._active:
            raise RuntimeError(f"a job is already running ({self.name}); cancel it first")
        self.wait()  # the previous run's thread is past its outcome signal; let it exit
        self.name = name
        self._factory = factory
        self._cancel = threading.Event()
        self._active = True
        self.start(QThread.Priority.LowPriority)

    def cancel(self) -> None:
        """Ask the running job to stop at its next cancellation point."""
        self._cancel.set()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel and join; returns False if the thread did not end within `timeout_ms`."""
        self.cancel()
        ok = self.wait(timeout_ms)
        if not ok:
            log.error("job %s did not stop within %d ms", self.name, timeout_ms)
        return bool(ok)

    def run(self) -> None:  # runs in the worker thread
        factory, cancel, name = self._factory, self._cancel, self.name
        outcome: tuple[Any, tuple[Any, ...]]
        try:
            if factory is None:
                raise RuntimeError(f"worker {name!r} started without a job")
            outcome = (self.finished_ok, (self._drive(factory(cancel), cancel),))
        except JobCancelled:
            log.info("%s cancelled", name)
            outcome = (self.cancelled, ())
        except Exception as exc:  # noqa: BLE001 - every failure reaches the user through `errored`
            log.error("%s failed: %s", name, _one_line(exc), exc_info=not isinstance(exc, PathPTError))
            outcome = (self.errored, (_one_line(exc),))
        self._factory = None
        self._active = False  # receivers of the outcome may start the next job at once
        signal, args = outcome
        signal.emit(*args)
        self.done.emit(name)

    def _drive(self, job: Generator[Progress, None, Any], cancel: threading.Event) -> Any:
        stage, eta, last = None, Eta(), 0.0
        try:
            while True:
                event = next(job)
                if cancel.is_set():  # raise inside the job so its cleanup (run status, temp files) runs
                    job.throw(JobCancelled("cancelled by user"))
                    job.close()
                    raise JobCancelled("cancelled by user")
                if event.stage != stage:
                    stage, eta = event.stage, Eta()
                now = time.monotonic()
                important = "train_acc" in event.metrics or event.total is None or event.done >= (event.total or 0)
                if important or now - last >= _MIN_INTERVAL_S or event.stage == "predict":
                    last = now
                    self.progress.emit(event, event.fraction, eta.eta_s(event.done, event.total))
        except StopIteration as stop:
            return stop.value


def format_eta(seconds: float | None) -> str:
    """'ETA 1:05' style text ('' when unknown)."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"ETA {s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"ETA {s // 60}:{s % 60:02d}"
