"""Issue 16 section 1 (GUI): overlay settings kept between launches; the export dialog, remembered per project."""

from __future__ import annotations

from pathpt_gui.main_window import MainWindow
from pathpt_gui.settings import AppSettings


def test_overlay_settings_survive_a_relaunch(qtbot, tmp_path, slide_file):
    ini = tmp_path / "s.ini"
    win = MainWindow(AppSettings.at(ini))
    qtbot.addWidget(win)
    win.show()
    win.open_slide(slide_file, remember=False)
    win.set_overlay_opacity(80)
    win.set_overlay_colormap("magma")
    win.set_overlay_smooth(True)
    win.settings.sync()
    win.close()
    again = MainWindow(AppSettings.at(ini))  # a new launch: settings read back from the file
    qtbot.addWidget(again)
    again.show()
    view = again.open_slide(slide_file, remember=False)
    assert view.overlay.opacity == 0.8 and view.overlay.colormap == "magma" and view.overlay.smooth
    again.close()


def test_bad_stored_overlay_settings_fall_back(tmp_path):
    st = AppSettings.at(tmp_path / "s.ini")
    st.q.setValue("overlay/opacity", "lots")
    assert st.overlay_opacity == 0.45
    st.q.setValue("overlay/opacity", 7)
    assert st.overlay_opacity == 0.45
