"""PNG exports: output size per downsample and region, blending where probabilities are high, argmax colours,
Normal transparent, the heatmap figure, and bad inputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathpt_engine.colors import hex_to_rgb
from pathpt_engine.errors import PathPTError
from pathpt_engine.export import OverlayStyle, export_heatmap_figure, export_overlay_png, render_overlay
from pathpt_engine.export.png import rasterize, tile_colors
from pathpt_engine.results import TileScores
from pathpt_engine.slides import open_slide
from pathpt_engine.synth.writer import write_slide

W, H, T = 1024, 768, 128
NAMES = ("Normal", "LUAD", "LUSC")


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    img = np.full((H, W, 3), 235, np.uint8)
    img[128:640, 128:896] = (200, 120, 180)  # "tissue"
    return write_slide(tmp_path_factory.mktemp("png") / "s.tiff", img, mpp=0.5)


def _scores() -> TileScores:
    """Tiles over the tissue: left half Normal-ish, top-right LUAD-high, bottom-right LUSC-high."""
    coords, probs = [], []
    for y in range(128, 640, T):
        for x in range(128, 896, T):
            coords.append([x, y])
            if x < 512:
                probs.append([0.9, 0.05, 0.05])
            elif y < 384:
                probs.append([0.02, 0.96, 0.02])
            else:
                probs.append([0.1, 0.1, 0.8])
    return TileScores("s", np.array(coords), np.array(probs, np.float32), T, NAMES)


@pytest.mark.parametrize(("ds", "region", "size"), [(32, None, (32, 24)), (8, None, (128, 96)),
                                                      (3, None, (342, 256)), (4, (256, 256, 512, 300), (128, 75))])
def test_png_dimensions(slide: Path, tmp_path: Path, ds: float, region, size) -> None:
    with open_slide(slide) as reader:
        out = export_overlay_png(tmp_path / "o.png", reader, _scores(), ds, OverlayStyle("LUAD"), region)
    with Image.open(out) as im:
        assert im.size == size and im.mode == "RGB"


def test_blending_changes_tissue_where_probs_are_high(slide: Path) -> None:
    scores = _scores()
    with open_slide(slide) as reader:
        base = render_overlay(reader, scores, 8, OverlayStyle("LUAD", alpha=0.0)).astype(int)
        over = render_overlay(reader, scores, 8, OverlayStyle("LUAD", "viridis", alpha=0.6)).astype(int)
    diff = np.abs(over - base).sum(axis=2)
    high = diff[128 // 8 + 2:384 // 8 - 2, 512 // 8 + 2:896 // 8 - 2]  # LUAD-high tiles (inner pixels)
    low = diff[128 // 8 + 2:640 // 8 - 2, 128 // 8 + 2:512 // 8 - 2]   # P(LUAD) = 0.05 tiles
    outside = np.concatenate([diff[:128 // 8 - 1].ravel(), diff[640 // 8 + 1:].ravel()])
    assert high.min() > 60                   # visibly changed
    assert outside.max() == 0                # no tile: untouched
    import matplotlib

    viridis_hi = np.array(matplotlib.colormaps["viridis"](0.96, bytes=True)[:3])
    assert np.abs(over[30, 90] - (0.4 * base[30, 90] + 0.6 * viridis_hi)).max() <= 1  # exact alpha blend
    viridis_lo = np.array(matplotlib.colormaps["viridis"](0.05, bytes=True)[:3])
    assert np.abs(over[40, 40] - (0.4 * base[40, 40] + 0.6 * viridis_lo)).max() <= 1
    assert low.min() > 0  # low probabilities are coloured too (dark end of the map), not skipped


def test_argmax_colours_and_transparent_normal(slide: Path) -> None:
    scores = _scores()
    style = OverlayStyle("argmax", alpha=1.0, colors={"LUSC": "#00ff00"})
    with open_slide(slide) as reader:
        base = render_overlay(reader, scores, 8, OverlayStyle(alpha=0.0))
        out = render_overlay(reader, scores, 8, style)
    assert tuple(out[30, 90]) == hex_to_rgb("#1f77b4")     # LUAD: first default palette colour
    assert tuple(out[60, 90]) == (0, 255, 0)               # LUSC: given colour
    np.testing.assert_array_equal(out[20:75, 20:60], base[20:75, 20:60])  # Normal tiles stay transparent


def test_rasterize_one_pixel_per_tile_at_tile_downsample() -> None:
    scores = _scores()
    rgba = tile_colors(scores, OverlayStyle("argmax", alpha=1.0, normal_index=None))
    grid = rasterize(scores, rgba, (128, 128, 768, 512), float(T))
    assert grid.shape == (4, 6, 4) and (grid[..., 3] == 255).all()
    k = np.argmax(scores.probs, axis=1).reshape(4, 6)
    assert (k[:, :3] == 0).all() and (k[:2, 3:] == 1).all() and (k[2:, 3:] == 2).all()


def test_heatmap_figure_has_legend_space_and_uses_agg_only(tmp_path: Path) -> None:
    scores = _scores()
    out = export_heatmap_figure(tmp_path / "h.png", scores, OverlayStyle("LUSC", "magma"), dpi=50)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] == 400  # 8 in x 50 dpi
        arr = np.asarray(im.convert("RGB"))
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20  # colormap + colorbar drawn
    code = ("import sys, numpy as np; from pathpt_engine.export import export_heatmap_figure, OverlayStyle;"
            "from pathpt_engine.results import TileScores;"
            "s = TileScores('s', np.array([[0, 0], [64, 0]]), np.array([[0.2, 0.8], [0.9, 0.1]], np.float32), 64,"
            " ('Normal', 'T'));"
            f"export_heatmap_figure(r'{tmp_path / 'h2.png'}', s, OverlayStyle());"
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert (tmp_path / "h2.png").stat().st_size > 0


def test_bad_inputs(slide: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown colormap"):
        OverlayStyle("LUAD", cmap="no-such-map")
    with pytest.raises(ValueError, match="alpha"):
        OverlayStyle(alpha=1.5)
    with open_slide(slide) as reader, pytest.raises(PathPTError, match="s: no class 'SCLC'"):
        render_overlay(reader, _scores(), 8, OverlayStyle("SCLC"))
    with open_slide(slide) as reader, pytest.raises(PathPTError, match="s.tiff: .* too large"):
        render_overlay(reader, _scores(), 1e-4, OverlayStyle())
    empty = TileScores("e", np.zeros((0, 2), np.int64), np.zeros((0, 2), np.float32), 64, ("Normal", "T"))
    with pytest.raises(PathPTError, match="e: no tiles"):
        export_heatmap_figure(tmp_path / "e.png", empty)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*"))  # nothing half-written
