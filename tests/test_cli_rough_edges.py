"""CLI rough edges (issue 14 §8): --methods help, --features takes `pathpt extract --out`, --debug anywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from pathpt_engine.cli import build_parser, main
from pathpt_engine.errors import SlideError


def test_methods_help_lists_every_method(capsys: pytest.CaptureFixture[str]) -> None:
    from pathpt_engine.cli.pathpt_cmd import EVAL_METHODS
    from pathpt_engine.evaluate import METHODS

    assert EVAL_METHODS == METHODS
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
    for m in METHODS:
        assert m in text


def _features(root: Path, backbone: str) -> Path:
    folder = root / backbone / "h5_files"
    folder.mkdir(parents=True)
    (folder / "s1.h5").write_bytes(b"")
    (root / "coords").mkdir(exist_ok=True)
    return folder


def test_features_accepts_the_extract_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    h5 = _features(out, "keep")
    parser = build_parser()
    base = ["zeroshot", "--classes", "ucs", "--backbone", "keep", "--out", str(tmp_path / "z"), "--features"]
    for given in (out, out / "keep", h5):
        assert parser.parse_args([*base, str(given)]).features == h5
    _features(out, "conch")
    with pytest.raises(SystemExit):
        parser.parse_args([*base, str(out)])
    assert "holds the features of several backbones" in capsys.readouterr().err
    assert parser.parse_args([*base, str(out / "conch")]).features == out / "conch" / "h5_files"


def test_debug_after_the_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = str(tmp_path / "missing.svs")
    assert main(["info", missing]) == 2
    assert "missing.svs: no such file" in capsys.readouterr().err
    with pytest.raises(SlideError):  # --debug shows the traceback wherever it is written
        main(["info", missing, "--debug"])
    with pytest.raises(SlideError):
        main(["--debug", "info", missing])
    assert build_parser().parse_args(["--debug", "info", missing]).debug is True
    assert build_parser().parse_args(["info", missing]).debug is False
