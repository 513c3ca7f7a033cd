"""Ground truth in the demo (issue 12 §3): the overlay's outline of a cohort's tumour mask, and scoring a run's
tiles and slide calls against the masks."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from pathpt_engine.results import TileScores
from pathpt_gui.viewer.overlay import Outline, OverlayModel, find_ground_truth


def test_outline_traces_the_mask_boundary_in_level0_pixels():
    mask = np.zeros((6, 8), bool)
    mask[1:4, 2:6] = True  # a 3 x 4 block
    o = Outline.from_mask(mask, 16.0)
    seg = o.segments
    horizontal = seg[seg[:, 1] == seg[:, 3]]
    vertical = seg[seg[:, 0] == seg[:, 2]]
    assert len(horizontal) == 2 and len(vertical) == 2  # runs are merged: one segment per side
    assert sorted(map(tuple, horizontal.tolist())) == [(32, 16, 96, 16), (32, 64, 96, 64)]
    assert sorted(map(tuple, vertical.tolist())) == [(32, 16, 32, 64), (96, 16, 96, 64)]
    assert len(Outline.from_mask(np.zeros((4, 4), bool), 8.0).segments) == 0


def _cohort(tmp_path):
    (tmp_path / "slides").mkdir()
    (tmp_path / "masks").mkdir()
    slide = tmp_path / "slides" / "s1.tiff"
    slide.write_bytes(b"")
    mask = np.zeros((8, 8), np.uint8)
    mask[:, 4:] = 255  # right half tumour; downsample 16 -> level-0 128 x 128
    Image.fromarray(mask).save(tmp_path / "masks" / "s1_tumour_ds16.png")
    return slide


def test_overlay_loads_the_outline_of_a_cohort_slide(tmp_path):
    slide = _cohort(tmp_path)
    assert find_ground_truth(slide)[1] == 16.0
    model = OverlayModel()
    seen = []
    model.changed.connect(seen.append)
    assert model.load_ground_truth(slide) and model.outline is not None and seen == ["outline"]
    assert model.outline.segments[:, [0, 2]].max() == 128
    model.show_outline = False
    assert seen == ["outline", "outline"]
    other = tmp_path / "elsewhere.tiff"
    assert find_ground_truth(other) is None and not OverlayModel().load_ground_truth(other)


def test_score_against_masks(tmp_path):
    from pathpt_engine.demo import score_against_masks

    _cohort(tmp_path)
    coords = np.array([[0, 0], [32, 0], [64, 0], [96, 0]])
    good = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.1, 0.9]], np.float32)  # tumour tiles: x >= 64
    scores = {"s1": TileScores("s1", coords, good, 32, ("normal", "solid"))}
    r = score_against_masks(tmp_path / "masks", scores, {"s1": "solid"}, {"s1": "solid"}, ["s1"])
    assert r["tile_auroc"] == pytest.approx(1.0) and r["n_tiles"] == 4 and r["n_tumour_tiles"] == 2
    assert r["slides_correct"] == 1 and r["train_slides_correct"] == 1 and r["n_train_slides"] == 1
    bad = TileScores("s1", coords, good[::-1].copy(), 32, ("normal", "solid"))
    r = score_against_masks(tmp_path / "masks", {"s1": bad}, {"s1": "other"}, {"s1": "solid"})
    assert r["tile_auroc"] == pytest.approx(0.0) and r["slides_correct"] == 0 and r["n_train_slides"] == 0


@pytest.mark.gui
def test_viewer_draws_the_outline(tmp_path, qtbot):
    """A slide opened from a synthetic cohort shows its tumour outline in the overlay colour."""
    from pathpt_engine.jobs import run_job
    from pathpt_engine.synth.cohort import CohortSpec, make_cohort
    from pathpt_gui.main_window import MainWindow
    from pathpt_gui.settings import AppSettings
    from pathpt_gui.viewer.overlay import OUTLINE_COLOR

    slides = run_job(make_cohort(tmp_path / "c", CohortSpec(n_subtypes=1, slides_per_class=1, normal_slides=0,
                                                            width=2048, height=1536, mpp=0.5, seed=3)))
    win = MainWindow(AppSettings())
    qtbot.addWidget(win)
    win.resize(900, 700)
    win.show()
    view = win.open_slide(slides[0].path, remember=False)
    assert view.overlay.outline is not None and len(view.overlay.outline.segments) > 10
    img = view.grab().toImage()
    arr = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(0, img.width(), 2)]
                    for y in range(0, img.height(), 2)])
    yellow = (np.abs(arr - np.array(OUTLINE_COLOR)).sum(axis=2) < 30).sum()
    view.overlay.show_outline = False
    img = view.grab().toImage()
    arr = np.array([[img.pixelColor(x, y).getRgb()[:3] for x in range(0, img.width(), 2)]
                    for y in range(0, img.height(), 2)])
    assert yellow > 20 and (np.abs(arr - np.array(OUTLINE_COLOR)).sum(axis=2) < 30).sum() < yellow / 5


def test_outline_leaves_out_small_holes_but_keeps_large_ones():
    """Stroma gaps inside a tumour mask would draw as a spray of yellow rings over the class map."""
    mask = np.zeros((40, 40), bool)
    mask[2:38, 2:38] = True
    mask[5:7, 5:7] = False  # a 2 x 2 hole (4 mask pixels)
    mask[20:32, 20:32] = False  # a 12 x 12 hole
    full = Outline.from_mask(mask, 16.0)
    kept = Outline.from_mask(mask, 16.0, min_hole=50 * 256)  # holes under 50 mask pixels are filled
    assert len(full.segments) == 12 and len(kept.segments) == 8  # outer ring + big hole; the small ring is gone
    assert kept.segments.max() == 38 * 16 and {20 * 16, 32 * 16} <= set(kept.segments.ravel().tolist())
    border = np.zeros((10, 10), bool)
    border[:, 3:] = True
    border[0:2, 5:7] = False  # a notch open to the border is not a hole
    assert len(Outline.from_mask(border, 1.0, min_hole=100).segments) == len(Outline.from_mask(border, 1.0).segments)
