"""Work around a None reference-count leak of PySide6 6.12 on Python 3.11.

Every void-returning PySide6 6.12 method (QPainter.drawImage, QWidget.update, QPen.setWidth, ...) returns
`None` without taking a reference. On Python 3.12+ None is immortal (PEP 683) so this is harmless; on 3.11
each call drops None's reference count by one and the process aborts with "Fatal Python error: none_dealloc"
after some thousands of calls (the viewer hit it within seconds of panning). When, and only when, the leak is
detected on an interpreter without immortal objects, we give None a very large reference count, which is what
PEP 683 does. Remove this module once Python >= 3.12 or a fixed PySide6 is the floor.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

_CUSHION = 1 << 48  # ~2.8e14 leaked references before None could reach zero again
_applied = False


def none_refcount_leaks(calls: int = 64) -> bool:
    """True when a void PySide6 call lowers None's reference count."""
    from PySide6.QtCore import QPointF

    pt = QPointF()
    before = sys.getrefcount(None)
    for _ in range(calls):
        pt.setX(1.0)
    return sys.getrefcount(None) <= before - calls // 2


def protect_none() -> bool:
    """Make None effectively immortal when PySide6 leaks its references; returns True when applied."""
    global _applied
    if _applied or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return _applied
    if not none_refcount_leaks():
        return False
    ctypes.c_ssize_t.from_address(id(None)).value += _CUSHION
    _applied = True
    log.debug("PySide6 leaks references to None on Python %s; None made effectively immortal",
              sys.version.split()[0])
    return True
