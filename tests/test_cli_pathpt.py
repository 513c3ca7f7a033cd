"""`pathpt zeroshot/train/predict/evaluate` end to end on a tiny KEEP folder and a fake feature cohort."""

from __future__ import annotations

import csv
import json

import h5py
import pytest

from pathpt_engine.cli import main
from pathpt_engine.prompts.classsets import load_classset


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    d = tmp_path_factory.mktemp("cli")
    bb = tiny_backbone(d / "keep")
    feats, labels = make_fake_cohort(d / "c", bb, load_classset("synthetic"), per_class=4, n_tiles=24, masks=True)
    return d, feats, labels


def _base(cohort, *extra):
    d, feats, _ = cohort
    return ["-q", *extra, "--features", str(feats), "--backbone", "keep", "--weights", str(d / "keep"),
            "--device", "cpu"]


def test_zeroshot_writes_predictions_and_tile_scores(cohort, tmp_path):
    assert main([*_base(cohort, "zeroshot"), "--classes", "synthetic", "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "predictions.csv").open()))
    assert len(rows) == 12 and {"slide_id", "predicted"} <= set(rows[0])
    # zero-shot's slide numbers are tile-vote shares, and the columns say so
    assert any(k.startswith("vote_share_") for k in rows[0]) and not any(k.startswith("p_") for k in rows[0])
    assert {r["slide_score"] for r in rows} <= {"tumour_tile_votes", "all_tile_votes"}
    assert all(int(r["n_voters"]) <= 24 for r in rows)
    with h5py.File(tmp_path / "tiles" / f"{rows[0]['slide_id']}.h5") as f:
        assert f["probs"].shape == (24, 4) and f["coords"].shape == (24, 2)
        assert list(f.attrs["class_names"])[0] == "normal"


def test_train_then_predict(cohort, tmp_path, capsys):
    d, feats, labels = cohort
    run = tmp_path / "run"
    rc = main([*_base(cohort, "train"), "--classes", "synthetic", "--labels", str(labels), "--shots", "2",
               "--recipe", "clean", "--epochs", "2", "--out", str(run)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "val_bacc" in summary and (run / "checkpoint.json").is_file()
    meta = json.loads((run / "checkpoint.json").read_text())
    assert meta["shots"] == 2 and len(meta["train_slides"]) == 6 and len(meta["val_slides"]) == 6
    out = tmp_path / "pred"
    assert main(["-q", "predict", "--run", str(run), "--features", str(feats), "--weights", str(d / "keep"),
                 "--device", "cpu", "--out", str(out)]) == 0
    assert len(list((out / "tiles").glob("*.h5"))) == 12


@pytest.mark.slow
def test_evaluate_protocol_resumes(cohort, tmp_path):
    _, _, labels = cohort
    args = [*_base(cohort, "evaluate"), "--classes", "synthetic", "--labels", str(labels), "--shots", "1", "2",
            "--folds", "2", "--methods", "zeroshot,ensemble,abmil,pathpt-paper", "--epochs", "2",
            "--mil-epochs", "2", "--masks", str(cohort[0] / "c" / "masks"), "--out", str(tmp_path)]
    assert main(args) == 0
    files = sorted(tmp_path.glob("runs/*/*/fold*.json"))
    assert len(files) == 4 * 2 * 2
    table = json.loads((tmp_path / "results.json").read_text())
    assert {(r["method"], r["shots"]) for r in table["rows"]} == {
        (m, k) for m in ("zeroshot", "ensemble", "abmil", "pathpt-paper") for k in (1, 2)}
    assert all(r["folds"] == 2 for r in table["rows"])
    rec = json.loads(files[0].read_text())
    assert {"bacc", "weighted_f1", "auc", "confusion", "predictions", "grounding"} <= set(rec)
    assert rec["grounding"]["n_tiles"] == 24 * len(rec["predictions"])
    for f in files:  # the slide numbers are named for what they are
        r = json.loads(f.read_text())
        vote = r["method"] != "abmil"
        assert r["slide_score"] == ("tile_votes" if vote else "probability")
        assert all(("vote_shares" in p) == vote and ("probs" in p) != vote for p in r["predictions"])
    assert "tile_auroc" in table["metrics"]
    assert "± " in (tmp_path / "results.md").read_text()
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    assert main(args) == 0  # second run skips every finished fold
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items())


def test_user_errors_exit_2(cohort, tmp_path, capsys):
    _, _, labels = cohort
    assert main([*_base(cohort, "zeroshot"), "--classes", str(tmp_path / "missing.json"),
                 "--out", str(tmp_path)]) == 2
    assert "missing.json" in capsys.readouterr().err
    bad = tmp_path / "labels.csv"
    bad.write_text("slide_id,label\nslide_0_00,Adenoma of nowhere\n")
    assert main([*_base(cohort, "train"), "--classes", "synthetic", "--labels", str(bad),
                 "--out", str(tmp_path / "r")]) == 2
    assert "labels.csv:2" in capsys.readouterr().err
    assert main([*_base(cohort, "evaluate"), "--classes", "synthetic", "--out", str(tmp_path)]) == 2


def test_evaluate_with_reference_split_files(cohort, tmp_path):
    """The Quick-Start path: dataset_division.json + multifold fold CSVs (0-based float labels, ragged columns)."""
    cs = load_classset("synthetic")
    names = cs.subtype_names
    ids = {c: [f"slide_{c}_{j:02d}" for j in range(4)] for c in range(3)}
    division = {"SYN": {"train_IDs": {str(c + 1): ids[c][:3] for c in range(3)},
                        "test_IDs": {str(c + 1): ids[c][3:] for c in range(3)},
                        "name2label": {names[2]: 3, names[0]: 1, names[1]: 2}}}
    (tmp_path / "multifold").mkdir()
    (tmp_path / "multifold" / "dataset_division.json").write_text(json.dumps(division))
    fold_dir = tmp_path / "multifold" / "dataset_csv_1shot" / "SYNTH" / "SYN"
    fold_dir.mkdir(parents=True)
    for i in range(2):
        rows = ["train,train_label,val,val_label,test,test_label"]
        rows += [f"{ids[c][i]},{float(c)},{ids[c][3]},{c},{ids[c][3]},{c}" for c in range(3)]
        (fold_dir / f"fold{i}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "res"
    assert main([*_base(cohort, "evaluate"), "--classes", "synthetic", "--splits", str(tmp_path / "multifold"),
                 "--dataset", "SYN", "--shots", "1", "--folds", "2", "--methods", "zeroshot,ensemble",
                 "--out", str(out)]) == 0
    rec = json.loads((out / "runs" / "ensemble" / "1shot" / "fold1.json").read_text())
    assert rec["n_train"] == 3 and rec["n_test"] == 3
    assert {p["slide_id"]: p["label"] for p in rec["predictions"]} == {ids[c][3]: names[c] for c in range(3)}


@pytest.mark.slow
def test_evaluate_runs_every_baseline_and_pathpt_in_one_command(cohort, tmp_path):
    """Issue 8: zero-shot, ABMIL, CLAM, TransMIL, DGRMIL (paper and clean) and PathPT in one `pathpt evaluate`."""
    _, _, labels = cohort
    methods = ("zeroshot", "abmil", "clam", "transmil", "dgrmil", "dgrmil-clean", "pathpt-paper", "pathpt-clean")
    args = [*_base(cohort, "evaluate"), "--classes", "synthetic", "--labels", str(labels), "--shots", "2",
            "--folds", "1", "--methods", ",".join(methods), "--epochs", "1", "--mil-epochs", "2",
            "--out", str(tmp_path)]
    assert main(args) == 0
    table = json.loads((tmp_path / "results.json").read_text())
    assert [r["method"] for r in table["rows"]] == list(methods)
    for row in table["rows"]:
        rec = json.loads(next(tmp_path.glob(f"runs/{row['method']}/*/fold0.json")).read_text())
        assert len(rec["predictions"]) > 0 and 0.0 <= rec["bacc"] <= 1.0
