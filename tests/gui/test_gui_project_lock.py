"""Two windows, one project: the second opens it read-only with a banner, takes over when the first has died, and
a forced take-over turns the first read-only and tells its user (no edit lost silently)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pathpt_engine.errors import ProjectError
from pathpt_engine.prompts.classsets import synth_classset

pytestmark = pytest.mark.gui


def _controller(qtbot, tmp_path: Path, name: str):
    from PySide6.QtCore import QSettings

    from pathpt_gui.project_controller import ProjectController

    ctrl = ProjectController(settings=QSettings(str(tmp_path / f"{name}.ini"), QSettings.Format.IniFormat))
    messages: list[tuple[str, str]] = []
    banners: list[str] = []
    ctrl.message.connect(lambda lvl, text: messages.append((lvl, text)))
    ctrl.lock_changed.connect(banners.append)
    return ctrl, messages, banners


def test_second_instance_is_read_only_and_takes_over_when_the_first_dies(qtbot, tmp_path, slide_file) -> None:
    first, _m1, banners1 = _controller(qtbot, tmp_path, "a")
    second, m2, banners2 = _controller(qtbot, tmp_path, "b")
    first.create_project(tmp_path / "proj")
    first.set_classset(synth_classset(2))
    a, b = first.classset().subtype_names[:2]
    first.add_slides([slide_file])
    assert banners1 == [""] and not first.project.read_only
    second.open_project(tmp_path / "proj")
    assert second.project.read_only
    assert "has this project open" in banners2[-1] and f"process {os.getpid()}" in banners2[-1]
    assert any(lvl == "warning" and "opened read-only" in t for lvl, t in m2)
    with pytest.raises(ProjectError, match="has this project open"):
        second.set_label(["slide"], a)
    first.set_label(["slide"], a)  # the holder writes as usual
    assert not second.take_over()  # the first still holds it
    first.shutdown()  # the first window goes away (its lock is released, as on a crash)
    assert second.take_over()
    assert banners2[-1] == "" and not second.project.read_only
    second.set_label(["slide"], b)
    assert second.project.labels.all()["slide"].label == b
    second.shutdown()


def test_forced_take_over_makes_the_first_read_only_and_says_so(qtbot, tmp_path, slide_file) -> None:
    first, m1, banners1 = _controller(qtbot, tmp_path, "a")
    second, _m2, _b2 = _controller(qtbot, tmp_path, "b")
    first.create_project(tmp_path / "proj")
    first.set_classset(synth_classset(2))
    a = first.classset().subtype_names[0]
    first.add_slides([slide_file])
    second.open_project(tmp_path / "proj")
    assert second.take_over(force=True) and not second.project.read_only
    first.check_lock()  # its timer does this every few seconds
    assert first.project.read_only and "took this project over" in banners1[-1]
    assert any(lvl == "error" and "changes made from now on are not saved" in t for lvl, t in m1)
    with pytest.raises(ProjectError, match="took this project over"):
        first.set_label(["slide"], a)
    first.check_lock()  # told once
    assert sum("not saved" in t for _l, t in m1) == 1
    first.shutdown()
    second.shutdown()


def test_holder_killed_with_sigkill_releases_the_project(tmp_path) -> None:
    from pathpt_engine.project import Project
    from pathpt_gui.project_lock import ProjectSession

    Project.create(tmp_path / "proj").close()
    code = ("import sys, time\nfrom pathpt_gui.project_lock import ProjectSession\n"
            "s = ProjectSession(); p = s.open(sys.argv[1]); print('held', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "proj")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        session = ProjectSession()
        project = session.open(tmp_path / "proj")
        assert project.read_only and f"process {proc.pid}" in session.locked_by
        project.close()
        proc.kill()
        proc.wait(10)
        assert session.take_over(tmp_path / "proj")  # the dead holder's lock is gone, no force needed
        session.release()
    finally:
        proc.kill()
        proc.wait(10)


def test_banner_in_the_second_window(qtbot, tmp_path) -> None:
    from pathpt_gui.main_window import MainWindow
    from pathpt_gui.panels.workflow import install_workflow
    from pathpt_gui.settings import AppSettings

    wins = []
    for name in ("a", "b"):
        win = MainWindow(AppSettings.at(tmp_path / f"{name}.ini"))
        qtbot.addWidget(win)
        win.show()
        wins.append((win, install_workflow(win, dialogs=False)))
    (_w1, wf1), (_w2, wf2) = wins
    wf1.ctrl.create_project(tmp_path / "proj")
    wf2.ctrl.open_project(tmp_path / "proj")
    assert not wf1.lock_banner.isVisible()
    assert wf2.lock_banner.isVisible() and "Read-only:" in wf2.lock_banner.label.text()
    wf2._take_over()  # the first still runs and no dialog may ask: not taken over, and the user is told
    assert wf2.ctrl.project.read_only and wf2.lock_banner.isVisible()
    wf1.ctrl.shutdown()
    wf2._take_over()
    assert not wf2.ctrl.project.read_only and not wf2.lock_banner.isVisible()
    for win, wf in wins:
        win.close()
        wf.ctrl.shutdown()
