"""The PySide6 None-refcount guard: void Qt calls must not be able to exhaust None's reference count."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QObject, QPointF, Signal

from pathpt_gui._none_guard import none_refcount_leaks, protect_none

pytestmark = pytest.mark.gui


class _Emitter(QObject):
    sig = Signal(object)


def test_many_void_calls_and_emits_do_not_kill_none_or_bools() -> None:
    pt, em = QPointF(), _Emitter()
    for _ in range(60_000):  # without the guard on 3.11 + PySide6 6.12 this aborts the interpreter
        pt.setX(1.0)
        em.sig.emit(1)
    assert min(sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)) > 1000
    if sys.version_info < (3, 12) and none_refcount_leaks():
        assert protect_none() is True  # already applied by the GUI conftest
