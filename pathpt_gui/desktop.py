"""Linux desktop integration: `pathpt-gui --install-desktop-entry` puts the app in the desktop's menus.

Writes `<data>/applications/pathpt-studio.desktop` (Exec pointing at this installation's `pathpt-gui`) and the
icon to `<data>/icons/hicolor/256x256/apps/pathpt-studio.png`, where `<data>` is `$XDG_DATA_HOME` (default
`~/.local/share`): per user, no root needed. Qt-free, so it runs without a display.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from pathpt_engine.assets import resource_path
from pathpt_engine.atomic import write_bytes_atomic, write_text_atomic

APP_ID = "pathpt-studio"


def window_icon_path() -> Path:
    """The app icon (PNG, 256 px) used for the window and the desktop entry."""
    return resource_path("icons", f"{APP_ID}.png")


def _data_home() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")


def _gui_command() -> str:
    """This installation's `pathpt-gui` (absolute), so the menu entry starts the same one."""
    here = Path(sys.executable).parent / "pathpt-gui"
    return str(here) if here.exists() else (shutil.which("pathpt-gui") or "pathpt-gui")


def install_desktop_entry(data_home: Path | None = None) -> tuple[Path, Path]:
    """Install the desktop entry and icon for this user; returns (desktop file, icon)."""
    root = data_home or _data_home()
    entry = root / "applications" / f"{APP_ID}.desktop"
    icon = root / "icons" / "hicolor" / "256x256" / "apps" / f"{APP_ID}.png"
    text = resource_path("linux", f"{APP_ID}.desktop").read_text(encoding="utf-8")
    text = text.replace("Exec=pathpt-gui %F", f"Exec={_gui_command()} %F")
    entry.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(entry, text)
    icon.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(icon, window_icon_path().read_bytes())
    return entry, icon
