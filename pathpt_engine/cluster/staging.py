"""Optional staging: copy a slide from shared storage to local disk before its tiles are read.

Tiling (a low-resolution pass) still reads the original, so coords and feature files record the original path and
are byte-for-byte what reading in place gives; only the full-resolution tile reads come from the local copy.
Each actor stages into its own sub-folder, emptied when the actor (re)starts.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ..atomic import atomic_path

log = logging.getLogger(__name__)


class Stager:
    """Copies slides into `stage_dir/pathpt-stage-<slot>/` atomically and removes them after use."""

    def __init__(self, stage_dir: str | Path, slot: int) -> None:
        self.dir = Path(stage_dir) / f"pathpt-stage-{slot}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def stage(self, path: str | Path) -> Path:
        """Copy `path` (and a same-named data folder next to it, as MIRAX has) here; returns the copy.

        Raises:
            OSError: the slide cannot be copied (the caller falls back to reading it in place).
        """
        src = Path(path)
        dst = self.dir / src.name
        if dst.is_file():
            return dst
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
            sidecar = src.with_suffix("")
            if sidecar.is_dir():
                shutil.copytree(sidecar, self.dir / sidecar.name, dirs_exist_ok=True)
        log.debug("staged %s -> %s", src, dst)
        return dst

    def release(self, path: str | Path) -> None:
        """Remove the staged copy of `path` (if any)."""
        src = Path(path)
        (self.dir / src.name).unlink(missing_ok=True)
        shutil.rmtree(self.dir / src.with_suffix("").name, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
