"""Work around the None/True/False reference-count leaks of PySide6 6.12 on Python 3.11.

Every void-returning PySide6 6.12 method (QPainter.drawImage, QWidget.update, QPen.setWidth, ...) returns
`None` without taking a reference, and `Signal.emit` does the same with its bool result. On Python 3.12+ None is immortal (PEP 683) so this is harmless; on 3.11
each call drops the reference count by one and the process aborts with "Fatal Python error: none_dealloc" (or
bool_dealloc) after some thousands of calls (the viewer hit it within seconds of panning). When, and only when,
a leak is detected on an interpreter without immortal objects, we give None, True and False a very large
reference count, which is what PEP 683 does. Remove this module once Python >= 3.12 or a fixed PySide6 is the floor.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_CUSHION = 1 << 48  # ~2.8e14 leaked references before None could reach zero again
_applied = False


def none_refcount_leaks(calls: int = 64) -> bool:
    """True when a void PySide6 call or a signal emit lowers the reference count of None or of a bool."""
    from PySide6.QtCore import QObject, QPointF, Signal

    class _Probe(QObject):
        ping = Signal()

    pt, probe = QPointF(), _Probe()
    before = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    for _ in range(calls):
        pt.setX(1.0)
        probe.ping.emit()
    after = (sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False))
    return any(a <= b - calls // 2 for a, b in zip(after, before, strict=True))


def protect_none() -> bool:
    """Make None, True and False effectively immortal when PySide6 leaks their references; True when applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not none_refcount_leaks():
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += _CUSHION
    _applied = True
    log.debug("PySide6 leaks references to None/bools on Python %s; they are made effectively immortal",
              sys.version.split()[0])
    return True
