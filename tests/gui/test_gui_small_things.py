"""Issue 16 section 4: small things a pathologist notices (undo log wording, command-line opening, class set,
label column, first-run hint, heatmap toolbar)."""

from __future__ import annotations

import pytest


@pytest.fixture
def window(make_window):
    return make_window(size=(1400, 900), workflow=True)


def _project(wf, slide_file, tmp_path):
    from pathpt_engine.prompts.classsets import synth_classset

    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    ctrl.set_classset(synth_classset(2))
    assert ctrl.add_slides([slide_file]) == ["slide"]
    return ctrl, synth_classset(2).subtype_names


def test_undo_log_says_what_was_undone(window, slide_file, tmp_path):
    _win, wf = window
    ctrl, names = _project(wf, slide_file, tmp_path)
    ctrl.set_label(["slide"], names[1])
    ctrl.set_split(["slide"], "heldout")
    ctrl.undo()
    assert wf.log_panel.lines[-1][1].startswith("split of slide set to train")
    ctrl.undo()
    assert wf.log_panel.lines[-1][1].startswith("label of slide cleared")
    ctrl.redo()
    assert wf.log_panel.lines[-1][1].startswith(f"label of slide set to {names[1]} (train)")
    assert not any(text.startswith(("undo:", "redo:")) for _lvl, text in wf.log_panel.lines)


def test_describe_many_slides_counts_them():
    from pathpt_engine.project.labels import Label
    from pathpt_gui.label_text import describe_label_change

    before = {f"s{i}": Label(f"s{i}", "a", "train") for i in range(5)}
    assert describe_label_change(before, {}) == "labels of 5 slides changed: 5 label(s) cleared"
    assert describe_label_change(before, before) == "no label changed"


def test_opening_several_slides_collects_failures_in_one_message(make_window, slide_file, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    def modal(*a, **k):  # a modal dialog would block the others
        raise AssertionError("modal dialog shown")

    monkeypatch.setattr(QMessageBox, "critical", modal)
    bad1, bad2 = tmp_path / "bad1.svs", tmp_path / "bad2.tif"
    bad1.write_bytes(b"not a slide at all" * 10)
    bad2.write_bytes(b"II*\x00garbage" * 10)
    win = make_window()
    views = win.open_paths([bad1, slide_file, bad2])
    assert len(views) == 1 and win.tabs.count() == 1
    box = win.open_failures_box
    assert box is not None and box.isVisible() and not box.isModal()
    assert box.windowTitle() == "Cannot open 2 slides"
    assert "bad1.svs" in box.text() and "bad2.tif" in box.text()


def test_classes_tab_says_which_class_set_the_project_uses(window, slide_file, tmp_path):
    from PySide6.QtWidgets import QLabel

    _win, wf = window
    _project(wf, slide_file, tmp_path)
    texts = [lab.text() for lab in wf.classes.findChildren(QLabel)]
    assert any("uses the class set <b>synthetic2</b> (3 classes, not a shipped set)" in t for t in texts), texts
    assert "Shipped class sets" not in texts
    assert wf.classes.sets.currentText() == ""  # no shipped set's name beside the synthetic set
    from pathpt_engine.prompts.classsets import load_classset

    wf.ctrl.set_classset(load_classset("brain"))
    assert "uses the class set <b>brain</b>" in wf.classes.current.text()
    assert "not a shipped set" not in wf.classes.current.text()


def test_label_column_shows_full_class_names(window, slide_file, tmp_path):
    from pathpt_engine.prompts.classsets import load_classset

    _win, wf = window
    ctrl, _names = _project(wf, slide_file, tmp_path)
    cs = load_classset("ucs")
    ctrl.set_classset(cs)
    longest = max((c.name for c in cs.classes[1:]), key=len)
    ctrl.set_label(["slide"], longest)
    table = wf.slides.table
    item = table.item(0, 1)
    assert item.text() == longest and longest in item.toolTip()
    need = table.fontMetrics().horizontalAdvance(longest)
    wf.docks["slides"].resize(760, wf.docks["slides"].height())
    table.resize(720, table.height())  # room enough: the whole name shows
    assert table.columnWidth(1) >= min(need + 8, 240)
    table.resize(470, table.height())  # the default panel width: the slide name keeps its room, the label elides
    from pathpt_gui.panels.slides import SLIDE_COLUMN_MIN

    assert table.columnWidth(0) >= SLIDE_COLUMN_MIN
    assert longest in table.item(0, 1).toolTip()


def test_first_launch_hint_tells_how_to_label(window, slide_file, tmp_path):
    _win, wf = window
    hint = wf.slides.hint
    assert hint.isVisible() and "New Project" in hint.text()
    ctrl, names = _project(wf, slide_file, tmp_path)
    assert hint.isVisible()
    assert f"1 {names[0]}" in hint.text() and "0 clears" in hint.text()
    ctrl.set_label(["slide"], names[0])
    assert not hint.isVisible()


def test_heatmap_toolbar_does_not_shift_the_layout(make_window, slide_file, qtbot):
    import numpy as np
    from PySide6.QtCore import QPoint

    win = make_window()
    view = win.open_slide(slide_file, remember=False)
    qtbot.wait(20)
    top_before = view.mapTo(win, QPoint(0, 0))
    size_before = view.size()
    assert not win.opacity_slider.isEnabled()  # no heatmap yet: greyed out, but in place
    view.overlay.set_values(np.array([[0, 0], [256, 0]]), 256, np.array([0.2, 0.9]))
    qtbot.wait(20)
    assert win.opacity_slider.isEnabled()
    assert view.mapTo(win, QPoint(0, 0)) == top_before and view.size() == size_before
    view.overlay.clear()
    qtbot.wait(20)
    assert view.mapTo(win, QPoint(0, 0)) == top_before and view.size() == size_before
