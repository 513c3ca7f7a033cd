"""Issue 16 section 1 (GUI): overlay settings kept between launches; the export dialog, remembered per project."""

from __future__ import annotations

from project_fixtures import project_with_run

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


# ---- the export dialog ------------------------------------------------------------------------------------------
def test_ctrl_e_opens_the_dialog_instead_of_writing(make_window, slide_file, tmp_path, monkeypatch):
    from pathpt_gui.export_dialog import ExportDialog

    win, wf = make_window(workflow=True)
    run_id, _sid, _cs = project_with_run(tmp_path / "proj", slide_file)
    wf.ctrl.open_project(tmp_path / "proj")
    wf.ctrl.set_current_run(run_id)
    shown = []
    monkeypatch.setattr(ExportDialog, "exec", lambda self: shown.append(self) or 0)  # the user cancels
    wf.actions["export"].trigger()
    assert len(shown) == 1 and shown[0].run.currentData() == run_id
    assert not wf.ctrl.worker.busy and not list((tmp_path / "proj" / "exports").glob("*"))
    from pathpt_engine.workflow.export import KINDS

    assert set(shown[0].kind_boxes) == set(KINDS)  # every kind the engine knows is offered


def test_dialog_choices_drive_the_export_and_are_remembered(make_window, slide_file, tmp_path, qtbot):
    import math

    from PIL import Image

    from pathpt_engine.project import Project
    from pathpt_gui.export_dialog import SETTING_KEY, make_export_dialog, start_export

    win, wf = make_window(workflow=True)
    run_id, sid, cs = project_with_run(tmp_path / "proj", slide_file)
    ctrl = wf.ctrl
    ctrl.open_project(tmp_path / "proj")
    ctrl.set_current_run(run_id)
    win.open_slide(slide_file, remember=False)
    dlg = make_export_dialog(wf)
    current = next(b for b in dlg.scope_group.buttons() if b.property("scope") == "current")
    assert current.isEnabled()
    current.setChecked(True)
    layer = cs.subtype_names[1]
    dlg.layer.setCurrentIndex(dlg.layer.findData(layer))
    dlg.cmap.setCurrentText("magma")
    dlg.opacity.setValue(70)
    dlg.by_mpp.setChecked(True)
    dlg.mpp.setValue(4.0)  # the slide is 0.25 µm/px: downsample 16
    for kind, box in dlg.kind_boxes.items():
        box.setChecked(kind in ("overlay_png", "scores_h5"))
    dlg.folder.setText(str(tmp_path / "out"))
    dlg.dpi.setValue(300)
    with qtbot.waitSignal(ctrl.job_finished, timeout=60000) as done:
        assert start_export(wf, dlg.choices())
    out = tmp_path / "out"
    folder = next(out.iterdir())  # a new dated subfolder (issue 18)
    assert str(folder) == done.args[1]["folder"][0] and folder.name.startswith(run_id)
    assert {p.name for p in folder.iterdir() if p.is_file()} >= {f"{sid}_overlay.png", f"{sid}_scores.h5"}
    assert not (folder / f"{sid}.geojson").exists() and not (folder / f"{sid}_heatmap.png").exists()
    rec = ctrl.project.slides.get(sid)
    with Image.open(folder / f"{sid}_overlay.png") as im:  # 4 µm/px on a 0.25 µm/px slide
        assert im.size == (math.ceil(rec.width / 16), math.ceil(rec.height / 16))
        text = " ".join(str(v) for v in im.info.values())
    assert run_id in text and "pathpt-paper" in text  # the caption names the run and its method
    ctrl.close_project()
    with Project.open(tmp_path / "proj") as p:  # remembered in the project itself
        kept = p.get_setting(SETTING_KEY)
    assert kept["layer"] == layer and kept["cmap"] == "magma" and kept["kinds"] == ["overlay_png", "scores_h5"]
    ctrl.open_project(tmp_path / "proj")
    again = make_export_dialog(wf).choices()
    assert (again.layer, again.cmap, again.opacity, again.by_mpp, again.mpp) == (layer, "magma", 0.7, True, 4.0)
    assert again.kinds == ("overlay_png", "scores_h5") and again.scope == "current" and again.dpi == 300


def test_stored_choices_that_make_no_sense_fall_back():
    from pathpt_gui.export_dialog import ExportChoices

    c = ExportChoices.from_dict({"kinds": ["overlay_png", "nonsense"], "opacity": "high", "by_mpp": 1,
                                 "downsample": 4, "layer": 3})
    assert c.kinds == ("overlay_png",) and c.opacity == 0.5 and c.by_mpp is False and c.downsample == 4.0
    assert c.layer == "argmax"
    assert ExportChoices.from_dict({"dpi": 300, "legend_strip": True}).dpi == 300
    assert ExportChoices.from_dict({"dpi": True}).dpi == 150
    assert ExportChoices.from_dict("garbage") == ExportChoices()
