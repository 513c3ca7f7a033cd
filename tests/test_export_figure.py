"""Figures and captions (issue 16): the figure (PNG at a DPI, SVG, PDF) has its legend or colour bar, scale bar
and caption; titles name the layer, not a diagnosis; the overlay PNG carries its caption and an optional legend
strip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathpt_engine.cli import main
from pathpt_engine.export import OverlayStyle, export_heatmap_figure, write_scores_h5
from pathpt_engine.export.captions import RESEARCH_ONLY, Caption, caption_lines, title
from pathpt_engine.results import TileScores
from pathpt_engine.synth.writer import write_slide

NAMES = ("Normal", "LUAD", "LUSC")
W, H, T = 1024, 768, 128


def _scores(sid: str = "s1") -> TileScores:
    rng = np.random.default_rng(0)
    coords = np.array([[x, y] for y in range(128, 640, T) for x in range(128, 896, T)], np.int64)
    return TileScores(sid, coords, rng.dirichlet(np.ones(3), len(coords)).astype(np.float32), T, NAMES)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fig")
    (root / "slides").mkdir()
    img = np.full((H, W, 3), 235, np.uint8)
    img[128:640, 128:896] = (200, 120, 180)
    write_slide(root / "slides" / "s1.tiff", img, mpp=0.5)
    write_scores_h5(root / "preds" / "s1.h5", _scores())
    return root


def test_titles_and_captions_do_not_read_like_a_diagnosis() -> None:
    assert title("s1", OverlayStyle("LUAD")) == "s1: tile probability of LUAD (PathPT)"
    assert title("s1", OverlayStyle()) == "s1: tile votes (class per tile) (PathPT)"
    lines = caption_lines("s1", OverlayStyle("LUAD"), Caption("r1", "PathPT", "KEEP", date="2026-01-02"))
    assert lines == ["s1: tile probability of LUAD", "run r1 · method PathPT · backbone KEEP · 2026-01-02"]
    demo = caption_lines("s1", OverlayStyle(), Caption("r1", "PathPT", "demo-vl"))
    assert RESEARCH_ONLY in demo[-1]
    assert RESEARCH_ONLY in caption_lines("s1", OverlayStyle(), Caption(research_only=True))[-1]


def test_figure_svg_pdf_png_have_legend_scale_bar_and_caption(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "figs"
    assert main(["-q", "export", "--scores", str(cohort / "preds"), "--slide", str(cohort / "slides"),
                 "--format", "figure", "--figure-format", "png", "svg", "pdf", "--dpi", "60",
                 "--run", "lung-5shot", "--method", "PathPT", "--backbone", "demo-vl", "--out", str(out)]) == 0
    svg = (out / "s1_figure.svg").read_text(encoding="utf-8")
    for text in ("LUAD", "LUSC", "tile votes (class)",  # legend
                 "run lung-5shot · method PathPT · backbone demo-vl", RESEARCH_ONLY,  # caption
                 "s1: tile votes (class per tile) (PathPT)",  # title
                 "µm"):  # scale bar (the slide has 0.5 µm/px)
        assert text in svg, text
    assert ">Normal<" not in svg  # Normal is transparent, not in the legend
    assert (out / "s1_figure.pdf").read_bytes()[:5] == b"%PDF-"
    with Image.open(out / "s1_figure.png") as im:
        assert im.size[0] == 8 * 60


def test_probability_figure_has_a_colour_bar_without_slide(tmp_path: Path) -> None:
    out = export_heatmap_figure(tmp_path / "h.svg", _scores(), OverlayStyle("LUSC", "magma"),
                                caption=Caption("r", "PathPT", "KEEP"))
    svg = out.read_text(encoding="utf-8")
    assert "tile probability of LUSC" in svg and "run r · method PathPT · backbone KEEP" in svg
    assert RESEARCH_ONLY not in svg
    code = ("import sys; from pathlib import Path; import numpy as np;"
            "from pathpt_engine.export import export_heatmap_figure; from pathpt_engine.slides import open_slide;"
            "from pathpt_engine.results import TileScores;"
            "s = TileScores('s', np.array([[0, 0], [64, 0]]), np.array([[0.2, 0.8], [0.9, 0.1]], np.float32), 64,"
            " ('Normal', 'T'));"
            f"r = open_slide(Path(r'{tmp_path / 'sl.tiff'}'));"
            f"export_heatmap_figure(r'{tmp_path / 'h2.pdf'}', s, reader=r);"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    write_slide(tmp_path / "sl.tiff", np.full((256, 256, 3), 200, np.uint8), mpp=0.5)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_overlay_png_caption_chunks_and_legend_strip(cohort: Path, tmp_path: Path) -> None:
    args = ["-q", "export", "--scores", str(cohort / "preds" / "s1.h5"), "--slide", str(cohort / "slides"),
            "--format", "png", "--class", "LUAD", "--mpp", "4", "--run", "r1", "--method", "zero-shot"]
    assert main([*args, "--out", str(tmp_path / "plain.png")]) == 0
    assert main([*args, "--legend", "--out", str(tmp_path / "legend.png")]) == 0
    with Image.open(tmp_path / "plain.png") as im:
        assert im.size == (W // 8, H // 8)  # 4 µm/px over 0.5 µm/px: downsample 8
        assert im.text["Title"] == "s1: tile probability of LUAD (zero-shot)"
        assert "run r1 · method zero-shot" in im.text["Description"]
        plain = np.asarray(im.convert("RGB"))
    with Image.open(tmp_path / "legend.png") as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape[1] == 640 and arr.shape[0] > plain.shape[0] + 40  # strip under the image
    np.testing.assert_array_equal(arr[:plain.shape[0], :plain.shape[1]], plain)
    strip = arr[plain.shape[0]:]
    assert (strip < 100).all(axis=2).sum() > 200  # caption text drawn
    assert len(np.unique(strip.reshape(-1, 3), axis=0)) > 50  # the colour ramp


def test_several_formats_in_one_call(cohort: Path, tmp_path: Path) -> None:
    out = tmp_path / "all"
    assert main(["-q", "export", "--scores", str(cohort / "preds"), "--slide", str(cohort / "slides"),
                 "--format", "png", "tiff", "geojson", "figure", "h5", "--figure-format", "svg",
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["s1.geojson", "s1.h5", "s1.png", "s1_figure.svg",
                                                     "s1_likelihood_map.tif"]
    assert main(["-q", "export", "--scores", str(cohort / "preds"), "--format", "csv", "png",
                 "--out", str(tmp_path / "p.csv")]) == 2  # csv is one file: on its own
