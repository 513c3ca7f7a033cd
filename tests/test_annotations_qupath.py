"""QuPath annotation GeoJSON: import (forms, holes, MultiPolygon, classes, refusals) and a vertex-exact round trip;
project storage of regions and tile corrections (transactional, migrated, survives a killed process)."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.annotations import IGNORE_CLASS, Region, rectangle
from pathpt_engine.annotations.qupath import read_qupath, write_qupath
from pathpt_engine.errors import ConfigError, ProjectError
from pathpt_engine.project import Project
from pathpt_engine.prompts.classsets import synth_classset

CS = synth_classset()
SUB = CS.subtype_names

# The shapes QuPath 0.4/0.5 "Export objects as GeoJSON" writes (FeatureCollection option), incl. a hole, a
# MultiPolygon with fractional vertices, a tile object and an unclassified annotation.
QUPATH_DOC = {"type": "FeatureCollection", "features": [
    {"type": "Feature", "id": "3f2b8c1e-7d4a-4e5b-9c0d-1a2b3c4d5e6f",
     "geometry": {"type": "Polygon", "coordinates": [
         [[1000, 2000], [5000, 2000], [5000, 6000], [1000, 6000], [1000, 2000]],
         [[2000, 3000], [2000, 4000], [3000, 4000], [3000, 3000], [2000, 3000]]]},
     "properties": {"objectType": "annotation", "name": "Region 1", "isLocked": True,
                    "classification": {"name": "Tumour-A", "color": [200, 0, 0]}}},
    {"type": "Feature", "id": "9a0e4f6b-2c3d-4e1f-8a7b-6c5d4e3f2a1b",
     "geometry": {"type": "MultiPolygon", "coordinates": [
         [[[8000, 8000], [9000, 8000], [9000, 9000], [8000, 9000], [8000, 8000]]],
         [[[9500.5, 8000], [10500.25, 8000], [10000, 9000], [9500.5, 8000]]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Stroma", "color": [150, 200, 150]}}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [448, 0], [448, 448], [0, 448], [0, 0]]]},
     "properties": {"objectType": "tile", "classification": {"name": "Stroma", "color": [1, 2, 3]}}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[0, 0], [99, 0], [99, 99], [0, 0]]]}, "properties": {"objectType": "annotation"}},
    {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [
        [[50, 50], [60, 50], [60, 60], [50, 50]]]},
     "properties": {"objectType": "annotation", "classification": {"name": "Ignore*", "color": [180, 180, 180]}}},
]}


def _doc(tmp_path: Path, doc, name="a.geojson") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def _rings(doc) -> list:
    out = []
    for f in doc["features"]:
        g = f["geometry"]
        polys = [g["coordinates"]] if g["type"] == "Polygon" else g["coordinates"]
        out.append([[[float(v) for v in p] for p in ring] for poly in polys for ring in poly])
    return out


def test_import_qupath_forms_holes_multipolygons_and_classes(tmp_path):
    src = _doc(tmp_path, QUPATH_DOC)
    rep = read_qupath(src, "s1", CS, {"Tumour-A": SUB[0], "Stroma": "normal"})
    assert [r.class_name for r in rep.regions] == [SUB[0], "normal", IGNORE_CLASS]
    assert rep.skipped == {"tile object(s)": 1, "unclassified annotation(s)": 1}
    first = rep.regions[0]
    assert first.region_id == "3f2b8c1e-7d4a-4e5b-9c0d-1a2b3c4d5e6f" and first.name == "Region 1"
    assert len(first.geometry.parts[0].holes) == 1
    assert first.geometry.area() == 4000 * 4000 - 1000 * 1000
    assert len(rep.regions[1].geometry.parts) == 2
    assert rep.regions[1].geometry.parts[1].shell[0].tolist() == [9500.5, 8000.0]
    # a bare list of features, one Feature, and a gzip file read the same
    as_list = read_qupath(_doc(tmp_path, QUPATH_DOC["features"], "l.json"), "s1", CS,
                          {"Tumour-A": SUB[0], "Stroma": "normal"})
    assert [r.geometry.same_as(q.geometry) for r, q in zip(as_list.regions, rep.regions, strict=True)] == [True] * 3
    legacy = [{"type": "Feature", "id": "PathDetectionObject", "geometry": QUPATH_DOC["features"][0]["geometry"],
               "properties": {"classification": {"name": "normal", "colorRGB": -16711936}}},
              {"type": "Feature", "id": "PathAnnotationObject", "geometry": QUPATH_DOC["features"][0]["geometry"],
               "properties": {"classification": {"name": "normal", "colorRGB": -16711936}}}]
    old = read_qupath(_doc(tmp_path, legacy, "v02.json"), "s1", CS)  # QuPath 0.2: the object class in `id`
    assert len(old.regions) == 1 and old.skipped == {"detection object(s)": 1}
    gz = tmp_path / "z.geojson.gz"
    gz.write_bytes(gzip.compress(json.dumps(QUPATH_DOC["features"][1]).encode()))
    assert len(read_qupath(gz, "s1", CS, {"Stroma": "normal"}).regions) == 1


def test_round_trip_keeps_every_vertex(tmp_path):
    src = _doc(tmp_path, QUPATH_DOC)
    rep = read_qupath(src, "s1", CS, {"Tumour-A": SUB[0], "Stroma": "normal"})
    out = write_qupath(tmp_path / "out.geojson", rep.regions, CS)
    doc = json.loads(out.read_text())
    kept = [f for f in QUPATH_DOC["features"] if f["properties"].get("objectType") == "annotation"
            and "classification" in f["properties"]]
    assert _rings(doc) == _rings({"features": kept})  # same vertices, same order, rings closed
    assert doc["type"] == "FeatureCollection"
    f0 = doc["features"][0]
    assert f0["properties"]["objectType"] == "annotation" and f0["id"] == rep.regions[0].region_id
    assert f0["properties"]["classification"] == {"name": SUB[0], "color": list(_rgb(CS.classes[1].color))}
    assert doc["features"][2]["properties"]["classification"]["name"] == "Ignore*"
    assert doc["features"][0]["geometry"]["type"] == "Polygon"  # one part: never a one-part MultiPolygon
    again = read_qupath(out, "s1", CS)  # our own export needs no mapping
    assert all(a.geometry.same_as(b.geometry) and a.class_name == b.class_name and a.region_id == b.region_id
               for a, b in zip(again.regions, rep.regions, strict=True))


def _rgb(h):
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


def test_import_refusals_are_one_line_and_name_the_file(tmp_path):
    src = _doc(tmp_path, QUPATH_DOC)
    with pytest.raises(ConfigError, match=r"a\.geojson.*'Tumour-A', 'Stroma'.*--map"):
        read_qupath(src, "s1", CS)
    with pytest.raises(ConfigError, match="cannot map 'Stroma' to 'Bone'"):
        read_qupath(src, "s1", CS, {"Tumour-A": SUB[0], "Stroma": "Bone"})
    bow = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 10], [10, 0], [0, 10],
                                                                               [0, 0]]]},
           "properties": {"objectType": "annotation", "name": "bad", "classification": {"name": "normal"}}}
    with pytest.raises(ConfigError, match=r"b\.geojson: feature 1 \('bad'\).*crosses itself"):
        read_qupath(_doc(tmp_path, [bow], "b.geojson"), "s1", CS)
    (tmp_path / "c.geojson").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.geojson: cannot read GeoJSON"):
        read_qupath(tmp_path / "c.geojson", "s1", CS)
    with pytest.raises(ConfigError, match="not QuPath GeoJSON"):
        read_qupath(_doc(tmp_path, {"foo": 1}, "d.geojson"), "s1", CS)


# ---- project storage ---------------------------------------------------------------------------------------
def _project(tmp_path: Path, slide_fixture) -> Project:
    p = Project.create(tmp_path / "proj")
    p.classes.set(CS)
    p.slides.add(slide_fixture)
    return p


@pytest.fixture
def slide_file(tmp_path):
    from slide_fixtures import make_slide

    return make_slide(tmp_path / "s1.tif", 1024, 768)


def test_store_regions_and_corrections(tmp_path, slide_file):
    with _project(tmp_path, slide_file) as p:
        sid = p.slides.list()[0].slide_id
        r, notes = p.annotations.add(Region(sid, SUB[1], rectangle(0, 0, 500, 400), "rectangle"))
        assert notes == []
        r2, _ = p.annotations.add(Region(sid, IGNORE_CLASS, rectangle(600, 0, 700, 100), "rectangle"))
        assert [x.region_id for x in p.annotations.list(sid)] == [r.region_id, r2.region_id]
        with pytest.raises(ConfigError, match="crosses itself"):
            p.annotations.add(Region(sid, "normal", _bowtie()))
        with pytest.raises(ProjectError, match="no slide 'nope'"):
            p.annotations.add(Region("nope", "normal", rectangle(0, 0, 5, 5)))
        assert len(p.annotations.list()) == 2  # the refused ones left nothing behind
        moved = r.with_geometry(r.geometry.translated(10, 0)).with_class("normal")
        p.annotations.update(moved)
        assert p.annotations.get(r.region_id).geometry.same_as(moved.geometry)
        gone, seq = p.annotations.delete(r2.region_id)
        p.annotations.add(gone, seq)  # undo puts it back in its place
        assert [x.region_id for x in p.annotations.list(sid)] == [r.region_id, r2.region_id]
        assert p.annotations.set_tile(sid, 224, 448, SUB[0]) is None
        assert p.annotations.set_tile(sid, 224, 448, "normal") == SUB[0]
        assert p.annotations.tile_corrections(sid) == {(224, 448): "normal"}
        assert p.annotations.slides() == [sid]
        with pytest.raises(ProjectError, match="already stored"):  # an import in one transaction: all or nothing
            p.annotations.add_many([Region(sid, "normal", rectangle(0, 0, 9, 9)), gone])
        assert len(p.annotations.list(sid)) == 2


def _bowtie():
    from pathpt_engine.annotations import polygon

    return polygon([[0, 0], [10, 10], [10, 0], [0, 10]])


def test_v1_project_is_migrated(tmp_path, slide_file, monkeypatch):
    from pathpt_engine.project import db as dbmod

    with monkeypatch.context() as m:
        m.setattr(dbmod, "MIGRATIONS", dbmod.MIGRATIONS[:1])
        m.setattr(dbmod, "SCHEMA_VERSION", 1)
        _project(tmp_path, slide_file).close()
    with Project.open(tmp_path / "proj") as p:
        assert p.schema_version == dbmod.SCHEMA_VERSION >= 2
        sid = p.slides.list()[0].slide_id
        p.annotations.add(Region(sid, "normal", rectangle(0, 0, 9, 9)))
        assert len(p.annotations.list(sid)) == 1


_KILLER = """
import os, sys
from pathpt_engine.annotations import Region, rectangle
from pathpt_engine.project import Project
p = Project.open(sys.argv[1])
sid = p.slides.list()[0].slide_id
for i in range(5):
    p.annotations.add(Region(sid, "normal", rectangle(i * 10, 0, i * 10 + 5, 5), region_id=f"r{i}"))
p.annotations.set_tile(sid, 0, 0, "normal")
print("drawn", flush=True)
os.kill(os.getpid(), 9)
"""


def test_kill_minus_9_loses_nothing_already_drawn(tmp_path, slide_file):
    _project(tmp_path, slide_file).close()
    proc = subprocess.run([sys.executable, "-c", _KILLER, str(tmp_path / "proj")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9 and "drawn" in proc.stdout
    with Project.open(tmp_path / "proj") as p:
        sid = p.slides.list()[0].slide_id
        assert [r.region_id for r in p.annotations.list(sid)] == [f"r{i}" for i in range(5)]
        assert p.annotations.tile_corrections(sid) == {(0, 0): "normal"}
        np.testing.assert_array_equal(p.annotations.get("r4").geometry.parts[0].shell,
                                      [[40, 0], [45, 0], [45, 5], [40, 5]])
