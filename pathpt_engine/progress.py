"""Progress-bar driver for jobs on the command line."""

from __future__ import annotations

import sys
from collections.abc import Generator
from typing import TypeVar

from tqdm import tqdm

from .jobs import Progress, run_job

# tqdm's monitor thread outlives the bar; the CLI needs no stall watchdog.
tqdm.monitor_interval = 0

T = TypeVar("T")


def run_with_bar(job: Generator[Progress, None, T], quiet: bool = False) -> T:
    """Run a job showing one tqdm bar per stage (on stderr). Ctrl-C cancels."""
    bars: dict[str, tqdm] = {}

    def on_progress(ev: Progress) -> None:
        if quiet:
            return
        bar = bars.get(ev.stage)
        if bar is None:
            for other in bars.values():
                other.close()
            bar = bars[ev.stage] = tqdm(total=ev.total, desc=ev.stage, file=sys.stderr, leave=False,
                                        dynamic_ncols=True)
        if ev.total is not None and bar.total != ev.total:
            bar.total = ev.total
        bar.n = ev.done
        post = {k: f"{v:.4g}" for k, v in list(ev.metrics.items())[:4]}
        if ev.message:
            post["at"] = ev.message[:40]
        bar.set_postfix(post, refresh=False)
        bar.refresh()

    try:
        return run_job(job, on_progress)
    finally:
        for bar in bars.values():
            bar.close()
