"""bench/fewshot.py's own plumbing on a fake feature cohort: `--parallel` (one `pathpt evaluate` process per
(method, shots) sharing one --out), the README's compact table, and `--plot-only` rebuilding the tables from the
per-unit files without training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _fewshot(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    return subprocess.run([sys.executable, str(ROOT / "bench" / "fewshot.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=540, check=False)


def test_parallel_units_then_plot_only(tmp_path):
    work, out = tmp_path / "work", tmp_path / "res"
    common = ["--work", str(work), "--fake", "--slides-per-class", "4", "--fake-tiles", "24", "--shots", "1", "2",
              "--folds", "1", "--methods", "zeroshot,abmil", "--mil-epochs", "2", "--out", str(out)]
    run = _fewshot(*common, "--parallel", "2")
    assert run.returncode == 0, run.stderr[-2000:]
    # four processes, one per (method, shots), each wrote its unit
    units = sorted(str(p.relative_to(out / "runs")) for p in (out / "runs").rglob("fold*.json"))
    assert units == ["abmil/1shot/fold0.json", "abmil/2shot/fold0.json", "zeroshot/1shot/fold0.json",
                     "zeroshot/2shot/fold0.json"]
    assert run.stderr.count("finished with status 0") == 4
    table = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {(r["method"], r["shots"], r["folds"]) for r in table["rows"]} == {
        ("zeroshot", 1, 1), ("zeroshot", 2, 1), ("abmil", 1, 1), ("abmil", 2, 1)}
    assert table["metrics"] == ["bacc", "weighted_f1", "auc", "tile_auroc", "slide_tile_auroc", "tile_dice"]
    compact = (out / "results_compact.md").read_text(encoding="utf-8").splitlines()
    assert compact[0].startswith("| method | shots | folds | BACC |") and "per-slide tile AUROC" in compact[0]
    rows = {line.split("|")[1].strip(): line for line in compact[2:]}
    assert set(rows) == {"zero-shot", "ABMIL"}
    cells = [c.strip() for c in rows["ABMIL"].split("|")[2:-1]]
    assert cells[:2] == ["1 / 2", "1 / 1"]
    abmil = {r["shots"]: r for r in table["rows"] if r["method"] == "abmil"}
    assert cells[2] == f"{abmil[1]['bacc']['mean']:.3f} / {abmil[2]['bacc']['mean']:.3f}"

    # --plot-only: no training, the same numbers from the unit files; a unit removed drops its row
    (out / "results.json").unlink()
    (out / "runs" / "abmil" / "2shot" / "fold0.json").unlink()
    again = _fewshot(*common, "--plot-only")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "pathpt evaluate" not in again.stderr and not (out / "runs" / "abmil" / "2shot" / "fold0.json").exists()
    rebuilt = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {(r["method"], r["shots"]) for r in rebuilt["rows"] if r["folds"]} == {
        ("zeroshot", 1), ("zeroshot", 2), ("abmil", 1)}
    before = {(r["method"], r["shots"]): r["bacc"]["mean"] for r in table["rows"]}
    assert all(r["bacc"]["mean"] == before[(r["method"], r["shots"])] for r in rebuilt["rows"] if r["folds"])
    assert (out / "fewshot.png").stat().st_size > 10_000
    assert "1 / 2" not in (out / "results_compact.md").read_text(encoding="utf-8").split("ABMIL")[1].splitlines()[0]
