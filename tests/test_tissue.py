"""Tissue mask: saturation + clamped Otsu + cleanup."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from slide_fixtures import make_slide

from pathpt_engine.slides import TissueParams, open_slide, tissue_mask
from pathpt_engine.slides.tissue import mask_from_rgb, otsu_threshold, saturation


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """White 400x600 image: a large pink disc with a small and a large hole, plus tiny pink specks."""
    h, w = 400, 600
    tissue = _disc(h, w, 200, 250, 150)
    small_hole = _disc(h, w, 150, 200, 4)  # ~50 px: < 0.1% of the image -> filled
    large_hole = _disc(h, w, 250, 300, 30)  # ~2800 px: kept as background
    tissue &= ~small_hole & ~large_hole
    img = np.full((h, w, 3), 255, np.uint8)
    img[tissue] = np.clip(np.array([220, 130, 175]) + rng.integers(-20, 20, (int(tissue.sum()), 3)), 0, 255)
    specks = np.zeros((h, w), bool)
    for y, x in [(20, 550), (380, 30), (30, 30)]:
        specks[y:y + 2, x:x + 2] = True  # 4 px each: below min_object_fraction * area (24 px)
    img[specks] = (200, 100, 150)
    expected = _disc(h, w, 200, 250, 150) & ~large_hole
    return img, expected


def test_mask_finds_tissue_fills_small_holes_drops_specks() -> None:
    img, expected = _scene(np.random.default_rng(0))
    mask, threshold = mask_from_rgb(img, TissueParams(blur_sigma=0.0))
    assert 0.05 <= threshold <= 0.15
    iou = (mask & expected).sum() / (mask | expected).sum()
    assert iou > 0.98
    assert mask[150, 200]  # small hole filled
    assert not mask[250, 300]  # large hole kept
    assert not mask[20:22, 550:552].any() and not mask[380:382, 30:32].any()


def test_blank_and_grey_noise_give_empty_mask() -> None:
    rng = np.random.default_rng(1)
    white = np.full((300, 300, 3), 255, np.uint8)
    assert not mask_from_rgb(white)[0].any()
    grey = np.repeat(rng.integers(180, 255, (300, 300, 1), dtype=np.uint8), 3, axis=2)
    grey = np.clip(grey.astype(int) + rng.integers(-3, 4, grey.shape), 0, 255).astype(np.uint8)
    assert mask_from_rgb(grey)[0].mean() < 0.001


def test_slide_covered_in_tissue_keeps_pale_half() -> None:
    img = np.zeros((200, 200, 3), np.uint8)
    img[:, :100] = (150, 60, 140)  # dark purple, saturation 0.6
    img[:, 100:] = (235, 190, 215)  # pale pink, saturation ~0.19: Otsu alone would call it background
    mask, threshold = mask_from_rgb(img)
    assert threshold == pytest.approx(0.15)
    assert mask.mean() > 0.99


def test_saturation_and_otsu() -> None:
    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0], [200, 100, 100]]], np.uint8)
    assert saturation(rgb)[0] == pytest.approx([0.0, 1.0, 0.0, 0.5])
    values = np.concatenate([np.full(1000, 0.02), np.full(500, 0.4)])
    assert 0.02 < otsu_threshold(values) <= 0.4
    assert otsu_threshold(np.array([])) == 0.0


@pytest.mark.parametrize("kwargs", [{"thumb_size": 4}, {"blur_sigma": -1}, {"min_saturation": 0.5},
                                    {"min_object_fraction": 1.0}, {"max_hole_fraction": -0.1}])
def test_params_validate(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - one case per invalid field, each with its own message
        TissueParams(**kwargs)


def test_tissue_mask_of_a_slide(tmp_path: Path) -> None:
    path = make_slide(tmp_path / "s.tif", 2000, 1200, fmt="tiff", seed=3)
    with open_slide(path) as r:
        tm = tissue_mask(r, TissueParams(thumb_size=500))
        thumb = r.thumbnail(500)
    assert tm.mask.shape == thumb.shape[:2] == (300, 500)
    assert tm.downsample == pytest.approx((4.0, 4.0))
    white = (thumb.min(axis=2) > 245)
    assert 0.03 < tm.fraction < 0.6
    assert (tm.mask & white).mean() < 0.01  # background stays background


@pytest.mark.slow  # renders a synthetic H&E slide (a few seconds)
@pytest.mark.parametrize("seed", [3, 8])
def test_mask_matches_synthetic_he_ground_truth(tmp_path: Path, seed: int) -> None:
    from PIL import Image

    from pathpt_engine.synth import SlideSpec, write_synthetic_slide

    synth = write_synthetic_slide(tmp_path / "s.svs", tmp_path, "s", SlideSpec(1536, 1152, kind=1, seed=seed),
                                  fmt="svs")
    truth = np.asarray(Image.open(synth.tissue_mask)) > 0
    with open_slide(synth.path) as r:
        tm = tissue_mask(r, TissueParams(thumb_size=max(r.dimensions) // 16))
    assert tm.mask.shape == truth.shape
    iou = (tm.mask & truth).sum() / (tm.mask | truth).sum()
    assert iou > 0.9, f"tissue IoU {iou:.3f} against the synthetic ground truth"
