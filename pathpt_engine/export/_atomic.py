"""Atomic file writes: write to a temp file in the destination folder, then `os.replace` it into place."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import PathPTError


class ExportError(PathPTError):
    """An export cannot be written or an export/score file cannot be read."""


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to `path`; on normal exit it replaces `path`, on error it is removed.

    The temp name keeps the final suffix so that writers choosing a format by extension still work.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{path}: cannot create the output folder ({exc})") from exc
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise ExportError(f"{path}: cannot write ({exc})") from exc
    return Path(path)
