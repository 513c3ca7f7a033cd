"""Issue 18, the GUI: Export Results never replaces or deletes the user's files, a damaged project database gets
a dialog (and a recovered copy, never a write to the damaged file), a read-only project says so, and "Show QuPath
GeoJSON on Slide" survives bad files, reads in the worker with progress and cancel, and warns about another
slide's GeoJSON. Every bad file is made by the test."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from project_faults import corrupt_table
from project_fixtures import project_with_run

from pathpt_engine.export import write_geojson
from pathpt_engine.jobs import collect
from pathpt_engine.project import DB_NAME, Project
from pathpt_engine.results import SlidePrediction, TileScores

pytestmark = pytest.mark.gui


@pytest.fixture
def window(make_window):
    return make_window(workflow=True)


def _project_with_run(folder: Path, slide_file: Path) -> tuple[str, str]:
    run_id, sid, _cs = project_with_run(folder, slide_file, checkpoint=True)
    return run_id, sid


# ---- §2 Export Results ----------------------------------------------------------------------------------------
def test_export_results_never_replaces_or_deletes_user_files(tmp_path, slide_file):
    from pathpt_gui.project_jobs import ExportOptions, export_job

    run_id, sid = _project_with_run(tmp_path / "proj", slide_file)
    out = tmp_path / "my_folder"
    mine = {"checkpoint/my_notes.txt": "notes", "predictions.csv": "my table", f"{sid}.geojson": "{}"}
    for rel, text in mine.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    folders = []
    with Project.open(tmp_path / "proj") as p:
        for _ in range(2):
            written, _events = collect(export_job(p, run_id, ExportOptions(out, downsample=16.0)))
            folders.append(Path(written["folder"][0]))
            assert all(Path(f).parent == folders[-1] or Path(f).parent.parent == folders[-1]
                       for k, v in written.items() if k != "folder" for f in v)
    for rel, text in mine.items():
        assert (out / rel).read_text() == text, rel
    assert folders[0] != folders[1] and all(f.parent == out and f.name.startswith(run_id) for f in folders)
    for f in folders:
        assert (f / "predictions.csv").is_file() and (f / "checkpoint" / "checkpoint.json").is_file()
        assert (f / f"{sid}.geojson").is_file() and (f / f"{sid}_overlay.png").is_file()


# ---- §5 damaged and read-only projects ------------------------------------------------------------------------
def _corrupt(db_file: Path, table: str) -> None:
    corrupt_table(db_file, table, fill=lambda size: b"\x5a" * size)


def test_damaged_project_database_gets_a_dialog_and_a_recovered_copy(window, tmp_path, slide_file):
    win, wf = window
    run_id, sid = _project_with_run(tmp_path / "proj", slide_file)
    db_file = tmp_path / "proj" / DB_NAME
    _corrupt(db_file, "labels")
    digest = hashlib.sha256(db_file.read_bytes()).hexdigest()
    asked = []
    wf._confirm = lambda title, text: asked.append(text) or False  # the user says no
    assert wf.open_project(tmp_path / "proj") is None  # no exception: the app keeps running
    assert wf.ctrl.project is None and "integrity_check" in asked[0] and "not been changed" in asked[0]
    assert any("damaged" in text for _lvl, text in wf.log_panel.lines)
    wf._confirm = lambda title, text: True  # the user accepts the recovered copy
    project = wf.open_project(tmp_path / "proj")
    assert project is not None and project.db_path != db_file.resolve()
    assert project.db_path.parent == db_file.resolve().parent and "recovered" in project.db_path.name
    assert project.slides.ids() == [sid] and project.runs.get(run_id).status == "done"
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == digest


def test_damaged_project_given_at_start_is_a_dialog_not_a_crash(window, tmp_path, slide_file):
    win, wf = window
    _project_with_run(tmp_path / "proj", slide_file)
    _corrupt(tmp_path / "proj" / DB_NAME, "slides")
    wf._confirm = lambda title, text: False
    wf._guard(wf.open_project, tmp_path / "proj")  # what `pathpt-gui --project DIR` calls
    assert wf.ctrl.project is None


def test_read_only_project_says_read_only(window, tmp_path, slide_file, monkeypatch):
    import pathpt_engine.project.db as dbmod

    win, wf = window
    _project_with_run(tmp_path / "proj", slide_file)
    monkeypatch.setattr(dbmod, "is_writable", lambda path: False)  # tests run as root: chmod cannot stop root
    project = wf.open_project(tmp_path / "proj")
    assert project is not None and project.read_only
    assert any("read-only" in text for _lvl, text in wf.log_panel.lines)
    assert not any("not a readable SQLite" in text for _lvl, text in wf.log_panel.lines)


# ---- §5 Show QuPath GeoJSON on Slide --------------------------------------------------------------------------
def _tile(x: int, y: int, size: int, meas: object, props: object = None) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    p = {"objectType": "tile", "measurements": meas} if props is None else props
    return {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [ring]}, "properties": p}


@pytest.fixture
def open_slide(window, slide_file, qtbot):
    win, wf = window
    view = win.open_paths([slide_file])[0]
    return win, wf, view


def _show(qtbot, wf, path):
    ctrl = wf.ctrl
    failed, done = [], []
    ctrl.job_failed.connect(lambda name, text: failed.append(text))
    ctrl.job_finished.connect(lambda name, result: done.append(result))
    assert wf.show_geojson(path)
    qtbot.waitUntil(lambda: bool(failed or done), timeout=60000)
    return failed, done


@pytest.mark.parametrize("kind", ["properties_list", "measurements_string", "deep_nesting", "truncated"])
def test_bad_geojson_files_are_one_line_errors(open_slide, tmp_path, qtbot, kind):
    win, wf, view = open_slide
    path = tmp_path / f"{kind}.geojson"
    if kind == "properties_list":
        doc = {"type": "FeatureCollection", "features": [_tile(0, 0, 256, None, props=["tile", {"a": 1}])]}
        path.write_text(json.dumps(doc))
    elif kind == "measurements_string":
        doc = {"type": "FeatureCollection", "features": [_tile(0, 0, 256, "a=0.5")]}
        path.write_text(json.dumps(doc))
    elif kind == "deep_nesting":
        path.write_text('{"type": "FeatureCollection", "features": [' + "[" * 100_000 + "]" * 100_000 + "]}")
    else:
        doc = {"type": "FeatureCollection", "features": [_tile(0, 0, 256, {"a": 0.5, "b": 0.5})] * 3}
        path.write_text(json.dumps(doc)[:-40])
    before = len(wf.log_panel.lines)
    failed, done = _show(qtbot, wf, path)  # nothing escapes: a failed read, or a read with nothing to show
    errors = failed + [text for lvl, text in wf.log_panel.lines[before:] if lvl == "error" and "failed:" not in text]
    assert len(errors) == 1, (errors, done)
    assert "\n" not in errors[0] and str(path) in errors[0]
    assert view.overlay.grid is None


def test_a_large_geojson_is_read_in_the_worker_with_progress_and_cancel(open_slide, tmp_path, qtbot):
    win, wf, view = open_slide
    ctrl = wf.ctrl
    feats = [_tile(x, y, 12, {"Normal": 0.2, "A": 0.5, "B": 0.3}) for y in range(0, 1536 - 12, 12)
             for x in range(0, 2048 - 12, 12)]
    for i, f in enumerate(feats):  # as QuPath writes them
        f["id"] = f"{i:08x}-0000-4000-8000-000000000000"
        f["properties"]["classification"] = {"name": "A", "color": [200, 40, 40]}
    path = tmp_path / "big.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    assert path.stat().st_size > 3 << 20
    events = []
    ctrl.job_progress.connect(lambda e, f, eta: events.append(e))
    with qtbot.waitSignal(ctrl.job_finished, timeout=120000):
        assert wf.show_geojson(path)
        assert ctrl.worker.busy  # the GUI thread returned at once; the worker reads
    assert len([e for e in events if e.stage == "read"]) >= 3
    assert view.overlay.grid is not None and len(view.overlay.grid.probs) == len(feats)
    with qtbot.waitSignal(ctrl.job_cancelled, timeout=60000):
        wf.show_geojson(path)
        ctrl.cancel_job()


def test_geojson_memory_cap(open_slide, tmp_path, qtbot, monkeypatch):
    import pathpt_engine.export.geojson_stream as gs

    win, wf, view = open_slide
    monkeypatch.setattr(gs, "MAX_TILES", 10)
    feats = [_tile(x, 0, 64, {"a": 0.5, "b": 0.5}) for x in range(0, 64 * 20, 64)]
    path = tmp_path / "many.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    failed, _ = _show(qtbot, wf, path)
    assert failed and "memory cap" in failed[0]


def test_another_slides_geojson_is_not_shown_without_asking(open_slide, tmp_path, qtbot):
    win, wf, view = open_slide
    names = ("Normal", "A", "B")
    coords = np.array([[0, 0], [256, 0]], np.int64)
    probs = np.array([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], np.float32)
    other = tmp_path / "other.geojson"
    write_geojson(other, TileScores("another_slide", coords, probs, 256, names),
                  SlidePrediction("another_slide", "A", {"A": 0.6, "B": 0.4}, 2))
    _show(qtbot, wf, other)
    assert view.overlay.grid is None
    assert any("another_slide" in text and "not shown" in text for _lvl, text in wf.log_panel.lines)
    far = tmp_path / "slide.geojson"  # the right id, but tiles far outside this 2048 x 1536 slide
    write_geojson(far, TileScores("slide", coords + 40_000, probs, 256, names))
    _show(qtbot, wf, far)
    assert view.overlay.grid is None
    assert any("beyond this slide" in text for _lvl, text in wf.log_panel.lines)
    good = tmp_path / "good.geojson"
    write_geojson(good, TileScores("slide", coords, probs, 256, names))
    _show(qtbot, wf, good)
    assert view.overlay.grid is not None and len(view.overlay.grid.probs) == 2


# ---- §3 a slide without tiles gets no call in the project either --------------------------------------------------
def test_project_prediction_gives_no_call_for_a_slide_without_tiles(tmp_path, slide_file, caplog):
    from pathpt_engine.pathpt.trainer import SlideData
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_gui.project_jobs import _predict_all

    cs = synth_classset(2)
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(cs)
        sid = p.slides.add(slide_file).slide_id
        run = p.runs.create("zeroshot", "demo", {})
        empty = SlideData(sid, np.zeros((0, 8), np.float32), np.zeros((0, 2), np.int64), -1, 224, {})
        called = []
        confident = lambda s: called.append(s.slide_id) or np.tile([0.0, 1.0, 0.0], (len(s.features), 1))  # noqa: E731
        n, _events = collect(_predict_all(p, run.run_id, cs, [empty], confident, None))
        assert p.runs.predictions(run.run_id) == {} and called == []
    assert "no tissue tiles (no call)" in caplog.text


def test_project_training_on_a_slide_without_tiles_is_a_clear_error(tmp_path, slide_file):
    from pathpt_engine.errors import ProjectError
    from pathpt_engine.features.store import write_features
    from pathpt_engine.pathpt.model import PathPTConfig
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_gui.project_jobs import BackboneChoice, features_folder, train_job

    cs = synth_classset(2)
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(cs)
        sid = p.slides.add(slide_file).slide_id
        p.labels.set(sid, cs.subtype_names[0])
        choice = BackboneChoice()
        write_features(features_folder(p, choice) / f"{slide_file.stem}.h5", np.zeros((0, 2), np.int64),
                       np.zeros((0, 128), np.float32))  # the demo backbone's width
        with pytest.raises(ProjectError, match="no tissue tiles"):
            collect(train_job(p, choice, PathPTConfig(epochs=1)))
        assert p.runs.list() == []
