"""`pathpt info` and `pathpt tile`: output, files, and one-line errors without tracebacks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slide_fixtures import blob_image, make_slide, write_plain_tiff

from pathpt_engine.cli import main
from pathpt_engine.features import read_coords


@pytest.fixture(scope="module")
def svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = blob_image(1600, 1200, seed=4)
    return make_slide(tmp_path_factory.mktemp("cli") / "case 1.svs", 1600, 1200, fmt="svs", seed=4,
                      label=img[:100, :150].copy())


def test_info_text_and_json(svs: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(svs)]) == 0
    out = capsys.readouterr().out
    assert "aperio" in out and "1600 x 1200" in out and "0.2500 x 0.2500" in out and "label" in out
    assert main(["info", str(svs), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "aperio" and info["dimensions"] == [1600, 1200] and info["mpp"] == [0.25, 0.25]
    assert info["objective_power"] == 40.0 and "label" in info["associated_images"]
    assert info["levels"][1] == {"dimensions": [800, 600], "downsample": 2.0, "native_tile": [256, 256]}


def test_tile_writes_coords_and_summary(svs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = make_slide(tmp_path / "blank.tif", 800, 800, blobs=0)
    out = tmp_path / "out"
    rc = main(["-q", "tile", str(svs), str(blank), "--out", str(out), "--tile-size", "128", "--min-tissue", "0.6",
               "--thumb-size", "512"])
    assert rc == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "tiling.json").read_text())
    slides = {s["slide_name"]: s for s in summary["slides"]}
    assert slides["case 1"]["n_tiles"] > 0 and slides["blank"]["n_tiles"] == 0
    assert "blank: 0 tiles" in text and "no tissue found" in text
    assert f"{summary['total_tiles']} tiles from 2 slides" in text
    coords = read_coords(out / "case 1.h5")
    assert len(coords.coords) == slides["case 1"]["n_tiles"]
    assert coords.coords_attrs["patch_size"] == 128 and coords.coords_attrs["patch_level"] == 1
    assert summary["params"]["grid"] == {"assume_mpp": None, "min_tissue": 0.6, "target_mpp": 0.5, "tile_size": 128}


def _one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str], needle: str, rc: int = 2) -> None:
    assert main(argv) == rc
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pathpt: error: ") and needle in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "fake.svs").write_text("hello")
    (tmp_path / "empty.ndpi").write_bytes(b"")
    _one_line_error(capsys, ["info", str(tmp_path / "missing.svs")], "missing.svs: no such file")
    _one_line_error(capsys, ["info", str(tmp_path / "fake.svs")], "fake.svs: not a slide format")
    # a slide that fails in `tile` is reported after the others are done: exit status 1
    _one_line_error(capsys, ["-q", "tile", str(tmp_path / "empty.ndpi"), "--out", str(tmp_path)], "empty file", 1)
    _one_line_error(capsys, ["-q", "tile", str(tmp_path), "--out", str(tmp_path)], "is a directory", 1)
    _one_line_error(capsys, ["-q", "tile", str(tmp_path / "x.svs"), "--out", str(tmp_path), "--mpp", "0"],
                    "target_mpp must be > 0")
    nores = write_plain_tiff(tmp_path / "nores.tif", blob_image(500, 400))
    _one_line_error(capsys, ["-q", "tile", str(nores), "--out", str(tmp_path)], "nores.tif: the slide does not state",
                    1)
    assert main(["-q", "tile", str(nores), "--out", str(tmp_path), "--assume-mpp", "0.25", "--min-tissue", "0"]) == 0
    assert "0.2500 µm/px assumed" in capsys.readouterr().out


@pytest.mark.slow  # a fresh interpreter imports every command module (several seconds on a busy machine)
def test_subprocess_error_has_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00" + b"\x07" * 500)
    proc = subprocess.run([sys.executable, "-m", "pathpt_engine.cli", "info", str(bad)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"pathpt: error: {bad}: a TIFF file OpenSlide cannot open as a "
                                                 "slide (not tiled, truncated or corrupt)"]


def test_skip_errors_goes_on_and_exits_1(svs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.svs"
    bad.write_text("not a slide")
    rc = main(["-q", "tile", str(bad), str(svs), "--out", str(tmp_path / "o"), "--skip-errors", "--thumb-size", "256"])
    assert rc == 1
    captured = capsys.readouterr()
    assert "case 1:" in captured.out
    assert [line for line in captured.err.splitlines() if line.startswith("pathpt: error:")] == \
        [f"pathpt: error: {bad}: not a slide format OpenSlide can open (not a recognised whole-slide image)"]
    summary = json.loads((tmp_path / "o" / "tiling.json").read_text())
    assert [s["slide_name"] for s in summary["slides"]] == ["case 1"]
    assert summary["failed"][0]["path"] == str(bad)


def test_all_slides_failing_still_writes_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["-q", "tile", str(tmp_path / "gone.svs"), "--out", str(tmp_path / "new" / "dir"), "--skip-errors"])
    assert rc == 1
    assert "gone.svs: no such file" in capsys.readouterr().err
    summary = json.loads((tmp_path / "new" / "dir" / "tiling.json").read_text())
    assert summary["slides"] == [] and summary["failed"][0]["error"].endswith("gone.svs: no such file")


def test_tile_goes_on_past_a_bad_slide_without_a_flag_and_retries_only_it(
        svs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from openslide_fixtures import openslide_fixture

    bad = tmp_path / "bad.svs"
    shutil.copy(openslide_fixture("unopenable.tiff"), bad)
    out = tmp_path / "o"
    assert main(["-q", "tile", str(bad), str(svs), "--out", str(out), "--thumb-size", "256"]) == 1
    captured = capsys.readouterr()
    assert "case 1:" in captured.out  # the slide after the bad one was tiled
    assert f"1 of 2 slides failed (listed in {out / 'tiling.json'})" in captured.err
    summary = json.loads((out / "tiling.json").read_text())
    assert [f["path"] for f in summary["failed"]] == [str(bad)]
    assert main(["-q", "tile", str(bad), str(svs), "--out", str(out), "--thumb-size", "256"]) == 1
    assert "(cached)" in capsys.readouterr().out  # the good slide is not redone
    shutil.copy(svs, bad)  # the user replaces the bad file: the re-run now succeeds
    assert main(["-q", "tile", str(bad), str(svs), "--out", str(out), "--thumb-size", "256"]) == 0


def test_implausible_pixel_size_is_refused_and_overridable(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from openslide_fixtures import openslide_fixture

    boxes = openslide_fixture("boxes.tiff")  # states 352.78 µm/px (72 dpi)
    _one_line_error(capsys, ["-q", "tile", str(boxes), "--out", str(tmp_path)],
                    "boxes.tiff: pixel size 352.8 µm/px is implausible (outside 0.05-20 µm/px", 1)
    assert not (tmp_path / "boxes.h5").exists()
    assert main(["-q", "tile", str(boxes), "--out", str(tmp_path), "--assume-mpp", "0.5", "--min-tissue", "0"]) == 0
    assert "boxes: 1 tiles at level 0 (224px -> 224px, 0.5000 µm/px assumed)" in capsys.readouterr().out
    assert main(["info", str(boxes)]) == 0
    assert "unknown (the file states 352.8 µm/px, outside the plausible 0.05-20" in capsys.readouterr().out


def test_upsampling_over_2x_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    coarse = write_plain_tiff(tmp_path / "coarse.tif", blob_image(600, 500), resolution=(1e4 / 2.0, 1e4 / 2.0))
    assert main(["-q", "tile", str(coarse), "--out", str(tmp_path), "--min-tissue", "0"]) == 0
    assert "tiles upsampled 4.0x (56px -> 224px)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "tiling.json").read_text())
    assert "upsampled 4.0x" in summary["slides"][0]["message"]
    assert main(["-q", "tile", str(coarse), "--out", str(tmp_path), "--min-tissue", "0"]) == 0  # cached
    assert "tiles upsampled 4.0x" in capsys.readouterr().out
