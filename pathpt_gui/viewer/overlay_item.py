"""Draws an `OverlayModel` heatmap as one small image scaled into slide coordinates.

The grid is re-coloured only when the data, colormap or value range change. Opacity is baked into the small
image's alpha (re-deriving it from the coloured grid, no re-colouring): drawing an image with painter opacity
costs ~2.5 ms more per 1600x1000 frame. Smoothing and visibility are applied at paint time. Slide tiles are never re-read or re-blended for overlay changes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen

from .model import ViewState
from .overlay import OUTLINE_COLOR, OverlayModel


def rgba_to_qimage(rgba: np.ndarray) -> QImage:
    """(h, w, 4) uint8 straight RGBA -> an owned premultiplied ARGB32 QImage (clean edges when smoothed)."""
    rgba = np.ascontiguousarray(rgba)
    h, w = rgba.shape[:2]
    img = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888)
    return img.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


class OverlayPainter:
    """Paint-time helper owned by the slide view."""

    def __init__(self, model: OverlayModel) -> None:
        self.model = model
        self._image: QImage | None = None
        self._rgba: np.ndarray | None = None  # the coloured grid, straight alpha
        self._image_opacity = -1.0
        self._dirty = True
        self.rebuilds = 0  # re-colourings

    def invalidate(self, kind: str) -> None:
        if kind in ("data", "colors"):
            self._dirty = True

    def image(self) -> QImage | None:
        """The coloured grid with the model's opacity in its alpha (re-coloured only when dirty)."""
        if self._dirty:
            self._rgba = self.model.colorize()
            self._dirty = False
            self._image_opacity = -1.0
            self.rebuilds += 1
        opacity = self.model.opacity
        if self._rgba is None:
            self._image = None
        elif opacity != self._image_opacity:
            rgba = self._rgba.copy()
            rgba[..., 3] = (rgba[..., 3].astype(np.float32) * opacity + 0.5).astype(np.uint8)
            self._image, self._image_opacity = rgba_to_qimage(rgba), opacity
        return self._image

    def paint(self, p: QPainter, st: ViewState,
              to_screen: Callable[[ViewState, float, float, float, float], QRectF]) -> None:
        self._paint_heatmap(p, st, to_screen)
        self._paint_outline(p, st, to_screen)

    def _paint_outline(self, p: QPainter, st: ViewState,
                       to_screen: Callable[[ViewState, float, float, float, float], QRectF]) -> None:
        """The ground-truth outline: 2 px lines over the heatmap, whatever its opacity."""
        o = self.model.outline
        if o is None or not self.model.show_outline or not len(o.segments):
            return
        big = float(2**20)  # a large rect: its rounded edges give the level-0 -> screen map to ~1e-6
        r = to_screen(st, 0.0, 0.0, big, big)
        s = o.segments.astype(np.float64)
        xs = r.left() + s[:, 0::2] * (r.width() / big)
        ys = r.top() + s[:, 1::2] * (r.height() / big)
        vis = ~(((xs < 0).all(1)) | ((xs > p.device().width()).all(1)) | ((ys < 0).all(1))
                | ((ys > p.device().height()).all(1)))
        lines = [QLineF(x0, y0, x1, y1)
                 for x0, x1, y0, y1 in zip(xs[vis, 0], xs[vis, 1], ys[vis, 0], ys[vis, 1], strict=True)]
        p.save()
        pen = QPen(QColor(*OUTLINE_COLOR), 2.0)
        pen.setCosmetic(True)
        pen.setCapStyle(Qt.PenCapStyle.SquareCap)
        p.setPen(pen)
        p.drawLines(lines)
        p.restore()

    def _paint_heatmap(self, p: QPainter, st: ViewState,
                       to_screen: Callable[[ViewState, float, float, float, float], QRectF]) -> None:
        g = self.model.grid
        if g is None or not self.model.visible or self.model.opacity <= 0:
            return
        img = self.image()
        if img is None:
            return
        rows, cols = g.shape
        target = to_screen(st, g.origin[0], g.origin[1], cols * g.cell, rows * g.cell)
        p.save()
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.model.smooth)
        p.drawImage(target, img, QRectF(0, 0, cols, rows))
        p.restore()
