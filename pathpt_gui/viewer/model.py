"""Viewport state: where the view looks on the slide and how far it is zoomed (Qt-free, with a change signal).

Units: `center` is in level-0 pixels; `scale` is screen pixels per level-0 pixel (1.0 shows level 0 at 1:1,
0.25 shows a 4x downsample); `view_size` is the widget size in screen pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .signals import Signal

MAX_SCALE = 4.0  # digital zoom up to 4 screen pixels per level-0 pixel
FIT_MARGIN = 0.96


@dataclass(frozen=True)
class ViewState:
    """A frozen snapshot of the viewport, safe to hand to planners and background work."""

    center: tuple[float, float]
    scale: float
    view_size: tuple[int, int]

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be > 0, got {self.scale}")

    def visible_rect(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the visible area in level-0 pixels (may extend past the slide)."""
        hw = self.view_size[0] / (2 * self.scale)
        hh = self.view_size[1] / (2 * self.scale)
        return (self.center[0] - hw, self.center[1] - hh, self.center[0] + hw, self.center[1] + hh)

    def slide_to_screen(self, x: float, y: float) -> tuple[float, float]:
        return ((x - self.center[0]) * self.scale + self.view_size[0] / 2,
                (y - self.center[1]) * self.scale + self.view_size[1] / 2)

    def screen_to_slide(self, sx: float, sy: float) -> tuple[float, float]:
        return ((sx - self.view_size[0] / 2) / self.scale + self.center[0],
                (sy - self.view_size[1] / 2) / self.scale + self.center[1])


class ViewportModel:
    """Mutable viewport of one slide; emits `changed(ViewState)` after every effective change."""

    def __init__(self, slide_size: tuple[int, int], base_magnification: float | None = None) -> None:
        if slide_size[0] <= 0 or slide_size[1] <= 0:
            raise ValueError(f"slide size must be positive, got {slide_size}")
        self.slide_size = (int(slide_size[0]), int(slide_size[1]))
        self.base_magnification = base_magnification
        self.changed = Signal()
        self._state = ViewState((slide_size[0] / 2, slide_size[1] / 2), 1.0, (1, 1))
        self._auto_fit = True  # keep fitting on resize until the user moves or zooms

    @property
    def state(self) -> ViewState:
        return self._state

    @property
    def scale(self) -> float:
        return self._state.scale

    @property
    def center(self) -> tuple[float, float]:
        return self._state.center

    @property
    def view_size(self) -> tuple[int, int]:
        return self._state.view_size

    def fit_scale(self) -> float:
        w, h = self._state.view_size
        return FIT_MARGIN * min(w / self.slide_size[0], h / self.slide_size[1])

    def min_scale(self) -> float:
        return min(self.fit_scale() / 2, MAX_SCALE)

    @property
    def magnification(self) -> float | None:
        """The apparent objective magnification of the view, or None when the slide's base is unknown."""
        return None if self.base_magnification is None else self.base_magnification * self._state.scale

    def _set(self, center: tuple[float, float] | None = None, scale: float | None = None,
             view_size: tuple[int, int] | None = None) -> None:
        if center is not None or scale is not None:
            self._auto_fit = False
        s = self._state
        view_size = view_size or s.view_size
        scale = s.scale if scale is None else scale
        center = center or s.center
        cx = min(max(center[0], 0.0), float(self.slide_size[0]))
        cy = min(max(center[1], 0.0), float(self.slide_size[1]))
        new = ViewState((cx, cy), scale, (max(1, int(view_size[0])), max(1, int(view_size[1]))))
        if new != s:
            self._state = new
            self.changed.emit(new)

    def _clamp_scale(self, scale: float) -> float:
        return min(max(scale, self.min_scale()), MAX_SCALE)

    def set_view_size(self, width: int, height: int) -> None:
        """Resize the viewport; while the view is still fitted (no pan or zoom yet) it refits."""
        self._set(view_size=(width, height))
        if self._auto_fit and width > 1 and height > 1:
            self.fit()

    def fit(self) -> None:
        """Show the whole slide, centred."""
        self._set(center=(self.slide_size[0] / 2, self.slide_size[1] / 2), scale=self.fit_scale())
        self._auto_fit = True

    def set_center(self, x: float, y: float) -> None:
        self._set(center=(x, y))

    def set_scale(self, scale: float) -> None:
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self._set(scale=self._clamp_scale(scale))

    def set_view(self, x: float, y: float, scale: float) -> None:
        """Centre on (x, y) level-0 at `scale` in one change."""
        if not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive number, got {scale}")
        self._set(center=(x, y), scale=self._clamp_scale(scale))

    def pan_screen(self, dx: float, dy: float) -> None:
        """Move the content by (dx, dy) screen pixels (a drag to the right moves the view left)."""
        s = self._state
        self._set(center=(s.center[0] - dx / s.scale, s.center[1] - dy / s.scale))

    def zoom_at(self, factor: float, sx: float | None = None, sy: float | None = None) -> None:
        """Multiply the scale by `factor`, keeping the slide point under screen (sx, sy) fixed."""
        s = self._state
        if sx is None or sy is None:
            sx, sy = s.view_size[0] / 2, s.view_size[1] / 2
        new_scale = self._clamp_scale(s.scale * factor)
        px, py = s.screen_to_slide(sx, sy)
        cx = px - (sx - s.view_size[0] / 2) / new_scale
        cy = py - (sy - s.view_size[1] / 2) / new_scale
        self._set(center=(cx, cy), scale=new_scale)

    def set_magnification(self, magnification: float) -> None:
        """Zoom (around the view centre) to an objective magnification such as 5, 10, 20 or 40."""
        if self.base_magnification is None:
            raise ValueError("this slide does not state its magnification or pixel size")
        self.set_scale(magnification / self.base_magnification)
