"""Jobs: long engine work as generators of progress events, cancellable at every yield.

A job is a generator that yields `Progress` events and returns its result::

    def tile_slides(paths, cancel=None) -> Job[list[Path]]:
        for i, p in enumerate(paths):
            check_cancel(cancel)
            ...
            yield Progress("tile", i + 1, len(paths), message=p.name)
        return outputs

`run_job` drives a job to completion (the CLI passes a progress-bar callback; the GUI's one worker does the same
off the GUI thread). Cancellation is a `threading.Event`; jobs call `check_cancel` between units of work, which
raises `JobCancelled`. The engine knows nothing about threads beyond that event, and nothing about Qt.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import JobCancelled

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One progress event.

    Attributes:
        stage: short machine name of the current stage ("tile", "extract", "train", ...).
        done: units finished in this stage.
        total: units in this stage, or None if unknown.
        message: human-readable detail (file name, epoch, ...).
        metrics: numbers worth plotting or logging (loss terms, tiles/s, accuracy).
    """

    stage: str
    done: int
    total: int | None = None
    message: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.done < 0:
            raise ValueError(f"Progress.done must be >= 0, got {self.done}")
        if self.total is not None and self.total < 0:
            raise ValueError(f"Progress.total must be >= 0, got {self.total}")

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


Job = Generator[Progress, None, T]


def check_cancel(cancel: threading.Event | None) -> None:
    """Raise `JobCancelled` if `cancel` is set."""
    if cancel is not None and cancel.is_set():
        raise JobCancelled("cancelled by user")


def run_job(
    job: Generator[Progress, None, T],
    on_progress: Callable[[Progress], Any] | None = None,
    cancel: threading.Event | None = None,
) -> T:
    """Drive `job` to completion and return its result.

    Args:
        job: the generator.
        on_progress: called with every event (e.g. a progress bar update).
        cancel: if set between events, the generator is closed and `JobCancelled` raised.
    """
    try:
        while True:
            event = next(job)
            if on_progress is not None:
                on_progress(event)
            if cancel is not None and cancel.is_set():
                job.close()
                raise JobCancelled("cancelled by user")
    except StopIteration as stop:
        return stop.value


def collect(job: Generator[Progress, None, T]) -> tuple[T, list[Progress]]:
    """Run a job and return (result, events). Handy in tests."""
    events: list[Progress] = []
    result = run_job(job, events.append)
    return result, events


class Eta:
    """Rate and ETA estimate from (done, total) pairs, smoothed over the whole run."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def rate(self, done: int) -> float:
        dt = time.monotonic() - self._t0
        return done / dt if dt > 0 else 0.0

    def eta_s(self, done: int, total: int | None) -> float | None:
        r = self.rate(done)
        if total is None or r <= 0:
            return None
        return max(0.0, (total - done) / r)
