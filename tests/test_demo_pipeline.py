"""`pathpt demo` runs the whole pipeline end to end (tiny random KEEP folder instead of the demo model)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import h5py
import pytest

from pathpt_engine.cli import main
from pathpt_engine.testing.backbones import make_tiny_keep_folder


@pytest.mark.slow
def test_demo_pipeline_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = make_tiny_keep_folder(tmp_path / "keep")
    out = tmp_path / "out"
    args = ["-q", "demo", "--out", str(out), "--backbone", "keep", "--weights", str(weights),
            "--slides-per-class", "3", "--shots", "1", "--folds", "1", "--epochs", "2", "--size", "2048x1536"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| pathpt-paper | 1 | 1 |" in printed and "| zeroshot | 1 | 1 |" in printed
    summary = json.loads((out / "summary.json").read_text())
    with open(summary["predictions"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == summary["n_test"] > 0
    assert {"slide_id", "predicted"} <= set(rows[0])
    for row in rows:
        sid = row["slide_id"]
        assert (out / "exports" / f"{sid}_overlay.png").stat().st_size > 0
        doc = json.loads((out / "exports" / f"{sid}.geojson").read_text())
        assert doc["type"] == "FeatureCollection" and doc["features"]
        with h5py.File(out / "predictions" / "tiles" / f"{sid}.h5") as f:
            assert f["probs"].shape[0] == f["coords"].shape[0]
    assert (out / "run" / "checkpoint.json").exists()
    # A second run reuses the cohort, features and evaluation folds.
    assert main(args) == 0


@pytest.mark.parametrize("size", ["big", "4096x", "+4096x3072"])
def test_demo_size_is_read_as_synth_reads_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], size: str) -> None:
    """`pathpt demo --size` and `pathpt synth --size` accept and refuse the same text, with the same message."""
    for cmd in ("demo", "synth"):
        assert main(["-q", cmd, "--out", str(tmp_path / cmd), "--size", size]) == 2
        err = capsys.readouterr().err
        assert f"--size {size!r}: expected WIDTHxHEIGHT in pixels" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "demo").exists()
