"""One bad slide never stops `pathpt extract`: the rest are extracted, failures go to the ledger with the reason,
the exit status is 1 after the others are done, and a re-run retries only what failed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from openslide_fixtures import openslide_fixture

from pathpt_engine.cli import main
from pathpt_engine.features.extract import ExtractOptions, extract_slides, feature_path
from pathpt_engine.features.ledger import latest, ledger_path, read_ledger
from pathpt_engine.jobs import collect
from pathpt_engine.synth.writer import write_slide
from pathpt_engine.testing.backbones import make_tiny_keep_folder

torch.set_num_threads(1)


def _slide(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    img = np.full((700, 900, 3), 250, np.uint8)
    img[50:-50, 50:-50] = np.clip(np.array([200, 120, 170]) + rng.integers(-40, 40, (600, 800, 3)), 0, 255)
    return write_slide(path, img.astype(np.uint8), mpp=0.25, fmt="tiff")


@pytest.fixture
def env(tmp_path: Path) -> dict:
    bad_read = tmp_path / "a_unreadable.svs"
    shutil.copy(openslide_fixture("unreadable.svs"), bad_read)
    bad_open = tmp_path / "c_unopenable.tiff"
    shutil.copy(openslide_fixture("unopenable.tiff"), bad_open)
    return {"keep": make_tiny_keep_folder(tmp_path / "keep"), "good": _slide(tmp_path / "b_good.tiff", 0),
            "bad_read": bad_read, "bad_open": bad_open, "out": tmp_path / "out"}


def _args(env: dict, *slides: Path) -> list[str]:
    return ["-q", "extract", *map(str, slides), "--backbone", "keep", "--weights", str(env["keep"]), "--out",
            str(env["out"]), "--device", "cpu", "--batch-size", "8", "--workers", "1"]


def test_job_goes_on_and_records_failures(env: dict) -> None:
    opts = ExtractOptions(backbone="keep", weights=env["keep"], device="cpu", batch_size=8, workers=1)
    summary, _ = collect(extract_slides([env["bad_read"], env["good"], env["bad_open"]], env["out"], opts))
    assert [s.slide_name for s in summary.slides] == ["b_good"]
    assert [p for p, _ in summary.failed] == [str(env["bad_read"]), str(env["bad_open"])]
    assert "a_unreadable.svs: cannot decode" in summary.failed[0][1]
    assert feature_path(env["out"], "keep", "b_good").is_file()
    state = latest(read_ledger(ledger_path(env["out"])))
    assert {k[1]: e.status for k, e in state.items()} == {"a_unreadable": "failed", "b_good": "done",
                                                           "c_unopenable": "failed"}
    assert "c_unopenable.tiff" in state[("keep", "c_unopenable")].reason


def test_cli_exit_1_after_the_others_and_rerun_retries_only_failures(env: dict,
                                                                     capsys: pytest.CaptureFixture) -> None:
    slides = (env["bad_read"], env["good"], env["bad_open"])
    assert main(_args(env, *slides)) == 1
    captured = capsys.readouterr()
    assert "b_good: " in captured.out and "tiles/s" in captured.out
    assert f"2 of 3 slides failed (recorded in {ledger_path(env['out'])})" in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("pathpt: error:")]
    assert len(errors) == 2 and "a_unreadable.svs" in errors[0] and "c_unopenable.tiff" in errors[1]

    assert main(_args(env, *slides)) == 1  # re-run: the good slide is up to date, the bad ones are tried again
    assert "b_good: skipped (up to date)" in capsys.readouterr().out
    runs = [json.loads(line) for line in ledger_path(env["out"]).read_text().splitlines()]
    assert [(r["slide"], r["status"]) for r in runs[3:]] == [("a_unreadable", "failed"), ("b_good", "skipped"),
                                                             ("c_unopenable", "failed")]
    _slide(env["bad_read"].with_suffix(".tiff"), 1)
    env["bad_read"].unlink()
    assert main(_args(env, env["bad_read"].with_suffix(".tiff"), env["good"])) == 0


def test_a_damaged_tile_is_reported_with_its_slide_and_tile(tmp_path: Path) -> None:
    """A level-0 tile with damaged JPEG data (the overview levels are fine, so tissue detection works): the
    extraction of that slide fails naming the slide and the tile; no features are written from garbage."""
    import tifffile
    from slide_fixtures import blob_image, write_rgb_jpeg_svs

    slide = write_rgb_jpeg_svs(tmp_path / "damaged.svs", blob_image(2048, 1536, seed=2), mpp=0.25, tile=256)
    with tifffile.TiffFile(slide) as tf:
        page = tf.pages[0]
        offset, count = page.dataoffsets[3 * 8 + 3], page.databytecounts[3 * 8 + 3]  # col 3, row 3: tissue
    with open(slide, "r+b") as fh:  # an EOI in the middle of the scan: OpenSlide refuses it too
        fh.seek(offset + count // 2)
        fh.write(b"\xff\xd9")
    keep = make_tiny_keep_folder(tmp_path / "keep")
    opts = ExtractOptions(backbone="keep", weights=keep, device="cpu", batch_size=8, workers=1, min_tissue=0.0)
    summary, _ = collect(extract_slides([slide], tmp_path / "out", opts))
    assert not summary.slides and len(summary.failed) == 1
    assert "damaged.svs: cannot decode level 0 tile (col 3, row 3)" in summary.failed[0][1]
    assert not feature_path(tmp_path / "out", "keep", "damaged").exists()
