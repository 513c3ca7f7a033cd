"""Pixel size you can trust in the GUI: "pixel size unknown" instead of a scale bar, asked once when the slide
joins a project, stored per slide, used by the viewer and by the project's feature extraction."""

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


def test_scale_bar_says_pixel_size_unknown() -> None:
    from pathpt_gui.viewer.decor import scale_bar

    assert scale_bar(1.0, None, None) == (0.0, "pixel size unknown")
    assert scale_bar(1.0, None, 20.0) == (0.0, "pixel size unknown   20×")
    bar, text = scale_bar(1.0, 0.5, None)
    assert bar > 0 and text.endswith("µm")


def test_72dpi_slide_shows_unknown_is_asked_once_and_stored(window, tmp_path, slide_file, qtbot) -> None:
    _win, wf = window
    ctrl = wf.ctrl
    boxes = tmp_path / "boxes.tiff"
    shutil.copy(openslide_fixture("boxes.tiff"), boxes)  # states 352.78 µm/px
    asked: list[str] = []
    wf.pixel_size_prompt = lambda sid: asked.append(sid) or 0.5
    ctrl.create_project(tmp_path / "proj")
    view = wf.window.open_slide(boxes, remember=False)
    assert view.mpp is None  # the scale bar says "pixel size unknown", never "20 mm"
    wf.window.close_current()
    ctrl.add_slides([boxes, slide_file])
    assert asked == ["boxes"]  # not the slide that states 0.25 µm/px
    assert ctrl.project.slides.get("boxes").mpp == (0.5, 0.5)
    view = wf.open_slide("boxes")
    assert view.reader.mpp is None and view.mpp == (0.5, 0.5)
    assert any("state no plausible pixel size" in t for lvl, t in wf.log_panel.lines if lvl == "warning")
    ctrl.open_project(tmp_path / "proj")  # reopening does not ask again
    assert asked == ["boxes"]


def test_project_extraction_uses_the_pixel_size_given(window, tmp_path, slide_file, qtbot) -> None:
    import torch

    from pathpt_engine.testing.backbones import make_tiny_keep_folder
    from pathpt_gui.project_jobs import BackboneChoice, failed_slides, features_folder

    torch.set_num_threads(1)
    _win, wf = window
    ctrl = wf.ctrl
    boxes = tmp_path / "boxes.tiff"
    shutil.copy(openslide_fixture("boxes.tiff"), boxes)
    ctrl.create_project(tmp_path / "proj")
    choice = BackboneChoice("keep", str(make_tiny_keep_folder(tmp_path / "keep")), "cpu")
    ctrl.set_backbone(choice, validate=False)
    ctrl.add_slides([boxes, slide_file])  # no answer: boxes stays unknown
    for expect_failed in (True, False):
        with qtbot.waitSignal(ctrl.job_finished, timeout=120000):
            assert ctrl.extract_features()
        failed = failed_slides(ctrl.project, choice)
        assert ("boxes" in failed) == expect_failed
        if expect_failed:
            assert "pixel size 352.8 µm/px is implausible" in failed["boxes"]
            ctrl.set_slide_mpp("boxes", 0.5)  # the user gives it (slide list › Pixel size…)
    assert (features_folder(ctrl.project, choice) / "boxes.h5").is_file()
    assert (features_folder(ctrl.project, choice) / "slide.h5").is_file()


def test_slide_properties_say_why_the_pixel_size_is_unknown() -> None:
    from pathpt_engine.slides import open_slide
    from pathpt_gui.dialogs import slide_summary

    with open_slide(openslide_fixture("boxes.tiff")) as reader:
        rows = dict(slide_summary(reader))
    assert rows["Pixel size"] == "unknown (the file states 352.8 µm/px, outside the plausible 0.05–20)"
    assert "Physical size" not in rows  # never "105.83 × 88.19 mm" from a 72-dpi default
