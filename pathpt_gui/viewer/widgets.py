"""Small widgets floating over the slide view: the overview minimap and the heatmap legend."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QLinearGradient, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from . import decor
from .model import ViewportModel, ViewState
from .overlay import OUTLINE_COLOR, OverlayModel, lookup_table

MINIMAP_LONG_SIDE = 220


class Minimap(QWidget):
    """The whole slide in miniature with the current view box; click or drag to jump there."""

    def __init__(self, model: ViewportModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.image: QImage | None = None
        w, h = model.slide_size
        k = MINIMAP_LONG_SIDE / max(w, h)
        self.setFixedSize(max(40, round(w * k)) + 8, max(40, round(h * k)) + 8)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setToolTip("Overview: click or drag to move the view")
        model.changed.connect(self._on_view)

    def _on_view(self, state: ViewState) -> None:
        self.update()

    def set_image(self, image: QImage | None) -> None:
        self.image = image
        self.update()

    def _inner(self) -> QRectF:
        return QRectF(4, 4, self.width() - 8, self.height() - 8)

    def to_slide(self, pos: QPointF) -> tuple[float, float]:
        inner = self._inner()
        w, h = self.model.slide_size
        return ((pos.x() - inner.left()) / inner.width() * w, (pos.y() - inner.top()) / inner.height() * h)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(decor.PANEL)
        p.drawRoundedRect(QRectF(self.rect()), 5, 5)
        inner = self._inner()
        if self.image is not None:
            p.drawImage(inner, self.image)
        else:
            p.fillRect(inner, decor.SLIDE_PLACEHOLDER)
        x0, y0, x1, y1 = self.model.state.visible_rect()
        w, h = self.model.slide_size
        box = QRectF(inner.left() + x0 / w * inner.width(), inner.top() + y0 / h * inner.height(),
                     (x1 - x0) / w * inner.width(), (y1 - y0) / h * inner.height()).intersected(inner)
        if box.width() < 4 or box.height() < 4:  # keep a tiny view visible as a small square
            c = box.center()
            box = QRectF(c.x() - 3, c.y() - 3, 6, 6)
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.setPen(QPen(QColor(255, 210, 60), 1.6))
        p.drawRect(box)
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self.model.set_center(*self.to_slide(event.position()))
            event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.buttons() & Qt.MouseButton.LeftButton:
            self.model.set_center(*self.to_slide(event.position()))
            event.accept()


class Legend(QWidget):
    """Colour bar with its value range (scalar heatmaps) or class swatches with names (class maps)."""

    def __init__(self, overlay: OverlayModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = overlay
        overlay.changed.connect(self._on_overlay)
        self._on_overlay("data")

    def _on_overlay(self, kind: str) -> None:
        g = self.overlay.grid
        self.setVisible(g is not None and self.overlay.visible and g.mode != "rgba")
        if g is not None and g.mode == "classmap":
            self.setFixedSize(200, 16 + 20 * (len(self.overlay.class_names) + self._outline_rows()))
        else:
            self.setFixedSize(200, 62)
        self.update()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        g = self.overlay.grid
        if g is None:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(decor.PANEL)
        p.drawRoundedRect(QRectF(self.rect()), 6, 6)
        p.setPen(decor.TEXT)
        if g.mode == "classmap":
            self._paint_classes(p)
        else:
            self._paint_bar(p)
        p.end()

    def _outline_rows(self) -> int:
        return int(self.overlay.outline is not None and self.overlay.show_outline)

    def _paint_classes(self, p: QPainter) -> None:
        for i, (name, color) in enumerate(zip(self.overlay.class_names, self.overlay.class_colors, strict=True)):
            y = 8 + 20 * i
            p.fillRect(QRectF(10, y + 3, 14, 14), QColor(*color))
            p.drawText(QRectF(32, y, self.width() - 40, 20), int(Qt.AlignmentFlag.AlignVCenter), name)
        if self._outline_rows():  # the ground-truth outline's swatch: a line in its colour
            y = 8 + 20 * len(self.overlay.class_names)
            p.fillRect(QRectF(10, y + 9, 14, 3), QColor(*OUTLINE_COLOR))
            p.drawText(QRectF(32, y, self.width() - 40, 20), int(Qt.AlignmentFlag.AlignVCenter), "ground truth")

    def _paint_bar(self, p: QPainter) -> None:
        lut = lookup_table(self.overlay.colormap)
        bar = QRectF(10, 26, self.width() - 20, 12)
        grad = QLinearGradient(bar.topLeft(), bar.topRight())
        for i in range(0, 256, 15):
            grad.setColorAt(i / 255, QColor(*[int(v) for v in lut[i][:3]]))
        grad.setColorAt(1.0, QColor(*[int(v) for v in lut[255][:3]]))
        p.fillRect(bar, grad)
        lo, hi = self.overlay.value_range
        p.drawText(QRectF(10, 4, self.width() - 20, 18), int(Qt.AlignmentFlag.AlignLeft),
                   self.overlay.label or "score")
        p.drawText(QRectF(10, 40, 80, 18), int(Qt.AlignmentFlag.AlignLeft), f"{lo:.3g}")
        p.drawText(QRectF(self.width() - 90, 40, 80, 18), int(Qt.AlignmentFlag.AlignRight), f"{hi:.3g}")
