"""Painting regions, tile corrections and the shape being drawn, in slide coordinates mapped to the screen."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen, QPolygonF

from pathpt_engine.annotations.geometry import Geometry

HANDLE_PX = 4.0


def to_screen(st, x: float, y: float) -> QPointF:  # noqa: ANN001
    """Level-0 point -> widget pixels (same origin snapping as the slide view)."""
    ox = round(st.view_size[0] / 2 - st.center[0] * st.scale)
    oy = round(st.view_size[1] / 2 - st.center[1] * st.scale)
    return QPointF(ox + x * st.scale, oy + y * st.scale)


def _ring_polygon(st, ring: np.ndarray) -> QPolygonF:  # noqa: ANN001
    ox = round(st.view_size[0] / 2 - st.center[0] * st.scale)
    oy = round(st.view_size[1] / 2 - st.center[1] * st.scale)
    pts = ring * st.scale + np.array([ox, oy])
    return QPolygonF([QPointF(float(x), float(y)) for x, y in pts])


def geometry_path(st, geom: Geometry) -> QPainterPath:  # noqa: ANN001
    """Screen path of a region (even-odd fill: holes stay open)."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.OddEvenFill)
    for ring in geom.rings():
        path.addPolygon(_ring_polygon(st, ring))
        path.closeSubpath()
    return path


def paint_region(p: QPainter, st, geom: Geometry, color: str, selected: bool, ignore: bool) -> None:  # noqa: ANN001
    c = QColor(color)
    fill = QColor(c)
    fill.setAlpha(45 if not selected else 80)
    p.setPen(QPen(c, 3.0 if selected else 2.0, Qt.PenStyle.DashLine if ignore else Qt.PenStyle.SolidLine))
    p.setBrush(QBrush(fill, Qt.BrushStyle.BDiagPattern) if ignore else fill)
    p.drawPath(geometry_path(st, geom))
    if selected:
        p.setPen(QPen(QColor(255, 255, 255), 1.0))
        p.setBrush(c)
        for ring in geom.rings():
            for x, y in ring:
                p.drawRect(QRectF(to_screen(st, x, y) - QPointF(HANDLE_PX, HANDLE_PX),
                                  to_screen(st, x, y) + QPointF(HANDLE_PX, HANDLE_PX)))


def paint_corrections(p: QPainter, st, corrections: dict[tuple[int, int], str], tile: int,  # noqa: ANN001
                      colors: dict[str, str]) -> None:
    """Each corrected tile: an outlined square with a filled corner mark in its class colour."""
    for (x, y), name in corrections.items():
        c = QColor(colors.get(name, "#ffffff"))
        r = QRectF(to_screen(st, x, y), to_screen(st, x + tile, y + tile)).adjusted(1, 1, -1, -1)
        p.setPen(QPen(c, 2.0))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(r)
        mark = min(r.width(), r.height()) / 3
        p.setBrush(c)
        p.drawPolygon(QPolygonF([r.topLeft(), r.topLeft() + QPointF(mark, 0), r.topLeft() + QPointF(0, mark)]))


def paint_preview(p: QPainter, st, points: Sequence[tuple[float, float]], kind: str, color: str,  # noqa: ANN001
                  brush_px: float = 0.0) -> None:
    """The shape being drawn (rectangle/ellipse from two corners, polygon/brush from its points)."""
    if not points:
        return
    c = QColor(color)
    p.setPen(QPen(c, 2.0, Qt.PenStyle.DashLine))
    fill = QColor(c)
    fill.setAlpha(40)
    p.setBrush(fill)
    pts = [to_screen(st, x, y) for x, y in points]
    if kind in ("rectangle", "ellipse") and len(pts) >= 2:
        r = QRectF(pts[0], pts[-1]).normalized()
        p.drawRect(r) if kind == "rectangle" else p.drawEllipse(r)
    elif kind == "polygon":
        p.drawPolyline(QPolygonF(pts))
        for q in pts:
            p.drawEllipse(q, 3, 3)
    elif kind == "brush":
        fill.setAlpha(90)
        p.setPen(QPen(fill, max(1.0, brush_px), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                      Qt.PenJoinStyle.RoundJoin))
        p.setBrush(Qt.BrushStyle.NoBrush)
        if len(pts) == 1:
            p.drawPoint(pts[0])
        else:
            p.drawPolyline(QPolygonF(pts))
