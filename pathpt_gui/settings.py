"""Persistent GUI settings (QSettings): tile-cache budget, reader threads, overlay look, recent files."""

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

    # heatmap overlay look, kept between launches -------------------------------------------------------
    @property
    def overlay_opacity(self) -> float:
        """Heatmap opacity in [0, 1] (a bad stored value falls back to 0.45)."""
        try:
            value = float(self.q.value("overlay/opacity", 0.45))
        except (TypeError, ValueError):
            return 0.45
        return value if 0.0 <= value <= 1.0 else 0.45

    @overlay_opacity.setter
    def overlay_opacity(self, value: float) -> None:
        if not 0.0 <= float(value) <= 1.0:
            raise ValueError(f"overlay opacity must be in [0, 1], got {value}")
        self.q.setValue("overlay/opacity", float(value))

    @property
    def overlay_colormap(self) -> str:
        return str(self.q.value("overlay/colormap", "viridis") or "viridis")

    @overlay_colormap.setter
    def overlay_colormap(self, name: str) -> None:
        self.q.setValue("overlay/colormap", str(name))

    @property
    def overlay_smooth(self) -> bool:
        return str(self.q.value("overlay/smooth", "false")).lower() in ("true", "1")

    @overlay_smooth.setter
    def overlay_smooth(self, value: bool) -> None:
        self.q.setValue("overlay/smooth", "true" if value else "false")

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
