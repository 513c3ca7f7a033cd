"""`pathpt export` on predict-style outputs: png / geojson / csv / h5, folders and single files, bad input."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathpt_engine.cli import main
from pathpt_engine.export import read_geojson, read_scores_h5, write_predictions_csv, write_scores_h5
from pathpt_engine.results import SlidePrediction, TileScores
from pathpt_engine.synth.writer import write_slide

NAMES = ("Normal", "LUAD", "LUSC")


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """preds/{s1,s2}.h5 + preds/predictions.csv (s1 also stores its prediction in the h5) and slides/."""
    root = tmp_path_factory.mktemp("cohort")
    rng = np.random.default_rng(0)
    (root / "slides" / "sub").mkdir(parents=True)
    for i, sid in enumerate(("s1", "s2")):
        write_slide(root / "slides" / "sub" / f"{sid}.tiff", np.full((512, 640, 3), 220 - 20 * i, np.uint8))
        coords = np.array([[x, y] for y in range(0, 512, 128) for x in range(0, 640, 128)])
        scores = TileScores(sid, coords, rng.dirichlet(np.ones(3), len(coords)).astype(np.float32), 128, NAMES)
        pred = SlidePrediction(sid, "LUAD", {"LUAD": 0.6, "LUSC": 0.4}, len(coords))
        write_scores_h5(root / "preds" / f"{sid}.h5", scores, pred if sid == "s1" else None)
    write_predictions_csv(root / "preds" / "predictions.csv",
                          [SlidePrediction("s2", "LUSC", {"LUAD": 0.2, "LUSC": 0.8}, 20)])
    return root


def test_png_over_slides_folder(cohort: Path, tmp_path: Path) -> None:
    rc = main(["-q", "export", "--scores", str(cohort / "preds"), "--slide", str(cohort / "slides"),
               "--format", "png", "--downsample", "16", "--class", "LUSC", "--cmap", "magma", "--alpha", "0.7",
               "--out", str(tmp_path / "png")])
    assert rc == 0
    for sid in ("s1", "s2"):
        with Image.open(tmp_path / "png" / f"{sid}.png") as im:
            assert im.size == (40, 32)
    rc = main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--format", "png",
               "--out", str(tmp_path / "heat.png")])
    assert rc == 0 and Image.open(tmp_path / "heat.png").format == "PNG"  # raw heatmap + legend


def test_geojson_and_h5_round_trip(cohort: Path, tmp_path: Path) -> None:
    assert main(["-q", "export", "--scores", str(cohort / "preds"), "--format", "geojson",
                 "--color", "LUAD=#ff0000", "--out", str(tmp_path / "gj")]) == 0
    original, _ = read_scores_h5(cohort / "preds" / "s2.h5")
    got = read_geojson(tmp_path / "gj" / "s2.geojson")
    assert got.prediction == SlidePrediction("s2", "LUSC", {"LUAD": 0.2, "LUSC": 0.8}, 20)  # from the CSV
    np.testing.assert_array_equal(got.scores.probs, original.probs)
    doc = json.loads((tmp_path / "gj" / "s1.geojson").read_text())
    luad = [f for f in doc["features"] if f["properties"]["classification"]["name"] == "LUAD"]
    assert luad and all(f["properties"]["classification"]["color"] == [255, 0, 0] for f in luad)
    # GeoJSON back to a scores h5
    assert main(["-q", "export", "--scores", str(tmp_path / "gj" / "s2.geojson"), "--format", "h5",
                 "--out", str(tmp_path / "back.h5")]) == 0
    back, pred = read_scores_h5(tmp_path / "back.h5")
    np.testing.assert_array_equal(back.coords, original.coords)
    assert pred is not None and pred.predicted == "LUSC"


def test_csv_merges_stored_and_csv_predictions(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    assert main(["-q", "export", "--scores", str(cohort / "preds"), "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["slide_id", "predicted", "n_tiles", "slide_score", "n_voters", "vote_share_Normal",
                             "vote_share_LUAD", "vote_share_LUSC"]
    assert [(r["slide_id"], r["predicted"]) for r in rows] == [("s1", "LUAD"), ("s2", "LUSC")]


def test_bad_inputs_exit_2_naming_the_file(cohort: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "export", "--scores", str(tmp_path / "nope"), "--format", "h5", "--out", str(tmp_path)]) == 2
    assert "nope: scores file or folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["-q", "export", "--scores", str(tmp_path / "empty"), "--format", "h5", "--out", str(tmp_path)]) == 2
    assert "empty: no <slide>.h5 score files" in capsys.readouterr().err
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s2.h5"), "--format", "csv",
                 "--predictions", str(tmp_path / "none.csv"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "none.csv" in capsys.readouterr().err
    only = tmp_path / "only"
    only.mkdir()
    (only / "s2.h5").write_bytes((cohort / "preds" / "s2.h5").read_bytes())
    assert main(["-q", "export", "--scores", str(only), "--format", "csv", "--out", str(tmp_path / "x.csv")]) == 2
    assert "s2.h5: no slide prediction" in capsys.readouterr().err
    assert main(["-q", "export", "--scores", str(only), "--format", "png", "--slide", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "p")]) == 2
    assert "empty: no slide file named s2.*" in capsys.readouterr().err
    assert main(["-q", "export", "--scores", str(only), "--format", "png", "--cmap", "nope",
                 "--out", str(tmp_path / "p")]) == 2
    assert "unknown colormap 'nope'" in capsys.readouterr().err
    assert main(["-q", "export", "--scores", str(only), "--format", "png", "--color", "LUAD=red",
                 "--out", str(tmp_path / "p")]) == 2
    assert "--color 'LUAD=red'" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "p").exists()


def test_one_slide_file_is_never_laid_under_another_slides_scores(cohort: Path, tmp_path: Path, capsys) -> None:
    s1 = cohort / "slides" / "sub" / "s1.tiff"
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--slide", str(s1), "--format",
                 "png", "--downsample", "16", "--out", str(tmp_path / "one.png")]) == 0  # its own slide: fine
    with Image.open(tmp_path / "one.png") as im:
        assert im.size == (40, 32)
    rc = main(["-q", "export", "--scores", str(cohort / "preds"), "--slide", str(s1), "--format", "png",
               "--downsample", "16", "--out", str(tmp_path / "both")])
    err = capsys.readouterr().err
    assert rc == 2 and "is not slide 's2'" in err and "\n" not in err.strip()
    assert not (tmp_path / "both" / "s2.png").exists()


def test_classes_gives_the_class_set_colours_and_color_overrides(cohort: Path, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    """`--classes` colours a CLI export as the GUI colours the same classes (the class set's colours)."""
    from pathpt_engine.prompts.classsets import load_classset, save_classset

    base = load_classset("synthetic")
    save_classset(replace(base, name="lung", classes=tuple(
        replace(c, name=n, color=col) for c, n, col in
        zip(base.classes[:3], NAMES, ("#3caa50", "#dc3c3c", "#1e64c8"), strict=True))), tmp_path / "lung.json")
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--format", "geojson",
                 "--classes", str(tmp_path / "lung.json"), "--color", "LUSC=#000000",
                 "--out", str(tmp_path / "s1.geojson")]) == 0
    doc = json.loads((tmp_path / "s1.geojson").read_text())
    colour = {f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
              for f in doc["features"] if "classification" in f["properties"]}
    assert colour["LUAD"] == [220, 60, 60] and colour["LUSC"] == [0, 0, 0]
    assert main(["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--format", "geojson",
                 "--classes", str(tmp_path / "nope.json"), "--out", str(tmp_path / "x.geojson")]) == 2
    assert "nope.json" in capsys.readouterr().err
