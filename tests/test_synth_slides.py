"""Synthetic slides and cohorts: layout, seamless strips, OpenSlide-readable TIFF/SVS pyramids with mpp and
associated images, masks aligned with tumour tissue, labels.csv / cohort.json, cancellation, CLI."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import openslide
import pytest
from PIL import Image
from tempfiles import assert_no_temp

from pathpt_engine.cli import main
from pathpt_engine.errors import ConfigError, JobCancelled, PathPTError
from pathpt_engine.jobs import collect, run_job
from pathpt_engine.synth.cohort import CohortSpec, make_cohort, plan, write_synthetic_slide
from pathpt_engine.synth.render import E_VEC, H_VEC, Stain
from pathpt_engine.synth.slide import SlideSpec, iter_strips, make_layout, render_block, render_slide
from pathpt_engine.synth.writer import write_slide, write_slide_streamed


@pytest.mark.parametrize(
    "kwargs",
    [{"width": 100}, {"height": 10**6}, {"kind": 99}, {"mpp": 0.0}, {"tumour_fraction": 0.0},
     {"mask_downsample": 10}, {"seed": -1}],
)
def test_slide_spec_rejects_bad_values(kwargs):
    args = {"width": 512, "height": 512} | kwargs
    with pytest.raises(ValueError):  # noqa: PT011 - one case per invalid field, each with its own message
        SlideSpec(**args)


def test_layout_is_deterministic_and_hits_tumour_fraction():
    spec = SlideSpec(1024, 768, kind=2, seed=4, tumour_fraction=0.3)
    a, b = make_layout(spec), make_layout(spec)
    np.testing.assert_array_equal(a.tumour_field, b.tumour_field)
    assert a.stain == b.stain
    assert a.tissue_mask.shape == (768 // 16, 1024 // 16)
    frac = a.tumour_mask.sum() / a.tissue_mask.sum()
    assert 0.25 < frac < 0.35
    assert 0.2 < a.tissue_mask.mean() < 0.95  # tissue on glass, not all glass nor all tissue
    assert not make_layout(SlideSpec(1024, 768, kind=0, seed=4)).tumour_mask.any()
    assert make_layout(SlideSpec(1024, 768, kind=2, seed=5)).stain != a.stain


def test_blocks_join_without_seams():
    lay = make_layout(SlideSpec(768, 512, kind=1, seed=3, stain=Stain(blur_um=0.4)))
    whole = render_block(lay, 128, 64, 256, 160).astype(int)
    left = render_block(lay, 128, 64, 100, 160).astype(int)
    right = render_block(lay, 228, 64, 156, 160).astype(int)
    assert np.abs(whole - np.concatenate([left, right], axis=1)).max() <= 2
    strips = list(iter_strips(lay, strip_height=256))
    assert [s.shape for s in strips] == [(256, 768, 3), (256, 768, 3)]


def _hematoxylin(img: np.ndarray) -> np.ndarray:
    od = -np.log10(np.clip(img.astype(np.float64), 1, 255) / 255.0)
    m = np.stack([np.asarray(H_VEC) / np.linalg.norm(H_VEC), np.asarray(E_VEC) / np.linalg.norm(E_VEC)])
    coef, *_ = np.linalg.lstsq(m.T, od.reshape(-1, 3).T, rcond=None)
    return coef[0].reshape(img.shape[:2])


@pytest.fixture(scope="module")
def solid_slide(tmp_path_factory):
    d = tmp_path_factory.mktemp("solid")
    spec = SlideSpec(1280, 768, kind=1, seed=21, tumour_fraction=0.4, stain=Stain())
    return write_synthetic_slide(d / "s.svs", d, "s", spec, fmt="svs"), spec


def test_svs_opens_with_levels_mpp_and_associated_images(solid_slide):
    res, spec = solid_slide
    with openslide.OpenSlide(str(res.path)) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert s.properties["aperio.Filename"] == "s"  # the slide's name, not the temp file it was written as
        assert s.dimensions == (1280, 768)
        assert s.level_dimensions == ((1280, 768), (320, 192))
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert float(s.properties["openslide.objective-power"]) == 40
        assert set(s.associated_images) == {"thumbnail", "label", "macro"}
        region = np.asarray(s.read_region((256, 256), 0, (256, 256)).convert("RGB")).astype(int)
    expected = render_block(make_layout(spec), 256, 256, 256, 256).astype(int)
    assert np.abs(region - expected).mean() < 4  # JPEG Q90


def test_mask_aligns_with_tumour_tissue(solid_slide):
    """Pixels under the tumour mask are far more nuclear than normal tissue under the tissue mask."""
    res, spec = solid_slide
    tumour = np.asarray(Image.open(res.tumour_mask)) > 0
    tissue = np.asarray(Image.open(res.tissue_mask)) > 0
    side = json.loads(res.sidecar.read_text())
    assert side["label"] == "solid_carcinoma" and side["mask_downsample"] == 16
    assert tumour.shape == (768 // 16, 1280 // 16) and tumour.any() and (tissue & ~tumour).any()
    with openslide.OpenSlide(str(res.path)) as s:
        img = np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))
    nuc = _hematoxylin(img) > 0.35
    per_cell = nuc.reshape(48, 16, 80, 16).mean(axis=(1, 3))
    from scipy.ndimage import binary_erosion

    core_t = binary_erosion(tumour, iterations=2)
    core_n = binary_erosion(tissue & ~tumour, iterations=2)
    assert per_cell[core_t].mean() > 3 * per_cell[core_n].mean()


@pytest.mark.parametrize("fmt", ["tiff", "svs"])
def test_streamed_writer_levels_and_pixels(tmp_path, fmt):
    rng = np.random.default_rng(0)
    small = (rng.random((24, 33, 3)) * 255).astype(np.uint8)
    img = np.asarray(Image.fromarray(small).resize((1300, 1100), Image.BILINEAR))
    strips = (img[y : y + 512] for y in range(0, 1100, 512))
    p = write_slide_streamed(tmp_path / f"x.{fmt}", 1300, 1100, strips, mpp=0.5, fmt=fmt, min_size=256)
    with openslide.OpenSlide(str(p)) as s:
        assert s.level_count == 3
        assert s.level_dimensions[1] == (325, 275)
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        got = np.asarray(s.read_region((600, 700), 0, (300, 300)).convert("RGB")).astype(int)
        low = np.asarray(s.read_region((0, 0), 1, (325, 275)).convert("RGB")).astype(int)
    assert np.abs(got - img[700:1000, 600:900]).mean() < 3
    ref = img.reshape(275, 4, 325, 4, 3).mean(axis=(1, 3))
    assert np.abs(low - ref).mean() < 3
    assert_no_temp(tmp_path)


def test_streamed_writer_rejects_bad_strips(tmp_path):
    bad = [np.zeros((100, 300, 3), np.uint8), np.zeros((100, 300, 3), np.uint8)]
    with pytest.raises(ValueError, match="multiple of the tile"):
        write_slide_streamed(tmp_path / "x.tiff", 300, 200, iter(bad))
    with pytest.raises(ValueError, match="cover"):
        write_slide_streamed(tmp_path / "y.tiff", 300, 600, iter([np.zeros((256, 300, 3), np.uint8)]))
    assert not list(tmp_path.iterdir())


def test_write_slide_keeps_its_signature_and_lists_label_and_macro(tmp_path):
    img = np.full((600, 800, 3), 200, np.uint8)
    lab, mac = np.full((100, 120, 3), 250, np.uint8), np.full((100, 300, 3), 180, np.uint8)
    p = write_slide(tmp_path / "a.svs", img, 0.25, "svs", 256, 90, None, lab, mac)
    with openslide.OpenSlide(str(p)) as s:
        assert {"label", "macro", "thumbnail"} <= set(s.associated_images)
        assert s.associated_images["label"].size == (120, 100)
        assert s.associated_images["macro"].size == (300, 100)


def test_cohort_job_writes_labels_masks_and_metadata(tmp_path):
    spec = CohortSpec(n_subtypes=2, slides_per_class=1, normal_slides=1, width=512, height=384, seed=9)
    slides, events = collect(make_cohort(tmp_path / "c", spec))
    assert [e.done for e in events] == [0, 1, 2, 3] and events[-1].total == 3
    rows = list(csv.DictReader((tmp_path / "c" / "labels.csv").open()))
    assert sorted(r["label"] for r in rows) == ["glandular_adenocarcinoma", "normal", "solid_carcinoma"]
    assert [r["slide_id"] for r in rows] == [s.slide_id for s in slides]
    meta = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert meta["seed"] == 9 and meta["size"] == [512, 384] and meta["mpp"] == 0.25
    assert [c["name"] for c in meta["classes"]] == ["normal", "solid_carcinoma", "glandular_adenocarcinoma"]
    for s in slides:
        assert s.path.exists() and s.path.suffix == ".tiff"
        tum = np.asarray(Image.open(s.tumour_mask))
        assert tum.shape == (24, 32)
        assert tum.any() == (s.label != "normal")
        with openslide.OpenSlide(str(s.path)) as o:
            assert o.dimensions == (512, 384)
    with pytest.raises(ConfigError, match="already holds a cohort"):
        run_job(make_cohort(tmp_path / "c", spec))


def test_cohort_plan_is_deterministic_and_interleaved():
    spec = CohortSpec(n_subtypes=4, slides_per_class=3, seed=1)
    a, b = plan(spec), plan(spec)
    assert a == b
    kinds = [s.kind for _, s in a]
    assert sorted(kinds) == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert kinds != sorted(kinds)
    assert len({s.seed for _, s in a}) == len(a)
    assert plan(CohortSpec(n_subtypes=4, slides_per_class=3, seed=2)) != a


@pytest.mark.parametrize(
    "kwargs",
    [{"n_subtypes": 0}, {"n_subtypes": 6}, {"slides_per_class": 0}, {"normal_slides": -1}, {"fmt": "png"},
     {"width": 10}, {"tumour_fraction": (0.5, 0.2)}],
)
def test_cohort_spec_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):  # noqa: PT011 - one case per invalid field, each with its own message
        CohortSpec(**kwargs)


def test_cancel_stops_and_leaves_no_partial_files(tmp_path):
    cancel = threading.Event()
    job = make_cohort(tmp_path / "c", CohortSpec(slides_per_class=1, width=512, height=512), cancel=cancel)
    next(job)
    cancel.set()
    with pytest.raises(JobCancelled):
        next(job)
    assert not list((tmp_path / "c").rglob("*.tiff"))
    assert_no_temp(tmp_path / "c")
    assert not (tmp_path / "c" / "labels.csv").exists()


def test_render_slide_matches_strips():
    lay = make_layout(SlideSpec(512, 300, kind=3, seed=2))
    img = render_slide(lay)
    assert img.shape == (300, 512, 3)
    assert (img > 200).all(axis=2).mean() > 0.05  # some glass


def test_cli_synth(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["-q", "synth", "--out", str(out), "--subtypes", "1", "--slides-per-class", "1",
               "--normal-slides", "0", "--size", "512x384", "--seed", "3", "--format", "svs"])
    assert rc == 0
    assert "wrote 1 synthetic slides" in capsys.readouterr().out
    assert (out / "labels.csv").read_text().splitlines() == ["slide_id,label", "synth3_000,solid_carcinoma"]
    assert main(["-q", "synth", "--out", str(tmp_path / "x"), "--subtypes", "9", "--slides-per-class", "1"]) == 2
    assert "subtypes must be 1..5" in capsys.readouterr().err
    assert main(["-q", "synth", "--out", str(tmp_path / "y"), "--size", "big"]) == 2
    assert "--size 'big'" in capsys.readouterr().err


def test_config_error_is_a_pathpt_error():
    assert issubclass(ConfigError, PathPTError)


def test_cancel_inside_a_slide_removes_the_temp_file(tmp_path):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(JobCancelled):
        write_synthetic_slide(tmp_path / "s.svs", tmp_path, "s", SlideSpec(512, 512, kind=1), "svs", cancel)
    assert list(tmp_path.iterdir()) == []


def test_svs_from_write_slide_names_itself(tmp_path):
    from pathpt_engine.synth.writer import write_slide

    path = write_slide(tmp_path / "case 7.svs", np.full((300, 400, 3), 200, np.uint8), fmt="svs")
    with openslide.OpenSlide(str(path)) as s:
        assert s.properties["aperio.Filename"] == "case 7"
