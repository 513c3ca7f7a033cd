"""The PySide6 None-refcount guard: void Qt calls must not be able to exhaust None's reference count."""

from __future__ import annotations

import sys

import pytest
from PySide6.QtCore import QPointF

import pathpt_gui  # noqa: F401  (applies the guard)
from pathpt_gui._none_guard import none_refcount_leaks, protect_none

pytestmark = pytest.mark.gui


def test_many_void_calls_do_not_kill_none() -> None:
    pt = QPointF()
    for _ in range(100_000):  # without the guard on 3.11 + PySide6 6.12 this aborts the interpreter
        pt.setX(1.0)
    assert sys.getrefcount(None) > 1000
    if sys.version_info < (3, 12) and none_refcount_leaks():
        assert protect_none() is True  # already applied at import
