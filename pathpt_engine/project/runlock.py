"""Which `running` runs still have a live owner: one lock file per running run.

The process that creates a run holds an exclusive advisory lock on ``runs/<run_id>/.running.lock`` until it
records a final status. The operating system releases the lock when that process dies, however it dies, so a
later opener that can take the lock knows the run was interrupted (app killed, power cut) and was not merely
slow. Where advisory locks are unavailable (no `fcntl`), the file's recorded pid and host decide instead.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)
LOCK_NAME = ".running.lock"


class RunOwnerLock:
    """The lock a live run's owner holds; `release()` when the run reaches a final status."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()} {socket.gethostname()}\n".encode())

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, not ours
    return True


def owner_alive(folder: Path) -> bool:
    """True when some process still holds the run's lock (or, without fcntl, its recorded pid lives here).

    A run with no lock file at all (created by an older version, or its folder deleted) counts as not alive.
    """
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        text = os.read(fd, 256).decode(errors="replace").split()
        if len(text) == 2 and text[1] == socket.gethostname() and text[0].isdigit():
            return _pid_alive(int(text[0]))
        return True  # another host's run: cannot tell, assume it lives
    finally:
        os.close(fd)
