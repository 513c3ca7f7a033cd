"""`pathpt annotations import|export|list` and `pathpt train --annotations DIR`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pathpt_engine.cli import main
from pathpt_engine.prompts.classsets import load_classset, save_classset, synth_classset

CS = synth_classset()
SUB = CS.subtype_names
DOC = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "id": "3f2b8c1e-7d4a-4e5b-9c0d-1a2b3c4d5e6f",
     "geometry": {"type": "Polygon", "coordinates": [
         [[100, 200], [500.25, 200], [500.25, 600], [100, 600], [100, 200]],
         [[200, 300], [200, 400], [300, 400], [300, 300], [200, 300]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Tumor", "color": [200, 0, 0]}}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[700, 700], [900, 700], [800, 880.5], [700, 700]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "normal", "color": [0, 200, 0]}}},
]}


@pytest.fixture
def project(tmp_path):
    from slide_fixtures import make_slide

    from pathpt_engine.project import Project

    slide = make_slide(tmp_path / "s1.tif", 1024, 768, mpp=0.5)
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(CS)
        p.slides.add(slide)
        sid = p.slides.list()[0].slide_id
    return tmp_path / "proj", sid


def test_import_export_list_round_trip(project, tmp_path, capsys):
    proj, sid = project
    src = tmp_path / "in.geojson"
    src.write_text(json.dumps(DOC), encoding="utf-8")
    base = ["annotations", "import", "--project", str(proj), "--slide", sid, str(src)]
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "in.geojson" in err and "'Tumor'" in err and "--map" in err
    assert main([*base, "--map", f"Tumor={SUB[0]}"]) == 0
    assert "imported 2 region(s)" in capsys.readouterr().out
    out = tmp_path / "out.geojson"
    assert main(["annotations", "export", "--project", str(proj), "--slide", sid, str(out)]) == 0
    got = json.loads(out.read_text())
    assert [f["geometry"]["coordinates"] for f in got["features"]] == [
        f["geometry"]["coordinates"] for f in DOC["features"]]
    assert got["features"][0]["id"] == DOC["features"][0]["id"]
    assert [f["properties"]["classification"]["name"] for f in got["features"]] == [SUB[0], "normal"]
    capsys.readouterr()
    assert main(["annotations", "list", "--project", str(proj)]) == 0
    rows = [r.split("\t") for r in capsys.readouterr().out.strip().splitlines()]
    area = (400.25 * 400 - 100 * 100) * 0.25 * 1e-6
    assert rows[0][2] == SUB[0] and rows[0][4] == f"{area:.4f} mm2"
    assert main([*base, "--map", f"Tumor={SUB[0]}", "--replace"]) == 0
    assert main(["annotations", "list", "--project", str(proj)]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3  # "imported..." line + 2 regions


def test_unknown_slide_and_missing_file_exit_2(project, tmp_path, capsys):
    proj, _ = project
    assert main(["annotations", "export", "--project", str(proj), "--slide", "nope", str(tmp_path / "x.geojson")]) == 2
    assert "no slide 'nope'" in capsys.readouterr().err
    assert main(["annotations", "import", "--project", str(proj), "--slide", "nope", str(tmp_path / "none")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_train_with_annotations_dir(tmp_path, capsys, caplog):
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    cs = load_classset("synthetic")
    bb = tiny_backbone(tmp_path / "keep2")
    feats, labels = make_fake_cohort(tmp_path / "c", bb, cs, per_class=2, n_tiles=16)
    save_classset(cs, tmp_path / "cs.json")
    ann = tmp_path / "ann"
    ann.mkdir()
    sid = sorted(p.stem for p in Path(feats).glob("*.h5"))[0]
    (ann / f"{sid}.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
            [[0, 0], [448, 0], [448, 448], [0, 448], [0, 0]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Ignore*", "color": [1, 1, 1]}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
            [[448, 0], [896, 0], [896, 224], [448, 224], [448, 0]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "Benign", "color": [1, 1, 1]}}}]}))
    base = ["-q", "train", "--features", str(feats), "--backbone", "keep", "--weights", str(tmp_path / "keep2"),
            "--device", "cpu", "--classes", "synthetic", "--labels", str(labels), "--epochs", "1",
            "--annotations", str(ann)]
    assert main([*base, "--out", str(tmp_path / "r0")]) == 2
    assert "'Benign'" in capsys.readouterr().err
    with caplog.at_level("INFO", logger="pathpt_engine.annotations.apply"):
        assert main([*base, "--map", "Benign=normal", "--out", str(tmp_path / "r1")]) == 0
    assert f"slide {sid}: 2 tile(s) with an annotated class, 4 ignored" in caplog.text
    assert main([*base[:-2], "--annotations", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")]) == 2
    assert "annotations folder not found" in capsys.readouterr().err


def test_predict_with_annotations_drops_ignored_tiles(tmp_path, capsys):
    import h5py

    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    cs = load_classset("synthetic")
    bb = tiny_backbone(tmp_path / "keep")
    feats, labels = make_fake_cohort(tmp_path / "c", bb, cs, per_class=2, n_tiles=16)
    common = ["--device", "cpu", "--weights", str(tmp_path / "keep")]
    assert main(["-q", "train", "--features", str(feats), "--backbone", "keep", "--classes", "synthetic",
                 "--labels", str(labels), "--epochs", "1", "--out", str(tmp_path / "run"), *common]) == 0
    ann = tmp_path / "ann"
    ann.mkdir()
    sid = sorted(p.stem for p in Path(feats).glob("*.h5"))[1]
    (ann / f"{sid}.json").write_text(json.dumps([
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
            [[0, 0], [448, 0], [448, 224], [0, 224], [0, 0]]]},
         "properties": {"classification": {"name": "Ignore*", "color": [1, 1, 1]}}}]))
    base = ["-q", "predict", "--run", str(tmp_path / "run"), "--features", str(feats), *common]
    assert main([*base, "--out", str(tmp_path / "p0")]) == 0
    assert main([*base, "--annotations", str(ann), "--out", str(tmp_path / "p1")]) == 0
    for out, n in (("p0", 16), ("p1", 14)):
        with h5py.File(tmp_path / out / "tiles" / f"{sid}.h5") as f:
            assert f["coords"].shape == (n, 2)
            assert not (n == 14 and any(tuple(c) in {(0, 0), (224, 0)} for c in f["coords"][:]))
    capsys.readouterr()
    assert main([*base, "--annotations", str(ann), "--cluster", "local", "--out", str(tmp_path / "p2")]) == 2
    assert "not supported with --cluster" in capsys.readouterr().err
