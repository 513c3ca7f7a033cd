"""Persistent GUI settings (QSettings): tile-cache budget, reader threads, overlay look, recent files."""

from __future__ import annotations

from pathlib import Path
from typing import overload

from PySide6.QtCore import QSettings

ORG, APP = "PathPT", "PathPT Studio"
MAX_RECENT = 10
CACHE_MB_RANGE = (64, 16384)
THREADS_RANGE = (1, 16)


class _RangedInt:
    """An integer setting within `bounds`: a missing or unreadable stored value reads as `default`, one out of
    range as the nearest bound; setting a value out of range raises ValueError ("<what> must be lo..hi<unit>")."""

    def __init__(self, key: str, default: int, bounds: tuple[int, int], what: str, unit: str = "") -> None:
        self.key, self.default, self.bounds, self.what, self.unit = key, default, bounds, what, unit

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _RangedInt: ...
    @overload
    def __get__(self, obj: AppSettings, owner: type | None = None) -> int: ...
    def __get__(self, obj: AppSettings | None, owner: type | None = None) -> int | _RangedInt:
        if obj is None:
            return self
        raw = obj.q.value(self.key, self.default)
        try:
            value = int(raw) if isinstance(raw, (int, float, str)) else self.default
        except ValueError:
            value = self.default
        return min(max(value, self.bounds[0]), self.bounds[1])

    def __set__(self, obj: AppSettings, value: int) -> None:
        lo, hi = self.bounds
        if not lo <= int(value) <= hi:
            raise ValueError(f"{self.what} must be {lo}..{hi}{self.unit}, got {value}")
        obj.q.setValue(self.key, int(value))


class AppSettings:
    """Typed access to the app's QSettings; pass an explicit QSettings (e.g. an ini file) in tests."""

    cache_mb = _RangedInt("viewer/cache_mb", 512, CACHE_MB_RANGE, "cache size", " MiB")  # tile cache per open slide
    reader_threads = _RangedInt("viewer/reader_threads", 4, THREADS_RANGE, "reader threads")

    def __init__(self, qsettings: QSettings | None = None) -> None:
        self.q = qsettings if qsettings is not None else QSettings(ORG, APP)

    @classmethod
    def at(cls, ini_path: str | Path) -> AppSettings:
        """Settings stored in a given ini file (isolated from the user's own)."""
        return cls(QSettings(str(ini_path), QSettings.Format.IniFormat))

    # heatmap overlay look, kept between launches -------------------------------------------------------
    @property
    def overlay_opacity(self) -> float:
        """Heatmap opacity in [0, 1] (a bad stored value falls back to 0.45)."""
        raw = self.q.value("overlay/opacity", 0.45)
        try:
            value = float(raw) if isinstance(raw, (int, float, str)) else 0.45
        except ValueError:
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
        if not isinstance(value, (list, tuple)):  # None (nothing stored) or something unreadable
            return []
        return [str(v) for v in value][:MAX_RECENT]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        files = [p] + [f for f in self.recent_files() if f != p]
        self.q.setValue("recent/files", files[:MAX_RECENT])

    def clear_recent(self) -> None:
        self.q.setValue("recent/files", [])

    def sync(self) -> None:
        self.q.sync()
