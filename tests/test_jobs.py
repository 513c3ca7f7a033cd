from __future__ import annotations

import threading

import pytest

from pathpt_engine.errors import JobCancelled
from pathpt_engine.jobs import Progress, check_cancel, collect, run_job


def _counting_job(n: int, cancel: threading.Event | None = None):
    for i in range(n):
        check_cancel(cancel)
        yield Progress("count", i + 1, n, metrics={"i": float(i)})
    return n * 10


def test_run_job_returns_result_and_events() -> None:
    result, events = collect(_counting_job(3))
    assert result == 30
    assert [e.done for e in events] == [1, 2, 3]
    assert events[-1].fraction == 1.0


def test_cancel_between_events_stops_job() -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def on_progress(ev: Progress) -> None:
        seen.append(ev.done)
        if ev.done == 2:
            cancel.set()

    with pytest.raises(JobCancelled):
        run_job(_counting_job(10, cancel), on_progress, cancel)
    assert seen == [1, 2]


def test_progress_validates() -> None:
    with pytest.raises(ValueError, match='done must be >= 0'):
        Progress("x", -1, 3)
    assert Progress("x", 1, None).fraction is None
