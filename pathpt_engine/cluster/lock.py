"""One run lock per output folder, and cleanup of temp files that killed workers leave behind.

The lock is an exclusive `flock` on `OUT/.pathpt-run.lock` (released by the kernel when the driver dies, so a
crashed run never blocks the next one). The file records who holds it, for the error message.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path

from ..atomic import find_temp
from .base import ClusterError

log = logging.getLogger(__name__)

LOCK_NAME = ".pathpt-run.lock"


class RunLock:
    """Exclusive run lock on an output folder; use as a context manager.

    Raises:
        ClusterError: another run holds the lock (its host and pid are named).
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode("utf-8", "replace").strip() or "unknown"
            os.close(fd)
            raise ClusterError(f"{self.path}: another run is writing to this folder ({holder}); wait for it or "
                               "stop it") from None
        info = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, info.encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def clean_temp_files(out_dir: str | Path) -> list[Path]:
    """Remove the temp files (`atomic.is_temp`) under `out_dir` that an interrupted run left; returns them.

    Call only while holding the run lock: then no writer of this folder is alive.
    """
    removed = find_temp(out_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        log.info("removed %d temp files left by an interrupted run under %s", len(removed), out_dir)
    return removed
