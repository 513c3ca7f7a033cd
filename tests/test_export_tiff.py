"""Aligned multiresolution TIFF overlay: OpenSlide opens it, levels and mpp are right, and a tile's value at
level-0 (x, y) of the slide is its score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from pathpt_engine.errors import PathPTError
from pathpt_engine.export import OverlayStyle
from pathpt_engine.export.png import tile_colors
from pathpt_engine.export.tiff_overlay import write_tiff_overlay
from pathpt_engine.results import TileScores
from tests.tempfiles import assert_no_temp

NAMES = ("Normal", "LUAD", "LUSC")
T = 64


def _scores(w: int, h: int, seed: int = 0) -> TileScores:
    rng = np.random.default_rng(seed)
    coords = np.array([[x, y] for y in range(32, h - T, T) for x in range(96, w - T, T)], np.int64)
    p = rng.dirichlet((1.0, 1.0, 1.0), size=len(coords)).astype(np.float32)
    return TileScores("s", coords, p, T, NAMES)


def _value_at(slide: openslide.OpenSlide, x: int, y: int, d: int) -> np.ndarray:
    """Overlay pixel holding level-0 slide pixel (x, y) (level 0 of the overlay is the slide at 1/d)."""
    return np.asarray(slide.read_region((x // d, y // d), 0, (1, 1)))[0, 0]


def test_gray_probability_overlay_opens_in_openslide_and_lines_up(tmp_path: Path) -> None:
    w, h, d = 9000, 5000, 4  # levels 2250 x 1250, 1125 x 625, 562 x 312
    scores = _scores(w, h)
    out = write_tiff_overlay(tmp_path / "s_likelihood_map.tif", scores, (w, h), 0.25, d, OverlayStyle("LUAD"))
    with openslide.OpenSlide(out) as s:
        assert s.properties["openslide.vendor"] == "generic-tiff"
        assert s.dimensions == (w // d, h // d)
        assert s.level_dimensions == ((2250, 1250), (1125, 625), (562, 312))
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25 * d)
        rng = np.random.default_rng(1)
        for i in rng.choice(len(scores.coords), 40, replace=False):
            x, y = (int(v) for v in scores.coords[i] + rng.integers(4, T - 4, 2))
            want = int(np.clip(round(float(scores.probs[i, 1]) * 255), 1, 255))
            assert int(_value_at(s, x, y, d)[0]) == want
        assert int(_value_at(s, 10, 10, d)[0]) == 0  # no tile: 0
        for i in range(0, len(scores.coords), 7):  # level 1 (2x2 means) holds the value inside each tile too
            x, y = (int(v) + T // 2 for v in scores.coords[i])
            got = np.asarray(s.read_region((x // d, y // d), 1, (1, 1)))[0, 0, 0]
            assert int(got) == int(np.clip(round(float(scores.probs[i, 1]) * 255), 1, 255))
    assert_no_temp(tmp_path)


def test_gray_class_map_and_rgba_variant(tmp_path: Path) -> None:
    w, h, d = 3000, 2000, 2
    scores = _scores(w, h, seed=3)
    gray = write_tiff_overlay(tmp_path / "c.tif", scores, (w, h), 0.5, d)
    style = OverlayStyle("argmax", alpha=0.8)
    rgba = write_tiff_overlay(tmp_path / "r.tif", scores, (w, h), 0.5, d, style, variant="rgba")
    colors = tile_colors(scores, style)
    k = np.argmax(scores.probs, axis=1)
    with openslide.OpenSlide(gray) as g, openslide.OpenSlide(rgba) as r:
        assert g.dimensions == r.dimensions == (w // d, h // d)
        assert g.level_count == r.level_count == 2
        for i in range(0, len(scores.coords), 17):
            x, y = (int(v) + T // 2 for v in scores.coords[i])
            assert int(_value_at(g, x, y, d)[0]) == k[i] + 1
            got = _value_at(r, x, y, d)
            if colors[i, 3]:  # openslide-python un-premultiplies: allow its rounding
                assert int(got[3]) == colors[i, 3]
                assert np.abs(got[:3].astype(int) - colors[i, :3]).max() <= 2
            else:
                assert int(got[3]) == 0


def test_refuses_bad_downsample_and_unknown_class(tmp_path: Path) -> None:
    scores = _scores(1000, 1000)
    with pytest.raises(PathPTError, match="integer downsample"):
        write_tiff_overlay(tmp_path / "a.tif", scores, (1000, 1000), 0.5, 2.5)  # type: ignore[arg-type]
    with pytest.raises(PathPTError, match="no class"):
        write_tiff_overlay(tmp_path / "a.tif", scores, (1000, 1000), 0.5, 2, OverlayStyle("Nope"))
    assert not (tmp_path / "a.tif").exists()


def test_cli_tiff_at_a_chosen_mpp(tmp_path: Path) -> None:
    from pathpt_engine.cli import main
    from pathpt_engine.export import write_scores_h5
    from pathpt_engine.synth.writer import write_slide

    w, h = 1280, 1024
    (tmp_path / "slides").mkdir()
    write_slide(tmp_path / "slides" / "s.tiff", np.full((h, w, 3), 220, np.uint8), mpp=0.5)
    scores = _scores(w, h)
    write_scores_h5(tmp_path / "s.h5", scores)
    out = tmp_path / "out"
    assert main(["-q", "export", "--scores", str(tmp_path / "s.h5"), "--slide", str(tmp_path / "slides"),
                 "--format", "tiff", "--class", "LUSC", "--mpp", "2", "--out", str(out) + "/"]) == 0
    with openslide.OpenSlide(out / "s_likelihood_map.tif") as s:
        assert s.dimensions == (w // 4, h // 4)  # 2 µm/px over a 0.5 µm/px slide: downsample 4
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(2.0)
        x, y = (int(v) + 10 for v in scores.coords[5])
        assert int(_value_at(s, x, y, 4)[0]) == int(np.clip(round(float(scores.probs[5, 2]) * 255), 1, 255))
    assert main(["-q", "export", "--scores", str(tmp_path / "s.h5"), "--format", "tiff",
                 "--out", str(tmp_path / "x.tif")]) == 2  # no --slide: one-line error, exit 2
