"""Headless rendering: open a slide, set the view, wait until the tiles settle, write a PNG.

Used by `pathpt-gui --screenshot`, by the tests and for README pictures on machines without a display.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from pathpt_engine.errors import ConfigError, PathPTError

from .imageio import save_png_atomic
from .viewer.overlay import OverlayModel
from .viewer.view import SlideView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ViewSpec:
    """Where to look: centre (x, y) in level-0 pixels and zoom (screen px per level-0 px); None = fit."""

    x: float
    y: float
    zoom: float

    def __post_init__(self) -> None:
        if not self.zoom > 0:
            raise ValueError(f"zoom must be > 0, got {self.zoom}")

    @classmethod
    def parse(cls, text: str | None) -> ViewSpec | None:
        """'x,y,zoom' (e.g. '12000,8000,0.5') or 'fit'/None."""
        if text is None or text.strip().lower() == "fit":
            return None
        parts = text.split(",")
        try:
            x, y, z = (float(p) for p in parts)
        except ValueError:
            raise ValueError(f"--view must be x,y,zoom (three numbers) or 'fit', got {text!r}") from None
        return cls(x, y, z)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size must look like 1600x1000, got {text!r}") from None
    if not (16 <= w <= 8192 and 16 <= h <= 8192):
        raise ValueError(f"--size must be within 16..8192 per side, got {text!r}")
    return w, h


def load_overlay_npz(path: str | Path, overlay: OverlayModel) -> None:
    """Load a tile heatmap: `coords` [N, 2], `tile_size`, and `values` [N] or `probs` [N, C] (+ `class_names`)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable .npz overlay ({exc})") from None
    try:
        coords, tile = data["coords"], int(data["tile_size"])
        if "probs" in data:
            names = [str(n) for n in data.get("class_names", [f"class {i}" for i in range(data["probs"].shape[1])])]
            overlay.set_class_probs(coords, tile, data["probs"], names)
        else:
            overlay.set_values(coords, tile, data["values"], label=str(data.get("label", path.stem)))
    except KeyError as exc:
        raise ConfigError(f"{path}: overlay is missing array {exc}; need coords, tile_size, values or probs") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def wait_settled(views: list[SlideView], timeout_s: float) -> bool:
    """Run the event loop until every view has painted all its visible tiles (or the timeout passes)."""
    app = QApplication.instance()
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while time.monotonic() < deadline:
        if all(v.is_settled() for v in views):
            app.processEvents()
            return True
        QTimer.singleShot(10, loop.quit)
        loop.exec()
    log.warning("tiles did not settle within %.0f s; writing what is painted", timeout_s)
    return False


def render(target: QWidget, views: list[SlideView], out: str | Path, timeout_s: float = 60.0) -> Path:
    """Wait for the views to settle, then grab `target` (a view or the whole window) into a PNG."""
    wait_settled(views, timeout_s)
    target.repaint()
    return save_png_atomic(target.grab(), out)


def apply_view(view: SlideView, spec: ViewSpec | None) -> None:
    if spec is None:
        view.model.fit()
    else:
        view.model.set_view(spec.x, spec.y, spec.zoom)


def check_overlay_args(opacity: float | None, cmap: str | None, overlay: OverlayModel) -> None:
    try:
        if opacity is not None:
            overlay.opacity = opacity
        if cmap is not None:
            overlay.colormap = cmap
    except ValueError as exc:
        raise PathPTError(str(exc)) from None
