"""Prediction CSV, score h5 and checkpoint copies: columns, round trips, foreign layouts, atomicity, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np
import pytest
from refusals import assert_refuses

from pathpt_engine.errors import PathPTError
from pathpt_engine.export import (
    copy_checkpoint,
    read_predictions_csv,
    read_scores_h5,
    write_predictions_csv,
    write_scores_h5,
)
from pathpt_engine.results import SlidePrediction, TileScores

PREDS = [SlidePrediction("a", "LUAD", {"LUAD": 0.7, "LUSC": 0.3}, 12),
         SlidePrediction("b", "LUSC", {"LUAD": 0.1, "LUSC": 0.9}, 30)]


def test_predictions_csv_columns_and_round_trip(tmp_path: Path) -> None:
    path = write_predictions_csv(tmp_path / "out" / "pred.csv", PREDS, class_names=["Normal", "LUAD", "LUSC"])
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["slide_id", "predicted", "n_tiles", "slide_score", "n_voters", "vote_share_Normal",
                       "vote_share_LUAD", "vote_share_LUSC"]
    assert rows[1] == ["a", "LUAD", "12", "tile_votes", "", "", "0.7", "0.3"]
    assert read_predictions_csv(path) == PREDS
    auto = write_predictions_csv(tmp_path / "auto.csv", PREDS)
    assert auto.read_text().splitlines()[0] == "slide_id,predicted,n_tiles,slide_score,n_voters,vote_share_LUAD,vote_share_LUSC"
    assert [p.name for p in tmp_path.rglob("*") if p.name.startswith(".")] == []  # no temp files left


def test_predictions_csv_bad_input(tmp_path: Path) -> None:
    assert_refuses(read_predictions_csv, tmp_path / "nope.csv", None, "nope.csv")
    bad = tmp_path / "bad.csv"
    assert_refuses(read_predictions_csv, bad, "id,label\nx,y\n", "bad.csv: needs columns 'slide_id' and 'predicted'")
    assert_refuses(read_predictions_csv, bad, "slide_id,predicted,p_A\nx,A,high\n", "bad.csv: line 2")


def _scores() -> TileScores:
    rng = np.random.default_rng(0)
    return TileScores("s1", rng.integers(0, 10_000, (50, 2)) // 256 * 256,
                      rng.dirichlet(np.ones(3), 50).astype(np.float32), 256, ("Normal", "LUAD", "LUSC"))


def test_scores_h5_round_trip_with_prediction(tmp_path: Path) -> None:
    scores = _scores()
    pred = SlidePrediction("s1", "LUAD", {"LUAD": 0.6, "LUSC": 0.4}, 50)
    path = write_scores_h5(tmp_path / "s1.h5", scores, pred)
    back, back_pred = read_scores_h5(path)
    np.testing.assert_array_equal(back.coords, scores.coords)
    np.testing.assert_array_equal(back.probs, scores.probs)
    assert (back.slide_id, back.tile_size_level0, back.class_names) == ("s1", 256, scores.class_names)
    assert back_pred == pred
    with h5py.File(path) as f:  # CLAM/TRIDENT-style attribute for other tools
        assert f["coords"].attrs["patch_size_level0"] == 256 and f["coords"].dtype == np.int64
    only, none = read_scores_h5(write_scores_h5(tmp_path / "p.h5", scores))
    assert none is None and only.slide_id == "s1"


def test_scores_h5_foreign_layout_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "other_slide.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("coords", data=np.array([[0, 0], [512, 0]])).attrs["patch_size_level0"] = 512
        f.create_dataset("probs", data=np.array([[0.1, 0.9], [0.8, 0.2]], np.float64))
        f["probs"].attrs["class_names"] = np.array([b"Normal", b"Tumour"])
    scores, pred = read_scores_h5(path)
    assert scores.slide_id == "other_slide" and scores.class_names == ("Normal", "Tumour")
    assert scores.tile_size_level0 == 512 and scores.probs.dtype == np.float32 and pred is None
    with h5py.File(path, "a") as f:
        del f["probs"]
    assert_refuses(read_scores_h5, path, None, "other_slide.h5: no 'probs' dataset")
    assert_refuses(read_scores_h5, tmp_path / "junk.h5", b"junk", "junk.h5: cannot read as h5")
    with h5py.File(path, "a") as f:
        f.create_dataset("probs", data=np.ones((3, 2)))
        f["probs"].attrs["class_names"] = ["Normal", "Tumour"]
    assert_refuses(read_scores_h5, path, None, "other_slide.h5: .*do not match coords")


def test_copy_checkpoint_atomic_and_guarded(tmp_path: Path) -> None:
    src = tmp_path / "run" / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "weights.safetensors").write_bytes(b"w" * 100)
    (src / "sub" / "meta.json").write_text("{}")
    dst = copy_checkpoint(src, tmp_path / "exports" / "model")
    assert (dst / "weights.safetensors").read_bytes() == b"w" * 100 and (dst / "sub" / "meta.json").exists()
    with pytest.raises(PathPTError, match="already exists"):
        copy_checkpoint(src, dst)
    (src / "weights.safetensors").write_bytes(b"v2")
    copy_checkpoint(src, dst, overwrite=True)
    assert (dst / "weights.safetensors").read_bytes() == b"v2"
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["model"]
    with pytest.raises(PathPTError, match="missing: checkpoint folder not found"):
        copy_checkpoint(tmp_path / "missing", tmp_path / "x")
