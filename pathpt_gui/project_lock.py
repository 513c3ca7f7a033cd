"""One writer per project: the app instance that opens a project first holds `<project>/.pathpt-session.lock`.

A second instance (another window, another app, another machine on a shared folder) opens the project read-only
and says who holds it. The lock is an exclusive advisory `flock` held for as long as the project is open, so the
operating system releases it when the holder dies, however it dies: "Take over" then simply succeeds. A holder that
is alive (or on another machine, where its liveness cannot be checked) can still be displaced with a forced take
over; the displaced instance notices at its next `still_ours()` check (the lock file no longer carries its token),
switches itself to read-only and tells its user that its later edits cannot be saved. Qt-free.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: the recorded pid decides
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from pathpt_engine.project import Project

log = logging.getLogger(__name__)
LOCK_NAME = ".pathpt-session.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a project (as recorded in its lock file)."""

    pid: int
    host: str
    user: str
    since: float
    token: str

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(self.since)) if self.since else "an unknown time"
        return f"PathPT Studio (process {self.pid} of {self.user or '?'} on {self.host or '?'}, since {when})"

    @property
    def alive(self) -> bool | None:
        """Whether the holder still runs: None when it is on another machine (cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


def read_holder(root: Path) -> Holder | None:
    """The holder recorded in `root`'s lock file, or None (no file, or unreadable)."""
    try:
        data = json.loads((root / LOCK_NAME).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data.get("host", "")), str(data.get("user", "")),
                      float(data.get("since", 0.0)), str(data.get("token", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SessionLock:
    """The lock of one open project, held by this process; `release()` when the project closes."""

    def __init__(self, root: Path, fd: int) -> None:
        self.root, self._fd = root, fd
        self.token = uuid.uuid4().hex
        info = {"pid": os.getpid(), "host": socket.gethostname(), "user": _user(), "since": time.time(),
                "token": self.token}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)

    @classmethod
    def acquire(cls, root: str | Path, force: bool = False) -> SessionLock | None:
        """Take the project's lock; None when another live instance holds it (unless `force`)."""
        root = Path(root)
        path = root / LOCK_NAME
        if force:
            path.unlink(missing_ok=True)  # the displaced holder keeps an unlinked file and notices
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a folder we cannot write: the project opens read-only for that reason
            log.info("%s: cannot create the session lock (%s)", path, exc)
            return None
        if not (_try_lock(fd, path) or (force and fcntl is None)):
            os.close(fd)
            return None
        return cls(root, fd)

    def still_ours(self) -> bool:
        """False once another instance forced a take-over (the lock file is gone or carries another token)."""
        if self._fd < 0:
            return False
        holder = read_holder(self.root)
        return holder is not None and holder.token == self.token

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            if self.still_ours():
                (self.root / LOCK_NAME).unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # drops the flock
            self._fd = -1


def _try_lock(fd: int, path: Path) -> bool:
    if fcntl is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError as exc:  # e.g. a file system without flock: fall back to the recorded pid
            log.info("%s: no advisory locks here (%s); deciding by the recorded process", path, exc)
    holder = read_holder(path.parent)
    return holder is None or holder.alive is False


def _user() -> str:
    try:
        return os.getlogin()
    except OSError:
        return os.environ.get("USER", "")



class ProjectSession:
    """Opens projects under the session lock: writable when this instance holds it, else read-only.

    `locked_by` is "" while this instance may write, else one line saying who holds the project (shown in the
    window's banner).
    """

    def __init__(self) -> None:
        self.lock: SessionLock | None = None
        self.locked_by = ""

    def open(self, folder: str | Path, db_name: str | None = None) -> Project:
        from pathpt_engine.project import Project

        root = Path(folder).expanduser().resolve()
        self.release()
        self.lock = SessionLock.acquire(root) if (root / "project.sqlite").exists() or db_name else None
        kwargs = {"db_name": db_name} if db_name else {}
        if self.lock is not None:
            try:
                return Project.open(root, **kwargs)
            except BaseException:
                self.release()
                raise
        project = Project.open(root, read_only=True, **kwargs)
        holder = read_holder(root)
        if holder is None:  # not held by anyone: the folder itself is not writable (Project says so)
            return project
        self.locked_by = f"{holder.describe()} has this project open"
        project.set_read_only(f"{self.locked_by}; use Take over in the banner if it has stopped")
        return project

    def create(self, folder: str | Path) -> Project:
        from pathpt_engine.project import Project

        self.release()
        project = Project.create(folder)
        self.lock = SessionLock.acquire(project.root)
        return project

    def take_over(self, root: Path, force: bool = False) -> bool:
        """Try to hold `root` now (the holder died: its lock is free); `force` displaces a live holder."""
        lock = SessionLock.acquire(root, force=force)
        if lock is None:
            return False
        self.release()
        self.lock = lock
        return True

    def displaced(self, project: Project | None) -> str:
        """"" while our lock holds; once another instance forced a take-over: make `project` read-only and
        return the one-line warning (once)."""
        if project is None or self.lock is None or self.lock.still_ours():
            return ""
        holder = read_holder(project.root)
        who = holder.describe() if holder is not None else "another PathPT Studio"
        self.lock.release()
        self.lock = None
        self.locked_by = f"{who} took this project over"
        project.set_read_only(f"{self.locked_by}; your later changes cannot be saved")
        return (f"{project.root}: {self.locked_by}; this window is now read-only and changes made from now on "
                "are not saved (reopen the project to see the other instance's work)")

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
        self.lock = None
        self.locked_by = ""


class LockedProjectMixin:
    """The session-lock part of `ProjectController` (kept here so the controller stays small).

    Needs `session` (`ProjectSession`), `project`, `message`, `lock_changed`, `_lock_timer`, `info`, `require`,
    `close_project` and `_set_project` from the controller.
    """

    session: ProjectSession
    project: Any

    def _locked(self, project: Project) -> Project:
        out = self._set_project(project)
        if self.session.locked_by:
            self.message.emit("warning", f"{project.root}: {self.session.locked_by}; opened read-only")
        self.lock_changed.emit(self.session.locked_by)
        self._lock_timer.start()
        return out

    def take_over(self, force: bool = False) -> bool:
        """Hold the open project now (its other instance stopped; `force`: even if it runs) and reopen it
        writable. False when the other instance still holds it and `force` is not given."""
        proj = self.require()
        root = proj.root
        if not self.session.take_over(root, force):
            return False
        lock = self.session.lock
        self.session.lock = None  # keep it across the reopen below
        self.close_project()
        self.session.lock = lock
        from pathpt_engine.project import Project

        self._set_project(Project.open(root))
        self.info(f"{root}: taken over; this window can save changes again")
        self.lock_changed.emit("")
        return True

    def check_lock(self) -> None:
        """Periodic: when another instance forced a take-over, go read-only and say so (once)."""
        warning = self.session.displaced(self.project)
        if warning:
            self.message.emit("error", warning)
            self.lock_changed.emit(self.session.locked_by)
