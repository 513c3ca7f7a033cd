"""One slide's annotations in the GUI: regions and tile corrections backed by the project store, with undo/redo.

Every edit goes to the project database at once (one committed transaction), so a killed app loses nothing that
was drawn. Undo/redo replay the inverse edit against the store, so they are stored at once too. An outline the
engine refuses (self-intersecting, zero area) is not stored: `error` says why and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from pathpt_engine.annotations.geometry import Geometry
from pathpt_engine.annotations.regions import Region
from pathpt_engine.errors import PathPTError

log = logging.getLogger(__name__)


@dataclass
class _Edit:
    text: str
    undo: Callable[[], None]
    redo: Callable[[], None]


class AnnotationLayer(QObject):
    """Regions + tile corrections of `slide_id` in `project` (None: nothing to annotate)."""

    changed = Signal()  # regions, corrections or selection changed
    error = Signal(str)  # an edit was refused (one line)

    def __init__(self, project: Any, slide_id: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.project, self.slide_id = project, slide_id
        self.selected: str | None = None
        self._undo: list[_Edit] = []
        self._redo: list[_Edit] = []
        self.regions: list[Region] = []
        self.corrections: dict[tuple[int, int], str] = {}
        self.reload()

    @property
    def store(self) -> Any:
        return self.project.annotations

    def reload(self) -> None:
        self.regions = self.store.list(self.slide_id)
        self.corrections = self.store.tile_corrections(self.slide_id)
        if self.selected and not any(r.region_id == self.selected for r in self.regions):
            self.selected = None
        self.changed.emit()

    def region(self, region_id: str | None) -> Region | None:
        return next((r for r in self.regions if r.region_id == region_id), None)

    # ---- edits ----------------------------------------------------------------------------------------------
    def _apply(self, fn: Callable[[], Any]) -> Any:
        try:
            out = fn()
        except PathPTError as exc:
            log.warning("%s", exc)
            self.error.emit(" ".join(str(exc).split()))
            return None
        self.reload()
        return out

    def _push(self, edit: _Edit) -> None:
        self._undo.append(edit)
        self._redo.clear()

    def add(self, geometry: Geometry, class_name: str, kind: str) -> Region | None:
        """Store a new region (validated); None when refused."""
        out = self._apply(lambda: self.store.add(Region(self.slide_id, class_name, geometry, kind)))
        if out is None:
            return None
        region, notes = out
        if notes:
            log.info("region repaired: %s", "; ".join(notes))
        rid = region.region_id
        seq = {"n": None}

        def undo() -> None:
            _, seq["n"] = self.store.delete(rid)

        self._push(_Edit(f"draw {kind}", undo, lambda: self.store.add(region, seq["n"])))
        self.selected = rid
        self.changed.emit()
        return region

    def replace(self, new: Region, text: str, old: Region | None = None) -> bool:
        """Store a changed outline/class of an existing region (validated); False when refused.

        `old` is the region before the edit (default: as listed now; a drag passes the region it started from).
        """
        old = old or self.region(new.region_id)
        if old is None:
            return False
        out = self._apply(lambda: self.store.update(new))
        if out is None:
            self.reload()  # drop the dragged preview: show the stored region again
            return False
        stored = out[0]
        self._push(_Edit(text, lambda: self.store.update(old), lambda: self.store.update(stored)))
        return True

    def delete(self, region_id: str | None = None) -> bool:
        rid = region_id or self.selected
        if rid is None or self.region(rid) is None:
            return False
        out = self._apply(lambda: self.store.delete(rid))
        if out is None:
            return False
        region, seq = out
        self._push(_Edit("delete region", lambda: self.store.add(region, seq), lambda: self.store.delete(rid)))
        self.selected = None
        self.changed.emit()
        return True

    def set_tile(self, x: int, y: int, class_name: str | None) -> None:
        """Correct (or with None un-correct) the tile whose top-left corner is (x, y)."""
        prev = self._apply(lambda: self.store.set_tile(self.slide_id, x, y, class_name))
        if prev == class_name:
            return
        self._push(_Edit("correct tile", lambda: self.store.set_tile(self.slide_id, x, y, prev),
                         lambda: self.store.set_tile(self.slide_id, x, y, class_name)))

    def select(self, region_id: str | None) -> None:
        if region_id != self.selected:
            self.selected = region_id
            self.changed.emit()

    # ---- undo/redo ------------------------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> str | None:
        """Replay the inverse of the last edit; its text, or None when there is none or the store refused it."""
        return self._replay(self._undo, self._redo, undo=True)

    def redo(self) -> str | None:
        """Replay the last undone edit; its text, or None when there is none or the store refused it."""
        return self._replay(self._redo, self._undo, undo=False)

    def _replay(self, source: list[_Edit], target: list[_Edit], *, undo: bool) -> str | None:
        """Pop an edit from `source`, apply its undo (or redo) to the store, and on success push it to `target`."""
        if not source:
            return None
        edit = source.pop()
        step = edit.undo if undo else edit.redo
        if self._apply(lambda: (step(), True)[1]) is None:
            return None
        target.append(edit)
        return edit.text
