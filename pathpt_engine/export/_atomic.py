"""Atomic writes for exports: `pathpt_engine.atomic` plus folder creation and `ExportError` messages."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .. import atomic
from ..errors import ExportError

__all__ = ["ExportError", "atomic_path", "write_text_atomic"]


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Create the output folder, then yield a temp path that replaces `path` on normal exit."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"{path}: cannot create the output folder ({exc})") from exc
    with atomic.atomic_path(path) as tmp:
        yield tmp


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_text(text, encoding="utf-8", newline="")
        except OSError as exc:
            raise ExportError(f"{path}: cannot write ({exc})") from exc
    return Path(path)
