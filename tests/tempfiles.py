"""The one "no temp file left behind" check for tests; it uses the engine's own temp-name rule."""

from __future__ import annotations

from pathlib import Path

from pathpt_engine.atomic import find_temp


def assert_no_temp(folder: str | Path) -> None:
    """Fail if any unfinished atomic write (`pathpt_engine.atomic.is_temp`) is left under `folder`."""
    left = find_temp(folder)
    assert not left, f"temp files left under {folder}: {[str(p) for p in left]}"
