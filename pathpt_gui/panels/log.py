"""Log panel: the app's log records and job messages, errors in red (thread-safe via a queued signal)."""

from __future__ import annotations

import contextlib
import html
import logging
import time

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QPlainTextEdit, QVBoxLayout, QWidget

COLORS = {"error": "#ff7b72", "warning": "#e8a33c", "info": "#c8ccd0", "debug": "#8a8e92"}
MAX_LINES = 5000


class _Bridge(QObject):
    record = Signal(str, str)


class QtLogHandler(logging.Handler):
    """Forwards log records (from any thread) to the GUI thread as (level, text)."""

    def __init__(self, level: int = logging.INFO) -> None:
        super().__init__(level)
        self.bridge = _Bridge()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(RuntimeError):  # the bridge was deleted at exit
            self.bridge.record.emit(record.levelname.lower(), self.format(record))


class LogPanel(QWidget):
    """Read-only, coloured, capped log view; `append(level, text)` adds one line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QPlainTextEdit(readOnly=True)
        self.text.setMaximumBlockCount(MAX_LINES)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.text)
        self.lines: list[tuple[str, str]] = []

    def append(self, level: str, text: str) -> None:
        self.lines.append((level, text))
        del self.lines[:-MAX_LINES]
        stamp = time.strftime("%H:%M:%S")
        color = COLORS.get(level, COLORS["info"])
        self.text.appendHtml(f"<span style='color:#7a7e82'>{stamp}</span> "
                             f"<span style='color:{color}'>{html.escape(text)}</span>")
