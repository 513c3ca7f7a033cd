"""Painting helpers for the slide view: background, missing-tile hatch, scale bar with magnification."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen

BACKGROUND = QColor(43, 45, 48)
SLIDE_PLACEHOLDER = QColor(232, 230, 232)
MISSING_FILL = QColor(150, 150, 150)
PANEL = QColor(20, 22, 25, 170)
TEXT = QColor(236, 236, 236)


def nice_length(max_value: float) -> float:
    """The largest 1-2-5 x 10^k not above `max_value` (max_value > 0)."""
    exp = math.floor(math.log10(max_value))
    for m in (5.0, 2.0, 1.0):
        v = m * 10.0**exp
        if v <= max_value:
            return v
    return 10.0 ** (exp - 1) * 5.0


def format_length_um(um: float) -> str:
    """'250 µm', '1 mm', '2.5 mm' style labels."""
    if um >= 1000:
        mm = um / 1000
        return f"{mm:g} mm"
    return f"{um:g} µm"


def format_magnification(mag: float | None) -> str:
    if mag is None:
        return ""
    return f"{mag:.1f}×" if mag < 10 else f"{mag:.0f}×"


def paint_missing(p: QPainter, rect: QRectF) -> None:
    """A grey, diagonally hatched square where a tile could not be read."""
    p.fillRect(rect, MISSING_FILL)
    p.fillRect(rect, QBrush(QColor(110, 110, 110), Qt.BrushStyle.BDiagPattern))


PIXEL_SIZE_UNKNOWN = "pixel size unknown"


def scale_bar(scale: float, mpp: float | None, magnification: float | None) -> tuple[float, str]:
    """(bar length in screen pixels, label): no bar, and "pixel size unknown", when the slide's µm/px is not
    known (missing or implausible in the file, and not given by the user)."""
    mag_text = format_magnification(magnification)
    if mpp is None:
        return 0.0, "   ".join(t for t in (PIXEL_SIZE_UNKNOWN, mag_text) if t)
    um_per_screen_px = mpp / scale
    um = nice_length(140 * um_per_screen_px)
    return um / um_per_screen_px, "   ".join(t for t in (format_length_um(um), mag_text) if t)


def paint_scale_bar(p: QPainter, view_w: int, view_h: int, scale: float, mpp: float | None,
                    magnification: float | None) -> None:
    """A calm scale bar (and the current magnification) in the bottom-left corner; "pixel size unknown" instead
    of a bar when `mpp` is None."""
    font = QFont(p.font())
    font.setPointSizeF(9.5)
    p.setFont(font)
    fm = p.fontMetrics()
    bar_px, text = scale_bar(scale, mpp, magnification)
    width = max(bar_px, 0) + 24
    width = max(width, fm.horizontalAdvance(text) + 24)
    box = QRectF(14, view_h - 14 - 44, width, 44)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(PANEL)
    p.drawRoundedRect(box, 6, 6)
    if bar_px > 0:
        y = box.bottom() - 12
        pen = QPen(TEXT, 3)
        pen.setCapStyle(Qt.PenCapStyle.FlatCap)
        p.setPen(pen)
        p.drawLine(QPointF(box.left() + 12, y), QPointF(box.left() + 12 + bar_px, y))
        p.setPen(QPen(TEXT, 1.5))
        for x in (box.left() + 12, box.left() + 12 + bar_px):
            p.drawLine(QPointF(x, y - 5), QPointF(x, y + 1))
    p.setPen(TEXT)
    p.drawText(QRectF(box.left() + 12, box.top() + 5, box.width() - 16, 18),
               int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
