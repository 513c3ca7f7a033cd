"""Issue 18: bad inputs to `pathpt zeroshot/train/predict/evaluate` get one line (exit 2) or a clear report, never
a traceback or a confident answer from nothing. Every bad input is made here, by the test."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from pathpt_engine.cli import main
from pathpt_engine.prompts.classsets import load_classset


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    d = tmp_path_factory.mktemp("bad")
    bb = tiny_backbone(d / "keep")
    feats, labels = make_fake_cohort(d / "c", bb, load_classset("synthetic"), per_class=4, n_tiles=16)
    return d, feats, labels


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    """One trained run (1 epoch), copied by the tests that damage it."""
    d, _, labels = cohort
    out = tmp_path_factory.mktemp("run") / "run"
    assert main([*_base(cohort, "train"), "--classes", "synthetic", "--labels", str(labels), "--epochs", "1",
                 "--out", str(out)]) == 0
    return out


def _base(cohort, *extra):
    d, feats, _ = cohort
    return ["-q", *extra, "--features", str(feats), "--backbone", "keep", "--weights", str(d / "keep"),
            "--device", "cpu"]


def _train(cohort, out, *extra, labels=None):
    return main([*_base(cohort, "train"), "--classes", "synthetic", "--labels", str(labels or cohort[2]),
                 "--epochs", "1", "--out", str(out), *extra])


def _predict(cohort, run_dir, out, features=None):
    d, feats, _ = cohort
    return main(["-q", "predict", "--run", str(run_dir), "--features", str(features or feats), "--weights",
                 str(d / "keep"), "--device", "cpu", "--out", str(out)])


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("pathpt")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], err
    return lines[0]


def _copy_run(run, tmp_path):
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


def _reseal(run_dir: Path, blob: bytes) -> None:
    """Write new weights and a checksum that vouches for them (a tampered but self-consistent run)."""
    (run_dir / "model.safetensors").write_bytes(blob)
    meta = json.loads((run_dir / "checkpoint.json").read_text())
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    (run_dir / "checkpoint.json").write_text(json.dumps(meta))


# ---- §2: never overwrite what the user didn't ask to ----------------------------------------------------------
def test_train_refuses_an_existing_run_unless_overwrite(cohort, run, tmp_path, capsys):
    dst = _copy_run(run, tmp_path)
    before = (dst / "model.safetensors").read_bytes()
    assert _train(cohort, dst) == 2
    _one_line_error(capsys, str(dst), "--overwrite")
    assert (dst / "model.safetensors").read_bytes() == before
    assert _train(cohort, dst, "--overwrite") == 0
    capsys.readouterr()


def test_train_out_is_a_file_fails_before_training(cohort, tmp_path, capsys, monkeypatch):
    import pathpt_engine.pathpt.trainer as trainer

    monkeypatch.setattr(trainer, "train_pathpt", lambda *a, **k: pytest.fail("trained before checking --out"))
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    assert _train(cohort, target) == 2
    _one_line_error(capsys, "notes.txt", "existing file")
    assert target.read_text() == "mine"


# ---- §3: never a confident answer from nothing ----------------------------------------------------------------
def test_predict_refuses_a_checkpoint_with_nan_weights(cohort, run, tmp_path, capsys):
    from safetensors.torch import load, save

    dst = _copy_run(run, tmp_path)
    state = load((dst / "model.safetensors").read_bytes())
    state = {k: v * float("nan") for k, v in state.items()}
    _reseal(dst, save(state))
    assert _predict(cohort, dst, tmp_path / "pred") == 2
    _one_line_error(capsys, "model.safetensors", "NaN")
    assert not (tmp_path / "pred" / "predictions.csv").exists()


@pytest.fixture
def with_empty_slide(cohort, tmp_path):
    """The cohort's features plus `empty_slide.h5`: a slide where tiling found no tissue (0 tiles)."""
    from pathpt_engine.features.store import write_features

    feats = tmp_path / "features"
    shutil.copytree(cohort[1], feats)
    write_features(feats / "empty_slide.h5", np.zeros((0, 2), np.int64), np.zeros((0, 32), np.float32))
    return feats


def test_predict_and_zeroshot_give_no_call_for_a_slide_without_tiles(cohort, run, with_empty_slide, tmp_path,
                                                                       capsys):
    d, _, _ = cohort
    assert _predict(cohort, run, tmp_path / "pred", features=with_empty_slide) == 0
    zs = tmp_path / "zs"
    assert main(["-q", "zeroshot", "--features", str(with_empty_slide), "--classes", "synthetic", "--backbone",
                 "keep", "--weights", str(d / "keep"), "--device", "cpu", "--out", str(zs)]) == 0
    out = capsys.readouterr().out
    assert out.count("empty_slide\tno tissue tiles (no call)") == 2
    for folder in (tmp_path / "pred", zs):
        rows = list(csv.DictReader((folder / "predictions.csv").open()))
        assert len(rows) == 12 and "empty_slide" not in {r["slide_id"] for r in rows}
        assert not (folder / "tiles" / "empty_slide.h5").exists()


def test_train_on_a_slide_without_tiles_is_a_clear_error(cohort, with_empty_slide, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text(cohort[2].read_text() + f"empty_slide,{load_classset('synthetic').subtype_names[0]}\n")
    d = cohort[0]
    rc = main(["-q", "train", "--features", str(with_empty_slide), "--backbone", "keep", "--weights", str(d / "keep"),
               "--device", "cpu", "--classes", "synthetic", "--labels", str(labels), "--epochs", "1",
               "--out", str(tmp_path / "r")])
    assert rc == 2
    _one_line_error(capsys, "no tissue tiles", "empty_slide")
    assert not (tmp_path / "r").exists()


def test_conflicting_labels_are_refused_naming_the_rows(cohort, tmp_path, capsys):
    names = load_classset("synthetic").subtype_names
    labels = tmp_path / "labels.csv"
    labels.write_text(cohort[2].read_text() + f"slide_0_00,{names[1]}\n")
    assert _train(cohort, tmp_path / "r", labels=labels) == 2
    n_lines = len(cohort[2].read_text().splitlines())
    _one_line_error(capsys, "slide_0_00", "line 2", f"line {n_lines + 1}")


def test_shots_larger_than_available_is_said(cohort, tmp_path, caplog):
    assert _train(cohort, tmp_path / "r", "--shots", "100") == 0
    assert "only 4 labelled slide(s); using all 4" in caplog.text


def test_seed_seeds_and_does_not_size_the_folds(cohort, tmp_path, monkeypatch):
    import pathpt_engine.pathpt.splits as splits
    from pathpt_engine.pathpt.data import read_labels_csv

    real = splits.draw_folds
    sizes = []

    def spy(pool, test, shots, folds, *a, **k):
        sizes.append(folds)
        return real(pool, test, shots, folds, *a, **k)

    monkeypatch.setattr(splits, "draw_folds", spy)
    assert _train(cohort, tmp_path / "r", "--shots", "2", "--seed", "5000000") == 0
    assert sizes == [1]
    meta = json.loads((tmp_path / "r" / "checkpoint.json").read_text())
    # fold i is the same draw whether drawn alone or as part of a longer list
    labels = read_labels_csv(cohort[2], load_classset("synthetic"))
    assert real(labels, {}, 2, 1, first=7)[0].train == real(labels, {}, 2, 8)[7].train
    assert sorted(meta["train_slides"]) == sorted(real(labels, {}, 2, 1, first=5000000)[0].train)


@pytest.mark.parametrize(("args", "needle"), [
    (["--folds", "0"], "--folds"),
    (["--shots", "-2"], "--shots"),
    (["--test-fraction", "1.5"], "--test-fraction"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "inf"], "--lr"),
])
def test_impossible_settings_are_refused_up_front(cohort, tmp_path, capsys, args, needle):
    with pytest.raises(SystemExit) as exc:
        main([*_base(cohort, "evaluate"), "--classes", "synthetic", "--labels", str(cohort[2]), "--methods",
              "zeroshot", "--out", str(tmp_path), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "results.md").exists()


def test_evaluate_protocol_refuses_no_folds(cohort, tmp_path):
    from pathpt_engine.errors import ConfigError
    from pathpt_engine.evaluate import evaluate_protocol

    with pytest.raises(ConfigError, match="no folds"):
        next(evaluate_protocol(None, load_classset("synthetic"), {}, {1: []}, tmp_path))


# ---- §4: one line for every user error -----------------------------------------------------------------------
def test_features_of_the_wrong_dimension(cohort, tmp_path, capsys):
    from pathpt_engine.features.store import write_features

    feats = tmp_path / "f"
    feats.mkdir()
    coords = np.array([[0, 0], [224, 0]], np.int64)
    write_features(feats / "wide.h5", coords, np.ones((2, 48), np.float32))
    assert main(["-q", "zeroshot", "--features", str(feats), "--classes", "synthetic", "--backbone", "keep",
                 "--weights", str(cohort[0] / "keep"), "--device", "cpu", "--out", str(tmp_path / "o")]) == 2
    _one_line_error(capsys, "wide.h5", "48-d", "32-d")


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16"])
def test_labels_csv_in_latin1_or_utf16(cohort, tmp_path, capsys, encoding):
    labels = tmp_path / "labels.csv"
    text = cohort[2].read_text(encoding="utf-8")
    extra = f"slide_é,{load_classset('synthetic').subtype_names[0]}\r\n"
    labels.write_bytes((text.replace("\n", "\r\n") + extra).encode(encoding))
    assert _train(cohort, tmp_path / "r", labels=labels) == 2  # read correctly: slide_é has no feature file
    _one_line_error(capsys, "slide_é.h5")


def test_nul_in_a_class_name_and_null_or_object_entries(tmp_path, capsys, cohort):
    good = load_classset("synthetic").to_dict()
    cases = {
        "nul": lambda d: d["classes"][1].update(name="bad\u0000name"),
        "null": lambda d: d["classes"][2].update(name=None),
        "template": lambda d: d["templates"].append({"text": "a CLASSNAME"}),
        "synonym": lambda d: d["classes"][1]["synonyms"].append(None),
    }
    for key, damage in cases.items():
        data = json.loads(json.dumps(good))
        damage(data)
        path = tmp_path / f"{key}.json"
        path.write_text(json.dumps(data))
        assert main([*_base(cohort, "zeroshot"), "--classes", str(path), "--out", str(tmp_path / "o")]) == 2, key
        _one_line_error(capsys, f"{key}.json", "invalid class set")


def test_corrupt_safetensors_and_non_utf8_metadata(cohort, run, tmp_path, capsys):
    dst = _copy_run(run, tmp_path)
    _reseal(dst, b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    assert _predict(cohort, dst, tmp_path / "p") == 2
    _one_line_error(capsys, "model.safetensors", "not a readable safetensors file")
    shutil.rmtree(dst)
    dst = _copy_run(run, tmp_path)
    (dst / "checkpoint.json").write_bytes(b'{"format": "\xff\xfe"}')
    assert _predict(cohort, dst, tmp_path / "p") == 2
    _one_line_error(capsys, "checkpoint.json", "unreadable")


def test_weights_file_outside_the_run_folder_is_never_read(run, tmp_path, monkeypatch):
    from pathpt_engine.errors import ConfigError
    from pathpt_engine.pathpt.checkpoint import load_checkpoint

    dst = _copy_run(run, tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"private")
    meta = json.loads((dst / "checkpoint.json").read_text())
    read = []
    real = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda self: read.append(self.name) or real(self))
    for name in ("../secret.bin", str(secret), "sub/../../secret.bin"):
        meta["weights_file"] = name
        (dst / "checkpoint.json").write_text(json.dumps(meta))
        with pytest.raises(ConfigError, match="not a file inside the run folder"):
            load_checkpoint(dst)
    assert "secret.bin" not in read


def test_a_bug_is_one_line_without_debug_and_a_traceback_with_it(cohort, tmp_path, capsys, monkeypatch):
    import pathpt_engine.prompts.classsets as classsets

    def boom(*_a, **_k):
        raise KeyError("internal slip")

    monkeypatch.setattr(classsets, "load_classset", boom)
    args = [*_base(cohort, "zeroshot"), "--classes", "synthetic", "--out", str(tmp_path)]
    assert main(args) == 1
    line = _one_line_error(capsys, "internal error", "KeyError", "--debug")
    assert line.startswith("pathpt: internal error")
    with pytest.raises(KeyError):
        main(["--debug", *args])


def test_h5_is_untouched_by_a_nan_refusal(tmp_path):
    """Scores with NaN never reach a scores h5 either (the predict writer)."""
    from pathpt_engine.export import ExportError, write_scores_h5
    from pathpt_engine.results import TileScores

    scores = TileScores("s", np.zeros((2, 2), np.int64), np.array([[0.5, 0.5], [np.nan, 0.1]], np.float32), 224,
                        ("a", "b"))
    with pytest.raises(ExportError, match="1 of 2 tiles"):
        write_scores_h5(tmp_path / "s.h5", scores)
    assert not (tmp_path / "s.h5").exists()
    assert h5py is not None
