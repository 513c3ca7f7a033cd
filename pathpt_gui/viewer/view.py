"""The tiled slide view: paints cached tiles over a pinned backdrop and drives the background loader.

State lives in `ViewportModel` and `OverlayModel` (Qt-free); this widget translates mouse/keyboard input into
model calls and model changes into tile requests and repaints. Painting order: dark background, the coarsest
level (pinned backdrop, never blank), any cached tiles of other levels (old tiles stay until new ones land),
the target level's tiles, the heatmap overlay, then the scale bar.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QRegion,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from pathpt_engine.slides.base import SlideReader

from . import decor
from .cache import TileCache
from .loader import TileLoader, TileResult, array_to_qimage
from .model import ViewportModel, ViewState
from .overlay import OverlayModel
from .overlay_item import OverlayPainter
from .tiles import TileKey, TileLayout
from .widgets import Legend, Minimap

log = logging.getLogger(__name__)

BACKDROP_MAX = 4096  # read the coarsest level whole when it is at most this big, else a thumbnail
WHEEL_STEP = 1.25
SCALED_TILES_BYTES = 64 * 2**20  # pre-scaled tiles kept for the current zoom (~10 screens at 1600x1000)
TILE_PAINT_INTERVAL_MS = 30  # while tiles stream in, repaint at most this often (the last tile paints at once)
PREFETCH_FALLBACK_MS = 100  # prefetch ring of a settled view that is not being painted (hidden) starts after this


def base_magnification(reader: SlideReader) -> float | None:
    """Objective power of level 0: the slide's own, else derived from mpp (0.25 µm/px = 40x), else None."""
    if reader.objective_power:
        return float(reader.objective_power)
    if reader.mpp:
        return 10.0 / reader.mpp[0]
    return None


class SlideView(QWidget):
    """An interactive, tile-based view of one open slide."""

    cursor_moved = Signal(float, float)  # level-0 x, y under the mouse
    view_changed = Signal()
    tile_error = Signal(str)  # first unreadable tile of this slide (logged once)
    settled = Signal()  # every visible tile of the target level is painted (or known missing)
    _request_soon = Signal()  # queued to self: one request per event-loop turn, ahead of the (low-priority) repaint

    def __init__(self, reader: SlideReader, cache_bytes: int = 512 * 2**20, threads: int = 4,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.reader = reader
        self.layout = TileLayout.from_reader(reader)
        self.model = ViewportModel(reader.dimensions, base_magnification(reader))
        self.overlay = OverlayModel()
        self.cache = TileCache(cache_bytes)
        self.missing: set[TileKey] = set()
        self.backdrop: QImage | None = None
        self._backdrop_done = False  # the overview read finished (it may have failed)
        self._backdrop_full_level = False
        self.stale_dropped = 0
        self.painted_keys: set[TileKey] = set()
        self._error_logged = False
        self.mpp_override: tuple[float, float] | None = None  # the user's pixel size for a slide without one
        self._closed = False
        self._was_settled = False
        self._drag_from: QPointF | None = None
        self._scaled_tiles = TileCache(SCALED_TILES_BYTES)
        self._scaled_for = 0.0
        self._overlay_painter = OverlayPainter(self.overlay)
        self.paint_hooks_under: list = []  # fn(painter, ViewState): drawn over the slide, under the heatmap
        self.paint_hooks_over: list = []  # fn(painter, ViewState): drawn over the heatmap
        self._visible_memo: tuple[ViewState | None, int, tuple[TileKey, ...]] = (None, -1, ())
        self._prefetch_due = False  # the view settled; its prefetch ring goes out after the next paint
        self._ring_requested = False  # the last request included the prefetch ring
        self.loader = TileLoader(reader, self.layout, threads=threads, parent=self)
        self.loader.batch_loaded.connect(self._on_batch)  # emitted on the GUI thread by the loader
        self.loader.job_done.connect(self._on_job, Qt.ConnectionType.QueuedConnection)
        self._request_timer = QTimer(self, singleShot=True, interval=0)
        self._request_timer.timeout.connect(self._issue_requests)
        self._request_posted = False
        self._request_soon.connect(self._issue_requests, Qt.ConnectionType.QueuedConnection)
        self._paint_timer = QTimer(self, singleShot=True, interval=TILE_PAINT_INTERVAL_MS)
        self._paint_timer.timeout.connect(self.update)
        self.model.changed.connect(self._on_view_changed)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setMinimumSize(200, 150)
        self.minimap = Minimap(self.model, self)
        self.legend = Legend(self.overlay, self)
        self.overlay.changed.connect(self._on_overlay_changed)  # after the legend, so it is sized first
        self.loader.submit_job("backdrop", self._read_backdrop)

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Level-0 µm/px shown by the scale bar: the slide's own, else the one the user gave (project), else None."""
        return self.reader.mpp or self.mpp_override

    def set_mpp_override(self, mpp: tuple[float, float] | None) -> None:
        self.mpp_override = mpp
        self.update()

    # lifecycle -----------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the reader threads (waits for reads in progress) and close the slide. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._request_timer.stop()
        self.loader.close()
        self.reader.close()

    def closeEvent(self, event: Any) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(event)

    # background work -----------------------------------------------------------------------------------
    def _read_backdrop(self) -> tuple[QImage, bool]:
        level = self.layout.coarsest
        w, h = self.layout.levels[level].size
        if max(w, h) <= BACKDROP_MAX:
            return array_to_qimage(self.reader.read_region((0, 0), level, (w, h))), True
        return array_to_qimage(self.reader.thumbnail(2048)), False

    def _on_job(self, name: str, result: Any, error: str) -> None:
        if self._closed or name != "backdrop":
            return
        self._backdrop_done = True
        if result is None:  # the coarsest level's tiles are now read one by one: bad ones are drawn hatched
            log.warning("%s: no overview image: %s", self.reader.path, error)
            self.tile_error.emit(error)
            self._request_timer.start(0)
        else:
            self.backdrop, self._backdrop_full_level = result
            self.minimap.set_image(self.backdrop)
            self._request_timer.start(0)  # the coarsest level may now come from the backdrop
        self.update()
        self._check_settled()

    def _on_view_changed(self, state: ViewState) -> None:
        """Post one request for the new view and a repaint.

        The request is a queued call, not a timer: the changes of one event (a resize and its refit) still
        coalesce into one request, but it runs before the repaint (a low-priority posted event) and before any
        timer, so the readers start while the backdrop is being painted.
        """
        self._was_settled = False
        self._prefetch_due = False
        if not self._request_posted:
            self._request_posted = True
            self._request_soon.emit()
        self.update()
        self.view_changed.emit()

    def _issue_requests(self) -> None:
        """Freeze the current view into one ordered request; everything not in it becomes stale.

        While visible target tiles are missing the request holds only the coarse level and the visible tiles, so
        the prefetch ring never competes with them for the CPU; once the view is settled and painted the ring
        is requested too (see `_check_settled` and `paintEvent`).
        """
        self._request_posted = False
        if self._closed:
            return
        self._request_timer.stop()
        self._ring_requested = self.is_settled()
        keys = self.layout.plan(self.model.state, prefetch=self._ring_requested)
        skip_coarsest = self._backdrop_full_level or not self._backdrop_done  # the backdrop covers it, or will
        keys = tuple(k for k in keys if k not in self.cache and k not in self.missing
                     and not (skip_coarsest and k.level == self.layout.coarsest))
        self.loader.request(keys)
        self._check_settled()

    def _on_batch(self, results: list[TileResult]) -> None:
        """Store one delivery of finished reads; repaint at once when it completes the view, else throttled."""
        if self._closed:
            return
        on_screen = False
        for result in results:
            if not self.loader.is_wanted(result.key):
                self.stale_dropped += 1
                continue
            if result.image is None:
                self._mark_missing(result)
            else:
                self.cache.put(result.key, result.image, result.image.sizeInBytes())
            on_screen = on_screen or self._on_screen(result.key)
        if self._check_settled():
            self._paint_timer.stop()
            self.update()
        elif on_screen and not self._paint_timer.isActive():
            self._paint_timer.start()

    def _mark_missing(self, result: TileResult) -> None:
        self.missing.add(result.key)
        if not self._error_logged:
            self._error_logged = True
            log.warning("%s: unreadable tile %s shown as missing: %s", self.reader.path, result.key, result.error)
            self.tile_error.emit(result.error)

    def _on_screen(self, key: TileKey) -> bool:
        x, y, w, h = self.layout.tile_rect(key)
        x0, y0, x1, y1 = self.model.state.visible_rect()
        return x < x1 and y < y1 and x + w > x0 and y + h > y0

    def target_level(self) -> int:
        return self.layout.level_for_scale(self.model.scale)

    def pending_visible(self) -> list[TileKey]:
        """Visible tiles of the target level that are neither cached nor known missing (nearest the centre first)."""
        level = self.target_level()
        if level == self.layout.coarsest and self._backdrop_full_level:
            return []
        return [k for k in self._visible(level) if k not in self.cache and k not in self.missing]

    def _visible(self, level: int) -> tuple[TileKey, ...]:
        """`layout.visible_tiles` of the current view, computed once per view (settle checks run per delivery)."""
        state = self.model.state
        memo_state, memo_level, keys = self._visible_memo
        if memo_state != state or memo_level != level:
            keys = tuple(self.layout.visible_tiles(state, level))
            self._visible_memo = (state, level, keys)
        return keys

    def is_settled(self) -> bool:
        return self._backdrop_done and not self.pending_visible()

    def is_idle(self) -> bool:
        """Settled, its prefetch ring requested, and nothing posted, queued, being read or awaiting delivery."""
        return (self.is_settled() and self._ring_requested and not self._request_posted
                and not self._request_timer.isActive() and self.loader.is_idle())

    def _check_settled(self) -> bool:
        """Emit `settled` once per view change when the last visible tile lands; True at that moment."""
        if not self._was_settled and self.is_settled():
            self._was_settled = True
            if not self._ring_requested:
                self._prefetch_due = True
                self._request_timer.start(PREFETCH_FALLBACK_MS)  # paintEvent brings it forward to the next turn
            self.settled.emit()
            return True
        return False

    def _on_overlay_changed(self, kind: str) -> None:
        self._overlay_painter.invalidate(kind)
        self.legend.move(self.width() - self.legend.width() - 14, self.height() - self.legend.height() - 14)
        self.update()

    # painting ------------------------------------------------------------------------------------------
    def _screen_rect(self, st: ViewState, x: float, y: float, w: float, h: float) -> QRectF:
        """Screen rect of a level-0 rect, on whole pixels.

        The view origin is snapped to a whole pixel (a shift under half a pixel) and each edge is rounded in
        slide space, so a tile's on-screen size depends only on the scale: panning never changes it, and the
        pre-scaled tile images stay valid for every pan frame.
        """
        ox = round(st.view_size[0] / 2 - st.center[0] * st.scale)
        oy = round(st.view_size[1] / 2 - st.center[1] * st.scale)
        s = st.scale
        return QRectF(QPointF(ox + round(x * s), oy + round(y * s)),
                      QPointF(ox + round((x + w) * s), oy + round((y + h) * s)))

    def _scaled(self, key: TileKey, img: QImage, w: int, h: int, scale: float) -> QImage:
        """The tile resampled to (w, h) once per zoom level, so pan frames are plain blits."""
        if (img.width(), img.height()) == (w, h):
            return img
        if scale != self._scaled_for:
            self._scaled_tiles.clear()
            self._scaled_for = scale
        hit = self._scaled_tiles.get(key)
        if hit is not None and (hit.width(), hit.height()) == (w, h):
            return hit
        out = img.scaled(w, h, Qt.AspectRatioMode.IgnoreAspectRatio, Qt.TransformationMode.SmoothTransformation)
        self._scaled_tiles.put(key, out, out.sizeInBytes())
        return out

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        st = self.model.state
        p = QPainter(self)
        p.fillRect(self.rect(), decor.BACKGROUND)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        self.painted_keys = set()
        target = self.target_level()
        rect = st.visible_rect()
        visible = self.layout.tiles_in(target, rect)
        covered = target == self.layout.coarsest and self._backdrop_full_level
        holes = [] if covered else [k for k in visible if k not in self.cache]
        if covered or holes:
            self._paint_under(p, st, target, holes if not covered else None)
        if not covered:
            self._paint_level(p, st, visible, missing=True)
        for hook in self.paint_hooks_under:  # e.g. annotated regions
            hook(p, st)
        self._overlay_painter.paint(p, st, self._screen_rect)
        for hook in self.paint_hooks_over:  # e.g. the shape being drawn
            hook(p, st)
        mpp = self.mpp
        decor.paint_scale_bar(p, self.width(), self.height(), st.scale, mpp[0] if mpp else None,
                              self.model.magnification)
        p.end()
        if self._prefetch_due:  # the settled view is on screen: now read the ring around it
            self._prefetch_due = False
            self._request_timer.start(0)

    def _paint_under(self, p: QPainter, st: ViewState, target: int, holes: list[TileKey] | None) -> None:
        """Backdrop, then cached tiles of other levels, clipped to the target tiles not yet loaded (`holes`).

        Clipping keeps streaming repaints cheap: only the shrinking unloaded area is resampled, and the backdrop
        is skipped where a cached tile of a neighbouring level already covers the hole.
        """
        fallback: list[TileKey] = []
        region = QRegion(self.rect())
        if holes is not None:
            region = QRegion()
            for k in holes:
                region += self._screen_rect(st, *self.layout.tile_rect(k)).toAlignedRect()
            hole_rect = self._level0_bounds(holes)
            others = [lv for lv in range(max(0, target - 1), self.layout.coarsest) if lv != target]
            for lv in sorted(others, key=lambda lv: -abs(lv - target)):
                fallback += [k for k in self.layout.tiles_in(lv, hole_rect) if k in self.cache]
        under = QRegion(region)
        for k in fallback:
            under -= self._screen_rect(st, *self.layout.tile_rect(k)).toAlignedRect()
        p.save()
        if not under.isEmpty():
            p.setClipRegion(under)
            slide_rect = self._screen_rect(st, 0, 0, *self.model.slide_size)
            if self.backdrop is not None:
                p.drawImage(slide_rect, self.backdrop)
            else:
                p.fillRect(slide_rect, decor.SLIDE_PLACEHOLDER)
        if fallback:  # old tiles of neighbouring levels stay visible until the target level lands
            p.setClipRegion(region)
            self._paint_level(p, st, fallback, missing=False)
        p.restore()

    def _level0_bounds(self, keys: list[TileKey]) -> tuple[float, float, float, float]:
        rects = [self.layout.tile_rect(k) for k in keys]
        return (min(r[0] for r in rects), min(r[1] for r in rects),
                max(r[0] + r[2] for r in rects), max(r[1] + r[3] for r in rects))

    def _paint_level(self, p: QPainter, st: ViewState, keys: list[TileKey], missing: bool) -> None:
        for key in keys:
            img = self.cache.get(key)
            if img is not None:
                r = self._screen_rect(st, *self.layout.tile_rect(key))
                w, h = int(r.width()), int(r.height())
                if 0 < w <= 2 * img.width() and 0 < h <= 2 * img.height():  # modest zoom: pre-scale once
                    p.drawImage(r.topLeft(), self._scaled(key, img, w, h, st.scale))
                else:
                    p.drawImage(r, img)
                self.painted_keys.add(key)
            elif missing and key in self.missing:
                decor.paint_missing(p, self._screen_rect(st, *self.layout.tile_rect(key)))

    # input ---------------------------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        self.model.set_view_size(self.width(), self.height())
        self.minimap.move(self.width() - self.minimap.width() - 14, 14)
        self.legend.move(self.width() - self.legend.width() - 14, self.height() - self.legend.height() - 14)
        super().resizeEvent(event)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        dy = event.angleDelta().y()
        if dy == 0:
            return
        pos = event.position()
        self.model.zoom_at(WHEEL_STEP ** (dy / 120.0), pos.x(), pos.y())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        if self._drag_from is not None:
            d = pos - self._drag_from
            self._drag_from = pos
            self.model.pan_screen(d.x(), d.y())
        x, y = self.model.state.screen_to_slide(pos.x(), pos.y())
        self.cursor_moved.emit(x, y)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton:
            self._drag_from = None
            self.unsetCursor()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        factor = 0.5 if event.modifiers() & Qt.KeyboardModifier.ShiftModifier else 2.0
        self.model.zoom_at(factor, event.position().x(), event.position().y())

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        step_x, step_y = self.width() / 4, self.height() / 4
        pans = {Qt.Key.Key_Left: (step_x, 0), Qt.Key.Key_Right: (-step_x, 0),
                Qt.Key.Key_Up: (0, step_y), Qt.Key.Key_Down: (0, -step_y)}
        if key in pans:
            self.model.pan_screen(*pans[key])
        elif key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.model.zoom_at(2.0)
        elif key in (Qt.Key.Key_Minus, Qt.Key.Key_Underscore):
            self.model.zoom_at(0.5)
        elif key == Qt.Key.Key_0:
            self.model.fit()
        else:
            super().keyPressEvent(event)
