"""Atomic image writes for screenshots and exported views."""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtGui import QImage, QPixmap

from pathpt_engine.atomic import atomic_path
from pathpt_engine.errors import ImageWriteError

__all__ = ["ImageWriteError", "save_png_atomic"]


def save_png_atomic(image: QImage | QPixmap, path: str | os.PathLike[str]) -> Path:
    """Write `image` as PNG to `path` via a temp file in the same folder and a rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ImageWriteError(f"{path}: folder {path.parent} does not exist")
    with atomic_path(path) as tmp:
        if not image.save(str(tmp), "PNG"):
            raise ImageWriteError(f"{path}: could not write PNG (disk full or no permission?)")
    return path
