"""The GUI's project extraction goes on past an unreadable slide and marks it red in the slide list."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from openslide_fixtures import openslide_fixture  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def window(make_window):
    return make_window(size=None, workflow=True)


def test_bad_slide_does_not_stop_project_extraction(window, qtbot, tmp_path, slide_file):
    import torch

    from pathpt_engine.testing.backbones import make_tiny_keep_folder
    from pathpt_gui.project_jobs import BackboneChoice, failed_slides, features_folder

    torch.set_num_threads(1)
    _win, wf = window
    ctrl = wf.ctrl
    bad = tmp_path / "a_bad.svs"  # sorts first: the good slide comes after it
    shutil.copy(openslide_fixture("unreadable.svs"), bad)
    ctrl.create_project(tmp_path / "proj")
    choice = BackboneChoice("keep", str(make_tiny_keep_folder(tmp_path / "keep")), "cpu")
    ctrl.set_backbone(choice, validate=False)
    ctrl.add_slides([bad, slide_file])
    ended = []
    ctrl.job_finished.connect(lambda *a: ended.append("finished"))
    ctrl.job_failed.connect(lambda *a: ended.append("failed"))
    assert ctrl.extract_features()
    qtbot.waitUntil(lambda: bool(ended), timeout=120000)
    assert ended == ["finished"]
    assert (features_folder(ctrl.project, choice) / "slide.h5").is_file()  # the slide after the bad one
    failed = failed_slides(ctrl.project, choice)
    assert list(failed) == ["a_bad"] and "a_bad.svs: cannot decode" in failed["a_bad"]
    rows = {wf.slides.table.item(r, 0).data(0x0100): wf.slides.table.item(r, 0) for r in
            range(wf.slides.table.rowCount())}
    assert rows["a_bad"].text().startswith("✗") and rows["a_bad"].foreground().color().name() == "#e5484d"
    assert "feature extraction failed" in rows["a_bad"].toolTip()
    assert not rows["slide"].text().startswith("✗")
    assert "1 failed" in wf.slides.summary.text()
    assert any(lvl == "error" and "failed for 1 slide(s)" in text for lvl, text in wf.log_panel.lines)


def test_add_slide_folder_takes_dicom_once_and_reports_skipped_files(window, qtbot, tmp_path):
    _win, wf = window
    ctrl = wf.ctrl
    folder = tmp_path / "in"
    (folder / "dicom_case").mkdir(parents=True)
    for name in ("boxes_0.dcm", "boxes_1.dcm"):
        shutil.copy(openslide_fixture(name), folder / "dicom_case" / name)
    shutil.copy(openslide_fixture("small.svs"), folder / "small.svs")
    (folder / "readme.txt").write_text("hi")
    ctrl.create_project(tmp_path / "proj")
    with qtbot.waitSignal(ctrl.job_finished, timeout=60000):
        ctrl.add_folder(folder)
    assert ctrl.project.slides.ids() == ["boxes_0", "small"]
    warnings = [text for lvl, text in wf.log_panel.lines if lvl == "warning"]
    assert any("boxes_1.dcm: skipped: another instance of the DICOM slide" in t for t in warnings)
    assert any("readme.txt: skipped: not a slide format (.txt" in t for t in warnings)


def test_download_weights_only_when_asked_and_offline_in_one_line(window, qtbot, monkeypatch):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    calls = []

    def offline(repo_id, local_dir=None, **_):
        calls.append(repo_id)
        raise LocalEntryNotFoundError("cannot reach the Hub")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    _win, wf = window
    ctrl = wf.ctrl
    assert not calls  # building the window downloads nothing
    panel = wf.training
    panel.backbone.setCurrentIndex(panel.backbone.findData("keep"))
    with qtbot.waitSignal(ctrl.job_failed, timeout=20000) as blocker:
        panel.download_btn.click()
    assert calls == ["Astaxanthin/KEEP"]
    message = blocker.args[1]
    assert "\n" not in message and "keep: offline: cannot reach huggingface.co" in message
