"""The one "this reader refuses this file, and says so" check for tests of file readers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pathpt_engine.errors import PathPTError


def assert_refuses(read: Callable[[Path], Any], path: Path, content: str | bytes | None, match: str,
                   error: type[Exception] = PathPTError) -> pytest.ExceptionInfo[Exception]:
    """Write `content` to `path` (text or bytes; None leaves the file as it is, or missing), then check that
    `read(path)` raises `error` with a message matching the regex `match`. Returns the caught exception's info."""
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(error, match=match) as info:
        read(path)
    return info
