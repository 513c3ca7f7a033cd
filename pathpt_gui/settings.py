"""Persistent GUI settings (QSettings): tile-cache budget, reader threads, recent files."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

ORG, APP = "PathPT", "PathPT Studio"
MAX_RECENT = 10
CACHE_MB_RANGE = (64, 16384)
THREADS_RANGE = (1, 16)


class AppSettings:
    """Typed access to the app's QSettings; pass an explicit QSettings (e.g. an ini file) in tests."""

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORG, APP)

    @classmethod
    def at(cls, ini_path: str | Path) -> AppSettings:
        """Settings stored in a given ini file (isolated from the user's own)."""
        return cls(QSettings(str(ini_path), QSettings.Format.IniFormat))

    def _int(self, key: str, default: int, lo: int, hi: int) -> int:
        try:
            value = int(self.q.value(key, default))
        except (TypeError, ValueError):
            value = default
        return min(max(value, lo), hi)

    @property
    def cache_mb(self) -> int:
        """Tile-cache budget per open slide, in MiB."""
        return self._int("viewer/cache_mb", 512, *CACHE_MB_RANGE)

    @cache_mb.setter
    def cache_mb(self, value: int) -> None:
        if not CACHE_MB_RANGE[0] <= int(value) <= CACHE_MB_RANGE[1]:
            raise ValueError(f"cache size must be {CACHE_MB_RANGE[0]}..{CACHE_MB_RANGE[1]} MiB, got {value}")
        self.q.setValue("viewer/cache_mb", int(value))

    @property
    def reader_threads(self) -> int:
        return self._int("viewer/reader_threads", 4, *THREADS_RANGE)

    @reader_threads.setter
    def reader_threads(self, value: int) -> None:
        if not THREADS_RANGE[0] <= int(value) <= THREADS_RANGE[1]:
            raise ValueError(f"reader threads must be {THREADS_RANGE[0]}..{THREADS_RANGE[1]}, got {value}")
        self.q.setValue("viewer/reader_threads", int(value))

    def recent_files(self) -> list[str]:
        value = self.q.value("recent/files", [])
        if isinstance(value, str):  # QSettings returns a lone string for one-element lists on some backends
            value = [value]
        return [str(v) for v in (value or [])][:MAX_RECENT]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        files = [p] + [f for f in self.recent_files() if f != p]
        self.q.setValue("recent/files", files[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("recent/files", [])

    def sync(self) -> None:
        self.q.sync()
