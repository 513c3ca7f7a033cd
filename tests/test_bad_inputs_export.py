"""Issue 18: `pathpt export` never writes outside --out for a slide id taken from the data, and never writes
NaN or infinite values; `pathpt extract` refuses two slides with the same id. Bad files are made by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.cli import main
from pathpt_engine.export import ExportError, write_geojson, write_predictions_csv, write_scores_h5
from pathpt_engine.results import SlidePrediction, TileScores

NAMES = ("Normal", "A", "B")


def _scores(sid: str, probs: np.ndarray | None = None) -> TileScores:
    coords = np.array([[0, 0], [128, 0], [0, 128]], np.int64)
    p = np.full((3, 3), 1 / 3, np.float32) if probs is None else probs
    return TileScores(sid, coords, p, 128, NAMES)


def _one_line(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in err, err


@pytest.mark.parametrize("fmt", ["h5", "geojson", "png"])
def test_slide_ids_from_a_scores_h5_cannot_escape_out(tmp_path, capsys, fmt):
    src = tmp_path / "in"
    evil = [str(tmp_path / "abs_evil"), "../h5_evil", "sub/../../h5_evil2", ".."]
    for i, sid in enumerate(evil):
        write_scores_h5(src / f"s{i}.h5", _scores(sid))
    write_scores_h5(src / "zz_ok.h5", _scores("ok"))
    out = tmp_path / "out" / "deep"
    for i in range(len(evil)):
        (src / "one").mkdir(exist_ok=True)
        (src / "one" / "x.h5").write_bytes((src / f"s{i}.h5").read_bytes())
        (src / "one" / "y.h5").write_bytes((src / "zz_ok.h5").read_bytes())
        assert main(["-q", "export", "--scores", str(src / "one"), "--format", fmt, "--out", str(out)]) == 2
        _one_line(capsys, "not a safe file name", repr(evil[i]))
    written = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert not any("evil" in w and not w.startswith("in/") for w in written), written
    assert not (tmp_path / "out" / f"h5_evil.{fmt}").exists() and not list(tmp_path.glob("abs_evil*"))


def test_slide_id_from_a_geojson_cannot_escape_out(tmp_path, capsys):
    gj = tmp_path / "in" / "x.geojson"
    write_geojson(gj, _scores("../../gj_evil"), SlidePrediction("../../gj_evil", "A", {"A": 0.6, "B": 0.4}, 3))
    out = tmp_path / "a" / "b"  # no suffix: a folder, files named from the data
    for fmt in ("h5", "geojson", "png"):
        assert main(["-q", "export", "--scores", str(gj), "--format", fmt, "--out", str(out)]) == 2
        _one_line(capsys, "gj_evil", "not a safe file name")
    assert not list(tmp_path.rglob("gj_evil*"))


def test_a_slide_id_never_searches_outside_the_slide_folder(tmp_path, capsys):
    write_scores_h5(tmp_path / "in" / "x.h5", _scores("../outside"))
    (tmp_path / "slides").mkdir()
    assert main(["-q", "export", "--scores", str(tmp_path / "in" / "x.h5"), "--slide", str(tmp_path / "slides"),
                 "--format", "png", "--out", str(tmp_path / "o.png")]) == 2
    _one_line(capsys, "not a safe file name")


def test_non_finite_scores_never_reach_an_export(tmp_path, capsys):
    probs = np.array([[0.2, 0.3, 0.5], [np.nan, 0.5, 0.5], [np.inf, 0, 0]], np.float32)
    bad = _scores("s", probs)
    for writer, name in ((write_geojson, "s.geojson"), (write_scores_h5, "s.h5")):
        with pytest.raises(ExportError, match="2 of 3 tiles"):
            writer(tmp_path / name, bad)
        assert not (tmp_path / name).exists()
    pred = SlidePrediction("s", "A", {"A": float("nan"), "B": 0.5}, 3)
    with pytest.raises(ExportError, match="NaN"):
        write_geojson(tmp_path / "p.geojson", _scores("s"), pred)
    with pytest.raises(ExportError, match="NaN"):
        write_predictions_csv(tmp_path / "p.csv", [pred])
    assert not list(tmp_path.iterdir())


def test_export_cli_refuses_a_scores_file_holding_nan(tmp_path, capsys):
    import h5py

    src = tmp_path / "s.h5"
    write_scores_h5(src, _scores("s"))
    with h5py.File(src, "a") as f:  # damage it the way a diverged model would have
        f["probs"][1, :] = np.nan
    for fmt in ("geojson", "h5", "png"):
        out = tmp_path / f"o.{fmt}"
        assert main(["-q", "export", "--scores", str(src), "--format", fmt, "--out", str(out)]) == 2
        _one_line(capsys, "NaN or infinite")
        assert not out.exists()


def test_extract_refuses_two_slides_with_the_same_id(tmp_path, capsys, monkeypatch):
    import pathpt_engine.features.extract as extract

    monkeypatch.setattr(extract, "extract_slides", lambda *a, **k: pytest.fail("extracted before the id check"))
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "x.tiff").write_bytes(b"not read")
    assert main(["-q", "extract", str(tmp_path / "a" / "x.tiff"), str(tmp_path / "b" / "x.tiff"),
                 "--out", str(tmp_path / "out")]) == 2
    _one_line(capsys, "x.tiff", "same slide id 'x'")
    assert not (tmp_path / "out").exists()


def test_export_ids_are_checked_as_plain_names(tmp_path: Path):
    from pathpt_engine.export.guards import safe_child

    assert safe_child(tmp_path, "slide 1.v2", ".h5") == tmp_path / "slide 1.v2.h5"
    for bad in ("", ".", "..", "a/b", "a\\b", "x\x00y", "x\ny", str(tmp_path / "abs")):
        with pytest.raises(ExportError):
            safe_child(tmp_path, bad, ".h5")
