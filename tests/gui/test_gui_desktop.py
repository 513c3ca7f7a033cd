"""A package users can install: the app icon is shipped and set, and the Linux desktop entry installs per user."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui


def test_install_desktop_entry_and_icon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathpt_gui.app import main

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    assert main(["--install-desktop-entry"]) == 0
    entry = tmp_path / "share" / "applications" / "pathpt-studio.desktop"
    icon = tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / "pathpt-studio.png"
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(entry, encoding="utf-8")
    de = cfg["Desktop Entry"]
    assert de["Type"] == "Application" and de["Name"] == "PathPT Studio" and de["Icon"] == "pathpt-studio"
    exe = de["Exec"].split()[0]
    assert exe.endswith("pathpt-gui") and de["Exec"].endswith("%F")
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_window_icon_is_set(qtbot) -> None:
    from PySide6.QtWidgets import QApplication

    from pathpt_gui.app import _set_app_icon
    from pathpt_gui.desktop import window_icon_path

    app = QApplication.instance()
    _set_app_icon(app)
    assert not app.windowIcon().isNull() and window_icon_path().is_file()
    assert app.desktopFileName() == "pathpt-studio"
