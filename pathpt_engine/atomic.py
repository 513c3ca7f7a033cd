"""Atomic file writes, one implementation for the whole engine (and the GUI).

Every output is built under a temp name in the destination folder and renamed over the final path with
`os.replace`, so a crash, a full disk or a cancelled job never leaves a half-written file under the real name,
and a reader never sees one. The temp name starts with a dot, names the process and keeps the final suffix
(writers that choose a format by extension still work).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The one temp-name rule: `.<stem>.<pid>.<8 hex>.tmp<suffix>` (see `temp_name`); `is_temp` recognises it.
_TEMP_RE = re.compile(r"^\..*\.\d+\.[0-9a-f]{8}\.tmp(\.[^.]*)?$")


def temp_name(path: Path) -> Path:
    """A unique hidden temp path next to `path`, with the same suffix."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")


def is_temp(path: str | os.PathLike[str]) -> bool:
    """True if `path`'s name is one that `temp_name` makes (an unfinished or interrupted atomic write)."""
    return _TEMP_RE.match(Path(path).name) is not None


def find_temp(folder: str | os.PathLike[str]) -> list[Path]:
    """Every temp file (`is_temp`) under `folder`, recursively, sorted."""
    return sorted(p for p in Path(folder).rglob(".*") if p.is_file() and is_temp(p))


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temp path next to `path`; on normal exit it replaces `path`; it is removed in every case.

    Args:
        path: the final file; its folder must exist (callers create it and report their own error).
        fsync: flush the temp file to disk before the rename (checkpoints, databases).
    """
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if fsync and tmp.exists():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, fsync: bool = False) -> Path:
    """Write `data` to `path` atomically. Raises OSError as `Path.write_bytes` does."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Write `text` (UTF-8, newlines as given) to `path` atomically. Raises OSError."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_text(text, encoding="utf-8", newline="")
    return Path(path)
