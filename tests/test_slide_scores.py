"""Slide-level numbers named for what they are: tile-vote shares (PathPT, zero-shot) vs probabilities (MIL heads).

Through the vote, the predictor, the CSV, the score h5 and the GeoJSON, with files of earlier versions (vote shares
stored as `p_<class>` / `slide_probs` / class-name measurements) still read, as kind `tile_votes`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from pathpt_engine.errors import PathPTError
from pathpt_engine.export import (
    read_geojson,
    read_predictions_csv,
    read_scores_h5,
    write_geojson,
    write_predictions_csv,
    write_scores_h5,
)
from pathpt_engine.ops.vote import ALL, TUMOUR, tile_vote, vote_summary
from pathpt_engine.pathpt.predictor import scores_from_probs
from pathpt_engine.pathpt.trainer import SlideData
from pathpt_engine.prompts.classsets import load_classset
from pathpt_engine.results import (
    ALL_TILE_VOTES,
    PROBABILITY,
    TILE_VOTES,
    TUMOUR_TILE_VOTES,
    SlidePrediction,
    TileScores,
    score_heading,
    score_text,
)


def _onehot(classes: list[int], c: int = 3) -> np.ndarray:
    return np.eye(c, dtype=np.float32)[classes] * 0.8 + 0.1


def test_vote_summary_says_which_tiles_voted() -> None:
    # 10 tiles: 4 Normal, 4 vote subtype 1 (class 2), 2 vote subtype 0 -> 67% of 6 tumour tiles
    v = vote_summary(_onehot([0] * 4 + [2] * 4 + [1] * 2))
    assert (v.subtype, v.basis, v.n_voters) == (1, TUMOUR, 6)
    np.testing.assert_allclose(v.shares, [2 / 6, 4 / 6])
    # all Normal: every tile votes over the subtype columns
    probs = np.array([[0.9, 0.06, 0.04]] * 3 + [[0.8, 0.05, 0.15]] * 2, np.float32)
    v = vote_summary(probs)
    assert (v.subtype, v.basis, v.n_voters) == (0, ALL, 5)
    np.testing.assert_allclose(v.shares, [0.6, 0.4])
    # a tie among tumour tiles falls back too
    assert vote_summary(_onehot([1, 2, 0, 0])).basis == ALL
    assert tile_vote(_onehot([0] * 4 + [2] * 4 + [1] * 2))[0] == 1


def test_predictor_labels_its_numbers_as_tile_votes() -> None:
    cs = load_classset("ucs")
    slide = SlideData("s", np.zeros((10, 4), np.float32), np.zeros((10, 2), np.int64))
    pred, _ = scores_from_probs(cs, slide, _onehot([0] * 4 + [2] * 4 + [1] * 2))
    assert pred.score_kind == TUMOUR_TILE_VOTES and pred.n_voters == 6 and pred.is_vote
    assert pred.predicted == cs.subtype_names[1]
    assert score_text(pred.score_kind, pred.probs[pred.predicted]) == "67% of tumour tiles"
    assert score_heading(pred.score_kind, pred.n_voters) == "tile votes: share of the 6 tumour tiles"
    pred, _ = scores_from_probs(cs, slide, np.array([[0.9, 0.06, 0.04]] * 10, np.float32))
    assert pred.score_kind == ALL_TILE_VOTES and pred.n_voters == 10
    assert score_text(pred.score_kind, 1.0) == "100% of all tiles"
    assert score_text(PROBABILITY, 0.654) == "probability 0.65"
    with pytest.raises(ValueError, match="unknown slide score kind"):
        SlidePrediction("s", "A", {"A": 1.0}, 1, score_kind="odds")


VOTE = SlidePrediction("a", "LUAD", {"LUAD": 0.65, "LUSC": 0.35}, 200, score_kind=TUMOUR_TILE_VOTES, n_voters=120)
PROB = SlidePrediction("b", "LUSC", {"LUAD": 0.2, "LUSC": 0.8}, 90, score_kind=PROBABILITY)


def test_csv_names_vote_shares_and_probabilities(tmp_path: Path) -> None:
    path = write_predictions_csv(tmp_path / "p.csv", [VOTE, PROB], ["LUAD", "LUSC"])
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["slide_id", "predicted", "n_tiles", "slide_score", "n_voters", "vote_share_LUAD",
                             "vote_share_LUSC", "p_LUAD", "p_LUSC"]
    assert rows[0]["slide_score"] == "tumour_tile_votes" and rows[0]["n_voters"] == "120"
    assert rows[0]["vote_share_LUAD"] == "0.65" and rows[0]["p_LUAD"] == ""
    assert rows[1]["slide_score"] == "probability" and rows[1]["p_LUSC"] == "0.8" and rows[1]["vote_share_LUSC"] == ""
    assert read_predictions_csv(path) == [VOTE, PROB]
    only_prob = write_predictions_csv(tmp_path / "q.csv", [PROB])
    assert only_prob.read_text().splitlines()[0] == "slide_id,predicted,n_tiles,slide_score,n_voters,p_LUAD,p_LUSC"


def test_csv_of_an_earlier_version_still_reads_and_bad_kinds_fail_clearly(tmp_path: Path) -> None:
    old = tmp_path / "old.csv"
    old.write_text("slide_id,predicted,n_tiles,p_LUAD,p_LUSC\na,LUAD,12,0.7,0.3\n")
    assert read_predictions_csv(old) == [SlidePrediction("a", "LUAD", {"LUAD": 0.7, "LUSC": 0.3}, 12)]
    assert read_predictions_csv(old)[0].score_kind == TILE_VOTES
    bad = tmp_path / "bad.csv"
    bad.write_text("slide_id,predicted,slide_score,vote_share_A\nx,A,odds,1.0\n")
    with pytest.raises(PathPTError, match="bad.csv: line 2: unknown slide_score 'odds'"):
        read_predictions_csv(bad)


def _scores(n: int = 6) -> TileScores:
    coords = np.array([[i * 224, 0] for i in range(n)], np.int64)
    return TileScores("a", coords, _onehot([0, 1, 1, 2, 1, 0][:n]), 224, ("Normal", "LUAD", "LUSC"))


def test_scores_h5_stores_the_kind_and_reads_earlier_files(tmp_path: Path) -> None:
    path = write_scores_h5(tmp_path / "a.h5", _scores(), VOTE)
    with h5py.File(path) as f:
        assert "slide_probs" not in f.attrs
        assert json.loads(f.attrs["slide_scores"]) == VOTE.probs
        assert f.attrs["slide_score_kind"] == "tumour_tile_votes" and int(f.attrs["slide_n_voters"]) == 120
    assert read_scores_h5(path)[1] == VOTE
    prob = replace(PROB, slide_id="a")
    assert read_scores_h5(write_scores_h5(tmp_path / "b.h5", _scores(), prob))[1] == prob
    with h5py.File(path, "a") as f:  # an earlier version's attributes
        f.attrs["slide_probs"] = f.attrs["slide_scores"]
        for k in ("slide_scores", "slide_score_kind", "slide_n_voters"):
            del f.attrs[k]
    old = read_scores_h5(path)[1]
    assert old == SlidePrediction("a", "LUAD", VOTE.probs, 200) and old.score_kind == TILE_VOTES


def test_geojson_names_the_slide_numbers_and_reads_earlier_files(tmp_path: Path) -> None:
    path = write_geojson(tmp_path / "a.geojson", _scores(), VOTE)
    summary = json.loads(path.read_text())["features"][0]["properties"]
    assert summary["name"] == "a: LUAD (tile votes: 65% of tumour tiles)"
    assert summary["measurements"] == {"vote share: LUAD": 0.65, "vote share: LUSC": 0.35, "n_tiles": 200,
                                       "n_voters": 120}
    assert summary["metadata"]["pathpt.slide_score"] == "tumour_tile_votes"
    assert read_geojson(path).prediction == VOTE
    prob = replace(PROB, slide_id="a")
    feat = json.loads(write_geojson(tmp_path / "b.geojson", _scores(), prob).read_text())["features"][0]
    assert feat["properties"]["name"] == "a: LUSC (probability 0.80)"
    assert set(feat["properties"]["measurements"]) == {"probability: LUAD", "probability: LUSC", "n_tiles"}
    assert read_geojson(tmp_path / "b.geojson").prediction == prob
    doc = json.loads(path.read_text())  # an earlier version: class-name measurements, no pathpt.slide_score
    props = doc["features"][0]["properties"]
    props["measurements"] = {"LUAD": 0.65, "LUSC": 0.35, "n_tiles": 200}
    del props["metadata"]["pathpt.slide_score"]
    (tmp_path / "old.geojson").write_text(json.dumps(doc))
    old = read_geojson(tmp_path / "old.geojson").prediction
    assert old == SlidePrediction("a", "LUAD", {"LUAD": 0.65, "LUSC": 0.35}, 200) and old.score_kind == TILE_VOTES
