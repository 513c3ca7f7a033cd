"""The few-shot workflow in the GUI (pytest-qt, offscreen): worker, labels, train, overlay, export, cancel."""

from __future__ import annotations

import csv
import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from pathpt_engine.errors import PathPTError
from pathpt_engine.jobs import Progress, check_cancel

pytestmark = pytest.mark.gui

TINY = {"epochs": 2, "n_prompts_random": 8, "n_prompts_keep": 4}


# ---- the worker -------------------------------------------------------------------------------------------
def _counting_job(n: int, fail: Exception | None = None, gate: threading.Event | None = None):
    def factory(cancel):
        for i in range(n):
            check_cancel(cancel)
            if gate is not None:
                gate.wait(5)
            yield Progress("count", i + 1, n, message=str(i))
        if fail is not None:
            raise fail
        return n * 10
    return factory


def test_worker_result_progress_and_eta(qtbot):
    from pathpt_gui.workers import JobWorker, format_eta

    w = JobWorker()
    events = []
    w.progress.connect(lambda e, f, eta: events.append((e, f, eta)))
    with qtbot.waitSignal(w.finished_ok, timeout=5000) as blocker:
        w.start_job("count", _counting_job(5))
    assert blocker.args == [50]
    assert w.shutdown()
    assert events[-1][0].done == 5 and events[-1][1] == 1.0 and events[-1][2] == pytest.approx(0.0, abs=1e-6)
    assert format_eta(65) == "ETA 1:05" and format_eta(None) == ""


@pytest.mark.parametrize(("exc", "expect"), [(PathPTError("/x/slide.svs: bad tile"), "/x/slide.svs: bad tile"),
                                         (ValueError("boom"), "ValueError: boom")])
def test_worker_errors_reach_errored(qtbot, exc, expect):
    from pathpt_gui.workers import JobWorker

    w = JobWorker()
    with qtbot.waitSignal(w.errored, timeout=5000) as blocker:
        w.start_job("fail", _counting_job(2, fail=exc))
    assert blocker.args == [expect]
    assert w.shutdown()


def test_worker_cancel_and_busy(qtbot):
    from pathpt_gui.workers import JobWorker

    w = JobWorker()
    gate = threading.Event()
    w.start_job("slow", _counting_job(1000, gate=gate))
    assert w.busy
    with pytest.raises(RuntimeError):
        w.start_job("second", _counting_job(1))
    with qtbot.waitSignal(w.cancelled, timeout=5000):
        w.cancel()
        gate.set()
    assert w.shutdown() and not w.busy


# ---- a small project on a small slide -----------------------------------------------------------------------
@pytest.fixture
def window(make_window):
    return make_window(size=(1400, 900), workflow=True)  # teardown: closed, and its worker no longer running


def test_labels_keys_undo_redo_import(window, slide_file, tmp_path, qtbot):
    from PySide6.QtTest import QTest

    from pathpt_engine.prompts.classsets import synth_classset

    win, wf = window
    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    ctrl.set_classset(synth_classset(2))
    assert ctrl.add_slides([slide_file]) == ["slide"]
    assert wf.slides.table.rowCount() == 1
    wf.slides.table.setFocus()
    wf.slides.select("slide")
    names = synth_classset(2).subtype_names
    QTest.keyClick(wf.slides.table, Qt.Key.Key_2)
    assert ctrl.project.labels.get("slide").label == names[1]
    assert wf.slides.table.item(0, 1).text() == names[1]
    QTest.keyClick(wf.slides.table, Qt.Key.Key_H)
    assert ctrl.project.labels.get("slide").split == "heldout"
    wf.actions["undo"].trigger()
    assert ctrl.project.labels.get("slide").split == "train"
    wf.actions["undo"].trigger()
    assert ctrl.project.labels.get("slide") is None
    wf.actions["redo"].trigger()
    assert ctrl.project.labels.get("slide").label == names[1]
    QTest.keyClick(wf.slides.table, Qt.Key.Key_0)
    assert ctrl.project.labels.get("slide") is None
    labels = tmp_path / "labels.csv"
    labels.write_text(f"slide_id,label\nslide,{names[0]}\nnope,{names[0]}\n", encoding="utf-8")
    report = ctrl.import_labels(labels)
    assert report.applied == 1 and report.unknown_slides == [(3, "nope")]
    assert ctrl.project.labels.get("slide").label == names[0]
    assert any("nope" in text for _lvl, text in wf.log_panel.lines)
    assert ctrl.recent_projects() == [str((tmp_path / "proj").resolve())]
    # every change is already in the database: a second connection sees it
    from pathpt_engine.project import Project

    with Project.open(tmp_path / "proj") as again:
        assert again.labels.get("slide").label == names[0]


def test_moved_slide_is_reported_and_relinked(window, slide_file, tmp_path, qtbot):
    win, wf = window
    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    ctrl.add_slides([slide_file])
    ctrl.close_project()
    moved = tmp_path / "moved"
    moved.mkdir()
    slide_file.rename(moved / slide_file.name)
    ctrl.open_project(tmp_path / "proj")
    assert any("missing" in t for lvl, t in wf.log_panel.lines if lvl == "warning")
    assert "(missing)" in wf.slides.table.item(0, 0).text()
    with qtbot.waitSignal(ctrl.job_finished, timeout=20000):
        ctrl.relink(moved)
    assert ctrl.project.slides.get("slide").path == (moved / slide_file.name).resolve()
    assert "(missing)" not in wf.slides.table.item(0, 0).text()


def test_zeroshot_before_features_fails_clearly(window, slide_file, tmp_path, qtbot):
    from pathpt_engine.prompts.classsets import synth_classset

    win, wf = window
    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    ctrl.set_classset(synth_classset(2))
    ctrl.add_slides([slide_file])
    assert not wf.training.btn_zeroshot.isEnabled()
    with qtbot.waitSignal(ctrl.job_failed, timeout=20000) as blocker:
        ctrl.zero_shot()
    assert "Extract features" in blocker.args[1]
    assert any(lvl == "error" for lvl, _t in wf.log_panel.lines)


# ---- end to end on synthetic slides with a tiny KEEP model (slow) -------------------------------------------
@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from pathpt_engine.jobs import collect
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_engine.synth.cohort import CohortSpec, make_cohort
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    root = tmp_path_factory.mktemp("cohort")
    collect(make_cohort(root / "cohort", CohortSpec(n_subtypes=2, slides_per_class=2, normal_slides=0,
                                                    width=2048, height=2048)))
    words = [w for c in synth_classset(2).classes for s in c.synonyms for w in s.lower().split()]
    keep = make_tiny_keep_folder(root / "keep", extra_words=words)
    truth = {r["slide_id"]: r["label"] for r in csv.DictReader((root / "cohort" / "labels.csv").open())}
    return root / "cohort" / "slides", keep, truth


def _project_with_features(wf, qtbot, tmp_path, cohort):
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_gui.project_jobs import BackboneChoice

    slides, keep, truth = cohort
    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    ctrl.set_classset(synth_classset(2))
    ctrl.set_backbone(BackboneChoice("keep", str(keep), "cpu"), validate=False)
    with qtbot.waitSignal(ctrl.job_finished, timeout=60000):
        ctrl.add_folder(slides)
    assert len(ctrl.project.slides.ids()) == 4
    with qtbot.waitSignal(ctrl.job_finished, timeout=120000):
        ctrl.extract_features()
    assert ctrl.has_features() and wf.training.btn_zeroshot.isEnabled()
    return ctrl, truth


def _labelled_project(wf, qtbot, tmp_path, cohort):
    """`_project_with_features` with every slide given its true label."""
    ctrl, truth = _project_with_features(wf, qtbot, tmp_path, cohort)
    for sid, lab in truth.items():
        ctrl.set_label([sid], lab)
    return ctrl


@pytest.mark.slow
def test_label_train_overlay_export(window, qtbot, tmp_path, cohort):
    from pathpt_engine.export.geojson import read_geojson
    from pathpt_engine.export.scores import read_scores_h5
    from pathpt_engine.pathpt.model import PathPTConfig

    win, wf = window
    ctrl, truth = _project_with_features(wf, qtbot, tmp_path, cohort)
    with qtbot.waitSignal(ctrl.job_finished, timeout=60000):  # zero-shot works before any label
        ctrl.zero_shot()
    assert len(ctrl.predictions()) == 4
    by_class: dict[str, list[str]] = {}
    for sid, lab in sorted(truth.items()):
        by_class.setdefault(lab, []).append(sid)
    for lab, ids in by_class.items():
        ctrl.set_label([ids[0]], lab)
    seen = []
    ctrl.prediction_added.connect(lambda run, sid: seen.append(sid))
    with qtbot.waitSignal(ctrl.job_finished, timeout=120000):
        ctrl.train(PathPTConfig(**TINY))
    run = ctrl.project.runs.get(ctrl.current_run)
    assert run.status == "done" and run.recipe == "pathpt-paper"
    assert sorted(seen) == sorted(truth)  # each slide's overlay could appear as soon as it was scored
    assert len(wf.training._history["train acc"]) == 2  # one point per epoch on the live plot
    # overlay of the selected run on the viewer
    sid = sorted(truth)[0]
    view = wf.open_slide(sid)
    assert view is not None and view.overlay.grid is not None and view.overlay.visible
    assert view.overlay.grid.mode == "classmap"
    wf.predictions.mode.setCurrentIndex(2)
    assert view.overlay.grid.mode == "scalar" and view.overlay.label.startswith("p(")
    assert wf.predictions.bars.rowCount() == 2 and wf.predictions.gallery.count() > 0
    scores = ctrl.tile_scores(sid)
    x, y = scores.coords[0] + scores.tile_size_level0 // 2
    view.cursor_moved.emit(float(x), float(y))
    assert scores.class_names[int(np.argmax(scores.probs[0]))] in wf.predictions.hover.text()
    # suggest the next slide to label: an unlabelled one, opened in the viewer
    unlabelled = set(truth) - set(ctrl.project.labels.all())
    suggested = wf.predictions.suggest()
    assert suggested in unlabelled
    assert win.current_view().reader.path.stem == suggested
    assert wf.slides.selected_ids() == [suggested]
    wf.open_slide(sid)
    # exports
    opts = wf.export_options(tmp_path / "exports")
    with qtbot.waitSignal(ctrl.job_finished, timeout=120000) as done:
        ctrl.export(opts)
    out = Path(done.args[1]["folder"][0])  # a new dated subfolder of the chosen folder
    assert out.parent == tmp_path / "exports" and out.name.startswith(ctrl.current_run)
    rec, ds = ctrl.project.slides.get(sid), opts.downsample
    with Image.open(out / f"{sid}_overlay.png") as im:
        assert im.size == (math.ceil(rec.width / ds), math.ceil(rec.height / ds))
    with Image.open(out / f"{sid}_heatmap.png") as im:
        assert im.size[0] > 100 and im.size[1] > 100
    doc = json.loads((out / f"{sid}.geojson").read_text())
    assert doc["type"] == "FeatureCollection"
    back = read_geojson(out / f"{sid}.geojson")
    assert back.scores is not None and tuple(back.scores.class_names) == tuple(scores.class_names)
    order = np.lexsort((back.scores.coords[:, 1], back.scores.coords[:, 0]))
    ref = np.lexsort((scores.coords[:, 1], scores.coords[:, 0]))
    np.testing.assert_array_equal(back.scores.coords[order], scores.coords[ref])
    np.testing.assert_allclose(back.scores.probs[order], scores.probs[ref], atol=1e-3)
    assert back.prediction is not None and back.prediction.predicted == ctrl.predictions()[sid].predicted
    view.overlay.clear()
    with qtbot.waitSignal(ctrl.job_finished, timeout=60000):  # read in the worker
        wf.show_geojson(out / f"{sid}.geojson")  # imports back into the app: the same class map on the slide
    assert view.overlay.grid is not None and view.overlay.grid.mode == "classmap"
    assert len(view.overlay.grid.probs) == len(scores.coords)
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.reader(fh))
    names = ctrl.classset().subtype_names
    assert rows[0] == ["slide_id", "predicted", "n_tiles", "slide_score", "n_voters",
                       *[f"vote_share_{n}" for n in names]]  # PathPT's slide numbers are tile-vote shares
    assert sorted(r[0] for r in rows[1:]) == sorted(truth)
    h5_scores, _ = read_scores_h5(out / f"{sid}_scores.h5")
    np.testing.assert_allclose(h5_scores.probs, scores.probs)
    assert (out / "checkpoint" / "checkpoint.json").exists()


@pytest.mark.slow
def test_cancel_training(window, qtbot, tmp_path, cohort):
    from pathpt_engine.pathpt.model import PathPTConfig

    win, wf = window
    ctrl = _labelled_project(wf, qtbot, tmp_path, cohort)
    started = []
    ctrl.job_progress.connect(lambda e, f, eta: started.append(e) if e.stage == "train" else None)
    with qtbot.waitSignal(ctrl.job_cancelled, timeout=120000):
        ctrl.train(PathPTConfig(**{**TINY, "epochs": 500}))
        qtbot.waitUntil(lambda: bool(started), timeout=60000)
        wf.training.btn_cancel.click()
    assert not ctrl.busy or ctrl.worker.wait(5000)
    run = ctrl.project.runs.list()[0]
    assert run.status == "cancelled"
    assert ctrl.current_run != run.run_id  # a run that never predicted does not replace the shown one
    assert "cancelled" in wf.training.status.text()
    assert wf.training.btn_train.isEnabled()


KILL_SCRIPT = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from pathpt_engine.pathpt.model import PathPTConfig
from pathpt_gui.main_window import MainWindow
from pathpt_gui.panels.workflow import install_workflow
from pathpt_gui.settings import AppSettings
win = MainWindow(AppSettings())
win.show()
wf = install_workflow(win, dialogs=False)
wf.ctrl.open_project(sys.argv[1])
def progress(event, fraction, eta):
    if event.stage == "train":
        print("TRAINING", flush=True)
wf.ctrl.job_progress.connect(progress)
wf.ctrl.train(PathPTConfig(epochs=100000, n_prompts_random=8, n_prompts_keep=4))
app.exec()
"""


@pytest.mark.slow
def test_killed_mid_training_leaves_project_readable(window, qtbot, tmp_path, cohort):
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    from pathpt_engine.project import Project

    win, wf = window
    ctrl = _labelled_project(wf, qtbot, tmp_path, cohort)
    labels_before = ctrl.project.labels.all()
    root = ctrl.project.root
    ctrl.close_project()
    script = tmp_path / "kill_me.py"
    script.write_text(KILL_SCRIPT, encoding="utf-8")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "TRAINING"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
        proc.stdout.close()
    with sqlite3.connect(root / "project.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Project.open(root) as proj:
        assert proj.labels.all() == labels_before
        assert len(proj.slides.ids()) == 4
        runs = proj.runs.list()
        # it never finished: marked interrupted on this open, and nothing half-written
        assert len(runs) == 1 and runs[0].status == "interrupted"
        assert proj.interrupted_runs == [runs[0].run_id]
        assert not (proj.run_dir(runs[0].run_id) / "checkpoint.json").exists()
    ctrl.open_project(root)  # and the app opens it again
    assert wf.slides.table.rowCount() == 4


def test_bad_backbone_folder_is_refused_with_a_clear_message(window, tmp_path, qtbot):
    from pathpt_gui.project_jobs import BackboneChoice

    win, wf = window
    ctrl = wf.ctrl
    ctrl.create_project(tmp_path / "proj")
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with qtbot.waitSignal(ctrl.job_failed, timeout=20000) as blocker:
        ctrl.set_backbone(BackboneChoice("keep", str(empty), "cpu"))
    assert str(empty) in blocker.args[1]
    assert ctrl.backbone().weights is None  # the bad choice was not stored


def test_classes_panel_load_edit_apply(window, tmp_path):
    win, wf = window
    ctrl, panel = wf.ctrl, wf.classes
    ctrl.create_project(tmp_path / "proj")
    panel.sets.setCurrentText("ucs")
    panel.load_shipped()
    cs = ctrl.classset()
    assert cs is not None and panel.table.rowCount() == cs.n_classes
    assert panel.table.item(0, 0).text() == "Normal" and cs.classes[0].normal
    panel.table.item(1, 2).setText("first synonym; second synonym")
    panel._add_row()
    assert panel.apply() is not None
    new = ctrl.classset()
    assert new.classes[1].synonyms == ("first synonym", "second synonym")
    assert new.n_classes == cs.n_classes + 1 and new.templates == cs.templates
    panel.table.item(1, 3).setText("not a colour")
    assert panel.apply() is None  # refused, with the reason in the log
    assert ctrl.classset() == new
    assert any("not applied" in t for lvl, t in wf.log_panel.lines if lvl == "error")


@pytest.mark.slow
def test_demo_project_opens_ready_to_train(window, qtbot, tmp_path, cohort):
    import shutil

    from pathpt_gui.demo_project import DemoProjectConfig, start_demo
    from pathpt_gui.project_jobs import BackboneChoice

    win, wf = window
    slides, keep, truth = cohort
    shutil.copytree(slides.parent, tmp_path / "demo" / "cohort")  # reuse the cohort (its cohort.json)
    cfg = DemoProjectConfig(tmp_path / "demo", n_subtypes=2, slides_per_class=2, size=(2048, 2048),
                            heldout_per_class=1, backbone=BackboneChoice("keep", str(keep), "cpu"))
    finished = []
    wf.ctrl.job_finished.connect(lambda name, _r: finished.append(name))
    start_demo(wf.ctrl, cfg)
    qtbot.waitUntil(lambda: "Extract features" in finished, timeout=120000)
    proj = wf.ctrl.project
    assert proj is not None and proj.root == (tmp_path / "demo" / "project").resolve()
    labels = proj.labels.all()
    assert sorted(lab.split for lab in labels.values()) == ["heldout", "heldout", "train", "train"]
    assert all(lab.label == truth[sid] for sid, lab in labels.items())
    assert wf.ctrl.has_features() and wf.training.btn_train.isEnabled()
    assert win.current_view() is not None  # a slide is on screen


@pytest.mark.gui
def test_backbone_list_shows_licence_and_download(window):
    """Issue 8: the GUI lists every registry backbone with its licence and what to download."""
    from pathpt_engine.backbones import available_backbones

    _win, wf = window
    combo = wf.training.backbone
    names = [combo.itemData(i) for i in range(combo.count())]
    specs = {s.name: s for s in available_backbones()}
    assert set(names) == set(specs) and {"keep", "plip", "clip", "quiltnet", "conch", "musk", "demo"} <= set(names)
    for i, name in enumerate(names):
        tip = combo.itemData(i, Qt.ItemDataRole.ToolTipRole)
        assert specs[name].licence in tip and specs[name].download in tip
    assert specs[combo.currentData()].licence in wf.training.backbone_licence.text()
