"""`pathpt_engine.workflow`: the one predict job and run-output writer behind the CLI, the Ray path, the demo and
the GUI's project jobs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from pathpt_engine.cli import main
from pathpt_engine.errors import ExportError
from pathpt_engine.jobs import collect
from pathpt_engine.pathpt.trainer import SlideData
from pathpt_engine.prompts.classsets import load_classset, synth_classset
from pathpt_engine.workflow import predict, write_run_outputs

CS = synth_classset(2)


def _slide(sid: str, n: int) -> SlideData:
    coords = np.stack([np.arange(n) * 224, np.zeros(n)], axis=1).astype(np.int64)
    return SlideData(sid, np.ones((n, 8), np.float32), coords, -1, 224, {})


def _confident(slide: SlideData) -> np.ndarray:
    return np.tile(np.array([0.1, 0.7, 0.2], np.float32), (len(slide.features), 1))


def test_predict_gives_no_call_for_a_slide_without_tiles(caplog):
    found, events = collect(predict(CS, [_slide("a", 3), _slide("empty", 0), _slide("b", 2)], _confident))
    assert [p.slide_id for p in found.calls] == ["a", "b"] and found.empty == ["empty"]
    assert [e.done for e in events] == [1, 2, 3] and [e.message for e in events] == ["a", "", "b"]
    assert found.calls[0].predicted == CS.subtype_names[0] and found.calls[0].n_voters == 3
    assert "empty: no tissue tiles (no call)" in caplog.text


def test_write_run_outputs_refuses_an_escaping_slide_id_before_writing_anything(tmp_path):
    found, _ = collect(predict(CS, [_slide("ok", 2), _slide("..", 2)], _confident))
    with pytest.raises(ExportError, match="not a safe file name"):
        write_run_outputs(tmp_path / "out", found.results, CS.subtype_names)
    assert not (tmp_path / "out" / "tiles" / "ok.h5").exists() and not (tmp_path / "out.h5").exists()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    d = tmp_path_factory.mktemp("workflow")
    bb = tiny_backbone(d / "keep")
    feats, labels = make_fake_cohort(d / "c", bb, load_classset("synthetic"), per_class=2, n_tiles=12)
    assert main(["-q", "train", "--features", str(feats), "--backbone", "keep", "--weights", str(d / "keep"),
                 "--device", "cpu", "--classes", "synthetic", "--labels", str(labels), "--epochs", "1",
                 "--out", str(d / "run")]) == 0
    return d, Path(feats)


def _tiles(folder: Path) -> dict[str, tuple]:
    out = {}
    for p in sorted(folder.glob("*.h5")):
        with h5py.File(p) as f:
            out[p.stem] = (f["coords"][:].tolist(), f["probs"][:].tolist(), json.loads(f.attrs["slide_scores"]),
                           str(f.attrs["slide_predicted"]), int(f.attrs["slide_n_voters"]))
    return out


@pytest.fixture
def no_ray(monkeypatch):
    """The Ray task body runs in this process; Ray's GPU assignment is faked (asking Ray would start it)."""
    from types import SimpleNamespace

    from pathpt_engine.cluster import predict as cluster_predict
    from pathpt_engine.cluster import tasks

    monkeypatch.setattr(tasks, "ray", SimpleNamespace(get_gpu_ids=list))
    monkeypatch.setattr(cluster_predict, "_RUNS", {})


def test_cli_ray_task_and_gui_write_the_same_outputs(trained, tmp_path, no_ray):
    """One run predicted by `pathpt predict`, by the Ray task body (no Ray needed) and by the GUI's project
    job: the same tile h5 files and the same calls."""
    from slide_fixtures import make_slide

    from pathpt_engine.cluster.predict import predict_chunk
    from pathpt_engine.pathpt.data import feature_files, load_slide
    from pathpt_engine.pathpt.predictor import load_run
    from pathpt_engine.project import Project
    from pathpt_engine.workflow import model_probs
    from pathpt_gui.project_jobs import _predict_all

    d, feats = trained
    assert main(["-q", "predict", "--run", str(d / "run"), "--features", str(feats), "--weights", str(d / "keep"),
                 "--device", "cpu", "--out", str(tmp_path / "cli")]) == 0
    files = feature_files(feats)
    got = predict_chunk(str(d / "run"), str(d / "keep"), [str(p) for p in files.values()], str(tmp_path / "ray"),
                        "cpu")
    run = load_run(d / "run", weights=d / "keep", device="cpu")
    write_run_outputs(tmp_path / "ray", [(p, None) for p in got["predictions"]], run.classset.subtype_names)
    with Project.create(tmp_path / "proj") as proj:
        for i, sid in enumerate(files):
            proj.slides.add(make_slide(tmp_path / f"s{i}.tif", 256, 256), slide_id=sid)
        rid = proj.runs.create("pathpt-paper", "keep", {}).run_id
        collect(_predict_all(proj, rid, run.classset, [load_slide(p) for p in files.values()],
                             model_probs(run.model), None))
        gui_calls = proj.runs.predictions(rid)
    cli = _tiles(tmp_path / "cli" / "tiles")
    assert len(cli) == len(files) == 6
    assert _tiles(tmp_path / "ray" / "tiles") == cli == _tiles(tmp_path / "proj" / "runs" / rid / "tiles")
    rows = {r["slide_id"]: r for r in csv.DictReader((tmp_path / "cli" / "predictions.csv").open())}
    assert (tmp_path / "ray" / "predictions.csv").read_text() == (tmp_path / "cli" / "predictions.csv").read_text()
    assert {s: p.predicted for s, p in gui_calls.items()} == {s: r["predicted"] for s, r in rows.items()}


def test_ray_task_gives_no_call_for_a_slide_without_tiles(trained, tmp_path, no_ray):
    """The Ray path called an empty slide from no tiles; like `pathpt predict` it now gives no call."""
    from pathpt_engine.cluster.predict import predict_chunk
    from pathpt_engine.features.store import read_features, write_features

    d, feats = trained
    src = sorted(feats.glob("*.h5"))[0]
    data = read_features(src)
    empty = tmp_path / "feats" / "empty.h5"
    empty.parent.mkdir()
    write_features(empty, np.zeros((0, 2), np.int64), np.zeros((0, data.features.shape[1]), np.float32),
                   data.attrs, data.coords_attrs)
    got = predict_chunk(str(d / "run"), str(d / "keep"), [str(src), str(empty)], str(tmp_path / "out"), "cpu")
    assert [p.slide_id for p in got["predictions"]] == [src.stem] and got["empty"] == ["empty"]
    assert not (tmp_path / "out" / "tiles" / "empty.h5").exists()


def _strip_ids(obj):  # noqa: ANN001, ANN202 - GeoJSON feature ids are fresh UUIDs per export
    if isinstance(obj, dict):
        return {k: _strip_ids(v) for k, v in obj.items() if k != "id"}
    if isinstance(obj, list):
        return [_strip_ids(v) for v in obj]
    return obj


def test_cli_export_and_gui_export_write_the_same_files(tmp_path):
    """`pathpt export` and the GUI's Export Results go through one `export_run`: same overlay and heatmap pixels,
    same GeoJSON (ids aside) and scores h5 for the same run, style and class colours."""
    from PIL import Image
    from slide_fixtures import make_slide

    from pathpt_engine.export import OverlayStyle, write_scores_h5
    from pathpt_engine.project import Project
    from pathpt_engine.results import TileScores
    from pathpt_engine.workflow import ExportOptions
    from pathpt_gui.project_jobs import export_job, scores_path

    (tmp_path / "slides").mkdir()
    slide = make_slide(tmp_path / "slides" / "s1.tif", 1024, 768, mpp=0.5)
    coords = np.array([[x, y] for y in range(0, 768, 256) for x in range(0, 1024, 256)], np.int64)
    probs = np.random.default_rng(1).dirichlet(np.ones(3), len(coords)).astype(np.float32)
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(CS)
        sid = p.slides.add(slide).slide_id
        rid = p.runs.create("zeroshot", "demo", {}).run_id
        found, _ = collect(predict(CS, [SlideData(sid, np.ones((len(coords), 4), np.float32), coords, -1, 256, {})],
                                   lambda s: probs))
        pred, _scores = found.results[0]
        write_scores_h5(scores_path(p, rid, sid), TileScores(sid, coords, probs, 256, CS.class_names), pred)
        p.runs.add_predictions(rid, [pred])
        style = OverlayStyle("argmax", "viridis", 0.45)
        written, _ = collect(export_job(p, rid, ExportOptions(tmp_path / "gui", style=style, downsample=16.0)))
    gui = Path(written["folder"][0])
    h5 = scores_path(Project.open(tmp_path / "proj"), rid, sid)
    base = ["-q", "export", "--scores", str(h5), "--alpha", "0.45", "--downsample", "16",
            *[a for c in CS.classes for a in ("--color", f"{c.name}={c.color}")]]
    for fmt, extra, name in (("png", ["--slide", str(slide.parent)], "_overlay.png"),
                             ("png", [], "_heatmap.png"), ("geojson", [], ".geojson"), ("h5", [], "_scores.h5")):
        out = tmp_path / "cli" / f"{sid}{name}"
        assert main([*base, "--format", fmt, *extra, "--out", str(out)]) == 0
        if name.endswith(".png"):
            np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(gui / out.name)))
        elif name.endswith(".geojson"):
            assert _strip_ids(json.loads(out.read_text())) == _strip_ids(json.loads((gui / out.name).read_text()))
        else:
            assert _tiles(out.parent) == _tiles(gui)
