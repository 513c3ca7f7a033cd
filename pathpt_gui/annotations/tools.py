"""Mouse tools over a slide view: rectangle, ellipse, polygon, brush, and move/select (QuPath habits).

Installed as an event filter on a `SlideView`. With the move tool a click on a region selects it, a drag moves it,
a drag on a vertex handle of the selected region moves that vertex, and a drag on empty slide pans as usual.
Ctrl+click on a heatmap tile sets that tile's class to the current class (Ctrl+Shift+click clears it). Every
finished shape or edit is stored at once through the `AnnotationLayer`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, Qt
from PySide6.QtGui import QPainterPath, QPainterPathStroker

from pathpt_engine.annotations.geometry import Geometry, Part, contains, ellipse, polygon, rectangle

from .layer import AnnotationLayer
from .painter import HANDLE_PX, paint_corrections, paint_preview, paint_region

TOOLS = ("move", "rectangle", "ellipse", "polygon", "brush")
CLOSE_PX = 8.0  # a polygon click this close to its first vertex closes it
MIN_DRAG_PX = 3.0


def brush_geometry(points: list[tuple[float, float]], width: float) -> Geometry:
    """The outline of a round brush stroke of `width` (level-0 px) through `points` (union, holes kept)."""
    path = QPainterPath()
    if len(points) == 1:
        x, y = points[0]
        path.addEllipse(QPointF(x, y), width / 2, width / 2)
    else:
        path.moveTo(*points[0])
        for x, y in points[1:]:
            path.lineTo(x, y)
        stroker = QPainterPathStroker()
        stroker.setWidth(width)
        stroker.setCapStyle(Qt.PenCapStyle.RoundCap)
        stroker.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        path = stroker.createStroke(path)
    rings = [np.array([[q.x(), q.y()] for q in poly], dtype=np.float64)
             for poly in path.simplified().toSubpathPolygons()]
    rings = [r[:-1] if len(r) > 1 and np.array_equal(r[0], r[-1]) else r for r in rings]
    rings = [r for r in rings if len(r) >= 3]
    return _nest(rings)


def _nest(rings: list[np.ndarray]) -> Geometry:
    """Rings -> parts by even-odd nesting depth (a ring inside an odd number of others is a hole)."""
    depth = [sum(1 for j, o in enumerate(rings) if j != i and contains(polygon(o), r[:1])[0])
             for i, r in enumerate(rings)]
    shells = [i for i, d in enumerate(depth) if d % 2 == 0]
    holes: dict[int, list[np.ndarray]] = {i: [] for i in shells}
    for i, d in enumerate(depth):
        if d % 2:
            owners = [s for s in shells if depth[s] == d - 1 and contains(polygon(rings[s]), rings[i][:1])[0]]
            if owners:
                holes[owners[0]].append(rings[i])
    return Geometry(tuple(Part(rings[s], tuple(holes[s])) for s in shells))


class AnnotationTools(QObject):
    """Drawing and editing on one slide view."""

    def __init__(self, view: Any, layer: AnnotationLayer, current_class: Callable[[], str],
                 colors: Callable[[], dict[str, str]], tile_grid: Callable[[], Any],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view, self.layer = view, layer
        self.current_class, self.colors, self.tile_grid = current_class, colors, tile_grid
        self.tool = "move"
        self.brush_px = 30.0  # brush diameter on screen
        self.points: list[tuple[float, float]] = []
        self._drag: dict[str, Any] | None = None
        view.installEventFilter(self)
        view.paint_hooks_under.append(self.paint_under)
        view.paint_hooks_over.append(self.paint_over)
        layer.changed.connect(view.update)

    def detach(self) -> None:
        self.view.removeEventFilter(self)
        for hooks, fn in ((self.view.paint_hooks_under, self.paint_under), (self.view.paint_hooks_over,
                                                                          self.paint_over)):
            if fn in hooks:
                hooks.remove(fn)
        self.view.update()

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        self.tool, self.points, self._drag = tool, [], None
        self.view.setCursor(Qt.CursorShape.ArrowCursor if tool == "move" else Qt.CursorShape.CrossCursor)
        self.view.update()

    def cancel(self) -> None:
        """Esc: drop the shape in progress and return to move/select."""
        self.set_tool("move")

    # ---- painting -------------------------------------------------------------------------------------------
    def paint_under(self, p: Any, st: Any) -> None:
        colors = self.colors()
        p.save()
        p.setRenderHint(p.RenderHint.Antialiasing, True)
        for r in self.layer.regions:
            paint_region(p, st, r.geometry, colors.get(r.class_name, "#ffffff"), r.region_id == self.layer.selected,
                         r.class_name == "ignore")
        grid = self.tile_grid()
        if grid is not None and self.layer.corrections:
            paint_corrections(p, st, self.layer.corrections, int(grid.tile_size_level0), colors)
        p.restore()

    def paint_over(self, p: Any, st: Any) -> None:
        if self.points and self.tool != "move":
            p.save()
            p.setRenderHint(p.RenderHint.Antialiasing, True)
            paint_preview(p, st, self.points, self.tool, self.colors().get(self.current_class(), "#ffffff"),
                          self.brush_px)
            p.restore()

    # ---- events ---------------------------------------------------------------------------------------------
    def _slide_xy(self, event: Any) -> tuple[float, float]:
        pos = event.position()
        return self.view.model.state.screen_to_slide(pos.x(), pos.y())

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        t = event.type()
        if t not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease,
                     QEvent.Type.MouseButtonDblClick):
            return False
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton and \
                event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return self._correct_tile(event)
        if self.tool == "move":
            return self._move_event(t, event)
        return self._draw_event(t, event)

    def _correct_tile(self, event: Any) -> bool:
        grid = self.tile_grid()
        if grid is None:
            return False
        x, y = self._slide_xy(event)
        c, size = np.asarray(grid.coords), int(grid.tile_size_level0)
        hit = np.flatnonzero((c[:, 0] <= x) & (x < c[:, 0] + size) & (c[:, 1] <= y) & (y < c[:, 1] + size))
        if not hit.size:
            return False
        tx, ty = (int(v) for v in c[hit[0]])
        clear = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.layer.set_tile(tx, ty, None if clear else self.current_class())
        return True

    def _draw_event(self, t: QEvent.Type, event: Any) -> bool:
        xy = self._slide_xy(event)
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            if self.tool == "polygon":
                self._polygon_click(xy)
            else:
                self.points = [xy, xy] if self.tool in ("rectangle", "ellipse") else [xy]
        elif t == QEvent.Type.MouseMove and self.points and self.tool != "polygon" and \
                event.buttons() & Qt.MouseButton.LeftButton:
            if self.tool == "brush":
                self.points.append(xy)
            else:
                self.points[-1] = xy
        elif self._finishing(t, event):
            self._finish()
        elif t == QEvent.Type.MouseMove:
            return False  # hover: let the view report the cursor
        self.view.update()
        return True

    def _finishing(self, t: QEvent.Type, event: Any) -> bool:
        if t == QEvent.Type.MouseButtonDblClick:
            return self.tool == "polygon"
        return (t == QEvent.Type.MouseButtonRelease and event.button() == Qt.MouseButton.LeftButton
                and self.tool in ("rectangle", "ellipse", "brush") and bool(self.points))

    def _polygon_click(self, xy: tuple[float, float]) -> None:
        if len(self.points) >= 3:
            first = self.view.model.state.slide_to_screen(*self.points[0])
            here = self.view.model.state.slide_to_screen(*xy)
            if abs(first[0] - here[0]) + abs(first[1] - here[1]) <= CLOSE_PX:
                self._finish()
                return
        if not self.points or self.points[-1] != xy:
            self.points.append(xy)

    def finish_polygon(self) -> None:
        """Enter: close the polygon being drawn."""
        if self.tool == "polygon":
            self._finish()

    def _finish(self) -> None:
        pts, self.points = self.points, []
        geom = self._shape(pts)
        if geom is not None:
            self.layer.add(geom, self.current_class(), self.tool)
        self.view.update()

    def _shape(self, pts: list[tuple[float, float]]) -> Geometry | None:
        scale = self.view.model.state.scale
        if self.tool in ("rectangle", "ellipse"):
            (x0, y0), (x1, y1) = pts[0], pts[-1]
            if min(abs(x1 - x0), abs(y1 - y0)) * scale < MIN_DRAG_PX:
                return None
            return rectangle(x0, y0, x1, y1) if self.tool == "rectangle" else ellipse(x0, y0, x1, y1)
        if self.tool == "polygon":
            return polygon(pts) if len(pts) >= 3 else None
        if self.tool == "brush":
            geom = brush_geometry(pts, self.brush_px / scale)
            return geom if geom.parts else None
        return None

    # ---- move / select / edit vertices ----------------------------------------------------------------------
    def _move_event(self, t: QEvent.Type, event: Any) -> bool:
        xy = self._slide_xy(event)
        if t == QEvent.Type.MouseButtonPress and event.button() == Qt.MouseButton.LeftButton:
            return self._press_select(xy)
        if t == QEvent.Type.MouseMove and self._drag is not None:
            d = self._drag
            d["now"] = xy
            self.layer.regions = [self._dragged(r, d) if r.region_id == d["id"] else r for r in self.layer.regions]
            d["moved"] = True
            self.view.update()
            return True
        if t == QEvent.Type.MouseButtonRelease and self._drag is not None:
            d, self._drag = self._drag, None
            if d.get("moved"):
                new = self._dragged(d["orig"], d)
                self.layer.replace(new, "move vertex" if d["vertex"] else "move region", d["orig"])
            return True
        return False

    def _press_select(self, xy: tuple[float, float]) -> bool:
        sel = self.layer.region(self.layer.selected)
        if sel is not None:
            vertex = self._vertex_at(sel.geometry, xy)
            if vertex is not None:
                self._drag = {"id": sel.region_id, "orig": sel, "start": xy, "now": xy, "vertex": vertex}
                return True
        hit = next((r for r in reversed(self.layer.regions) if contains(r.geometry, np.array([xy]))[0]), None)
        self.layer.select(hit.region_id if hit else None)
        if hit is None:
            return False  # empty slide: pan as usual
        self._drag = {"id": hit.region_id, "orig": hit, "start": xy, "now": xy, "vertex": None}
        return True

    def _vertex_at(self, geom: Geometry, xy: tuple[float, float]) -> tuple[int, int, int] | None:
        tol = (HANDLE_PX + 2) / self.view.model.state.scale
        for i, part in enumerate(geom.parts):
            for k, ring in enumerate(part.rings):
                d = np.abs(ring - np.array(xy)).max(axis=1)
                j = int(d.argmin())
                if d[j] <= tol:
                    return i, k, j
        return None

    @staticmethod
    def _dragged(region: Any, d: dict[str, Any]) -> Any:
        dx, dy = d["now"][0] - d["start"][0], d["now"][1] - d["start"][1]
        src = d["orig"].geometry
        if d["vertex"] is None:
            return region.with_geometry(src.translated(dx, dy))
        pi, ri, vi = d["vertex"]
        parts = []
        for i, part in enumerate(src.parts):
            rings = [r.copy() for r in part.rings]
            if i == pi:
                rings[ri][vi] += (dx, dy)
            parts.append(Part(rings[0], tuple(rings[1:])))
        return region.with_geometry(Geometry(tuple(parts)))
