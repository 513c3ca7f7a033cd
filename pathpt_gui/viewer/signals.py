"""A tiny Qt-free change signal for the viewer's state models (napari `EventedModel` style, minimal).

Models hold plain state and emit; widgets connect and translate. Keeping Qt out of the models lets the
engine-side logic (level choice, tile planning, colouring) be tested without a QApplication.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Signal:
    """A list of callbacks called synchronously, in connection order, on `emit`."""

    def __init__(self) -> None:
        self._slots: list[Callable[..., Any]] = []

    def connect(self, slot: Callable[..., Any]) -> None:
        """Call `slot(*args)` on every future `emit(*args)`."""
        if slot not in self._slots:
            self._slots.append(slot)

    def disconnect(self, slot: Callable[..., Any] | None = None) -> None:
        """Remove one slot, or all of them when `slot` is None."""
        if slot is None:
            self._slots.clear()
        elif slot in self._slots:
            self._slots.remove(slot)

    def emit(self, *args: Any) -> None:
        """Call every connected slot with `args`."""
        for slot in list(self._slots):
            slot(*args)

    def __len__(self) -> int:
        return len(self._slots)
