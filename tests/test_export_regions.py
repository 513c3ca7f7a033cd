"""Class regions as QuPath annotations (`pathpt export --format geojson --regions`): tiles of one class merged
into polygons with holes, areas in px² and µm², and the file reads back through the annotation importer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.annotations.qupath import read_qupath
from pathpt_engine.cli import main
from pathpt_engine.export import write_scores_h5
from pathpt_engine.export.class_regions import AREA_PX, AREA_UM
from pathpt_engine.export.geojson import Region as ExportRegion
from pathpt_engine.export.regions import tile_labels_from_regions
from pathpt_engine.prompts.classsets import ClassInfo, ClassSet
from pathpt_engine.results import TileScores
from pathpt_engine.synth.writer import write_slide

NAMES = ("Normal", "LUAD", "LUSC")
CLASSES = ClassSet("lung", "test set", (
    ClassInfo("Normal", "Normal lung", ("normal lung",), "#7f7f7f", normal=True),
    ClassInfo("LUAD", "Adenocarcinoma", ("adenocarcinoma",), "#1f77b4"),
    ClassInfo("LUSC", "Squamous cell carcinoma", ("squamous cell carcinoma",), "#00ff00")),
    templates=("an H&E image of CLASSNAME.",))
T = 64


def _scores() -> TileScores:
    """8 x 6 tiles: Normal border column, a LUAD ring (5 x 5) around a 1-tile LUSC core, and a LUSC island."""
    coords, probs = [], []
    for r in range(6):
        for c in range(8):
            coords.append([32 + c * T, 16 + r * T])
            if c == 0:
                k = 0
            elif (r, c) == (2, 3) or (r == 5 and c == 7):
                k = 2
            elif 1 <= c <= 5 and r <= 4:
                k = 1
            else:
                k = 0
            p = np.full(3, 0.1)
            p[k] = 0.8
            probs.append(p)
    return TileScores("s1", np.array(coords, np.int64), np.array(probs, np.float32), T, NAMES)


@pytest.fixture
def cohort(tmp_path: Path) -> Path:
    (tmp_path / "slides").mkdir()
    write_slide(tmp_path / "slides" / "s1.tiff", np.full((512, 640, 3), 220, np.uint8), mpp=0.5)
    write_scores_h5(tmp_path / "preds" / "s1.h5", _scores())
    return tmp_path


def test_regions_round_trip_through_the_importer(cohort: Path) -> None:
    out = cohort / "s1_regions.geojson"
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--slide", str(cohort / "slides"),
                 "--format", "geojson", "--regions", "--simplify", "0", "--out", str(out)]) == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    by_class = {f["properties"]["classification"]["name"]: f for f in doc["features"]}
    assert set(by_class) == set(NAMES)
    luad = by_class["LUAD"]
    assert luad["geometry"]["type"] == "Polygon" and len(luad["geometry"]["coordinates"]) == 2  # shell + hole
    assert by_class["LUSC"]["geometry"]["type"] == "MultiPolygon"  # the core and the island
    scores = _scores()
    k = np.argmax(scores.probs, axis=1)
    for c, name in enumerate(NAMES):
        meas = by_class[name]["properties"]["measurements"]
        assert meas["n_tiles"] == int((k == c).sum())
        assert meas[AREA_PX] == pytest.approx((k == c).sum() * T * T)
        assert meas[AREA_UM] == pytest.approx(meas[AREA_PX] * 0.25)
    assert len(luad["geometry"]["coordinates"][0]) == 5  # a rectangle: collinear vertices removed

    report = read_qupath(out, "s1", CLASSES)
    assert sorted(r.class_name for r in report.regions) == sorted(NAMES)
    assert not report.repairs
    back = [ExportRegion(r.class_name, None, r.geometry.to_lists()) for r in report.regions]
    labels = tile_labels_from_regions(back, scores.coords, T)
    assert labels == [NAMES[i] for i in k]  # every tile lies in the region of its own class
    for r in report.regions:
        assert r.geometry.area() == pytest.approx(by_class[r.class_name]["properties"]["measurements"][AREA_PX])


def test_regions_without_slide_have_no_um2_and_are_simplified(cohort: Path) -> None:
    out = cohort / "r.geojson"
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--format", "geojson", "--regions",
                 "--out", str(out)]) == 0
    feats = json.loads(out.read_text(encoding="utf-8"))["features"]
    assert feats and all(AREA_UM not in f["properties"]["measurements"] for f in feats)
    # simplified by default (0.75 tile): every tile centre still lies in the region of its own class
    report = read_qupath(out, "s1", CLASSES)
    back = [ExportRegion(r.class_name, None, r.geometry.to_lists()) for r in report.regions]
    scores = _scores()
    assert tile_labels_from_regions(back, scores.coords, T) == [NAMES[i] for i in np.argmax(scores.probs, axis=1)]


def test_simplified_staircase_stays_valid_and_keeps_every_tile(tmp_path: Path) -> None:
    """A triangle of tiles: its exact outline is a staircase; simplified (0.75 tile) it is a triangle that still
    holds every tile centre and reads back through the importer without repairs."""
    from pathpt_engine.export.class_regions import write_class_regions

    coords = np.array([[x * T, y * T] for y in range(20) for x in range(20) if x <= y], np.int64)
    probs = np.tile(np.array([[0.1, 0.8, 0.1]], np.float32), (len(coords), 1))
    scores = TileScores("s1", coords, probs, T, NAMES)
    exact = json.loads(write_class_regions(tmp_path / "e.geojson", scores).read_text(encoding="utf-8"))
    simple = json.loads(write_class_regions(tmp_path / "s.geojson", scores, simplify=0.75 * T)
                        .read_text(encoding="utf-8"))
    ring_exact = exact["features"][0]["geometry"]["coordinates"][0]
    ring_simple = simple["features"][0]["geometry"]["coordinates"][0]
    assert len(ring_exact) == 2 * 20 + 3 and len(ring_simple) == 4  # staircase -> triangle
    assert simple["features"][0]["properties"]["measurements"][AREA_PX] < len(coords) * T * T
    report = read_qupath(tmp_path / "s.geojson", "s1", CLASSES)
    assert not report.repairs and [r.class_name for r in report.regions] == ["LUAD"]
    back = [ExportRegion(r.class_name, None, r.geometry.to_lists()) for r in report.regions]
    assert tile_labels_from_regions(back, coords, T) == ["LUAD"] * len(coords)
