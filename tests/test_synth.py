"""Synthetic tissue: the SUBTYPES table, render_patch (determinism, options, errors), seamless rendering, and
per-subtype statistics that differ as designed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pathpt_engine.synth import SUBTYPES, Stain, cohort_classes, kind_index, render_patch
from pathpt_engine.synth.render import E_VEC, H_VEC, od_to_rgb, pixel_centres, render_od


def test_subtypes_table_is_consistent():
    assert SUBTYPES[0].name == "normal"
    assert len(SUBTYPES) >= 5  # normal + at least 4 subtypes
    names = [s.name for s in SUBTYPES]
    assert len(set(names)) == len(names)
    for i, s in enumerate(SUBTYPES):
        assert s.index == i
        assert "synthetic" in s.display.lower()
        assert len(s.synonyms) >= 3 and all(isinstance(t, str) and t for t in s.synonyms)
        assert len(s.color) == 3 and all(0 <= c <= 255 for c in s.color)
        assert kind_index(s.name) == i and kind_index(i) == i and kind_index(np.int64(i)) == i
    assert [s.name for s in cohort_classes(3)] == names[:4]


@pytest.mark.parametrize("bad", [-1, len(SUBTYPES), "carcinoma", 1.5])
def test_kind_index_rejects_unknown(bad):
    with pytest.raises(ValueError, match="kind"):
        kind_index(bad)


@pytest.mark.parametrize("n", [0, len(SUBTYPES)])
def test_cohort_classes_bounds(n):
    with pytest.raises(ValueError, match="subtypes"):
        cohort_classes(n)


def test_render_patch_deterministic_and_varied():
    a = render_patch("solid_carcinoma", 96, rng=7)
    b = render_patch(1, 96, rng=7)
    c = render_patch(1, 96, rng=8)
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 5
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    np.testing.assert_array_equal(render_patch(2, 64, rng=g1), render_patch(2, 64, rng=g2))
    # a generator advances: the next patch differs from the first
    assert not np.array_equal(render_patch(2, 64, rng=g1), render_patch(2, 64, rng=np.random.default_rng(3)))


def test_render_patch_stain_options():
    plain = render_patch(0, 64, rng=1, stain="default")
    again = render_patch(0, 64, rng=1, stain=Stain())
    np.testing.assert_array_equal(plain, again)
    pale = render_patch(0, 64, rng=1, stain=Stain(e_scale=0.5, h_scale=0.5))
    assert pale.astype(float).mean() > plain.astype(float).mean() + 5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"kind": "nope"}, "kind"), ({"size": 4}, "size"), ({"size": 64.0}, "size"), ({"stain": "blue"}, "stain"),
     ({"mpp": 10.0}, "mpp"), ({"rng": "x"}, "rng")],
)
def test_render_patch_bad_arguments(kwargs, match):
    args = {"kind": 0, "size": 64, "rng": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        render_patch(**args)


def test_stain_validation():
    with pytest.raises(ValueError, match='must be > 0'):
        Stain(h_scale=0)
    with pytest.raises(ValueError, match='must be >= 0'):
        Stain(blur_um=-1)


def test_rendering_is_seamless_across_cuts():
    """A region rendered whole equals the same region rendered as two halves (strips/blocks need no seams)."""
    st = Stain()
    for kind in (0, 2, 4):
        xs, ys = pixel_centres(5000.0, 7000.0, 128, 96, 0.25)
        whole = od_to_rgb(render_od(kind, xs, ys, 11, 0.25, st), st, 0.25).astype(int)
        left = od_to_rgb(render_od(kind, xs[:50], ys, 11, 0.25, st), st, 0.25).astype(int)
        right = od_to_rgb(render_od(kind, xs[50:], ys, 11, 0.25, st), st, 0.25).astype(int)
        joined = np.concatenate([left, right], axis=1)
        diff = np.abs(whole - joined)
        assert diff.max() <= 2, (kind, diff.max())


def _hematoxylin(img: np.ndarray) -> np.ndarray:
    """Hematoxylin optical density by least-squares unmixing with the default stain vectors."""
    od = -np.log10(np.clip(img.astype(np.float64), 1, 255) / 255.0) - Stain().background_od
    m = np.stack([np.asarray(H_VEC) / np.linalg.norm(H_VEC), np.asarray(E_VEC) / np.linalg.norm(E_VEC)])
    coef, *_ = np.linalg.lstsq(m.T, od.reshape(-1, 3).T, rcond=None)
    return coef[0].reshape(img.shape[:2])


def _nuclear_stats(kind: int, n: int = 4, base: int = 1000) -> dict[str, float]:
    areas, counts, frac, elong, hmean = [], [], [], [], []
    for i in range(n):
        img = render_patch(kind, 192, rng=base + i, stain="default")
        hem = ndimage.gaussian_filter(_hematoxylin(img), 1.5)
        nuc = ndimage.binary_fill_holes(hem > 0.28)
        hmean.append(hem[nuc].mean())
        lab, k = ndimage.label(nuc)
        sizes = ndimage.sum(nuc, lab, range(1, k + 1))
        big = np.flatnonzero(sizes > 12) + 1
        counts.append(len(big))
        frac.append(nuc.mean())
        areas.extend(sizes[big - 1] * 0.25)  # um^2 at 0.5 um/px
        for j in big[:60]:
            yy, xx = np.nonzero(lab == j)
            ev = np.linalg.eigvalsh(np.cov(np.stack([xx, yy])))
            elong.append(np.sqrt(ev[1] / max(ev[0], 1e-6)))
    return {"area": float(np.median(areas)), "count": float(np.mean(counts)), "frac": float(np.mean(frac)),
            "elong": float(np.median(elong)), "hmean": float(np.mean(hmean))}


def test_subtype_statistics_differ_as_designed():
    s = {k: _nuclear_stats(k) for k in range(len(SUBTYPES))}
    normal, solid, gland, nested, spindle, small = (s[k] for k in range(6))
    # tumours are more cellular than normal stroma
    for t in (solid, gland, nested, spindle, small):
        assert t["frac"] > 2 * normal["frac"]
    # spindle cells are elongated; solid/nested/small-cell nuclei are round-ish
    assert spindle["elong"] > 2.0 > solid["elong"]
    assert nested["elong"] < 2.0 and small["elong"] < 2.0
    # small-cell: crowded (largest nuclear fraction) and hyperchromatic (darkest nuclei)
    assert small["frac"] > solid["frac"] and small["hmean"] > solid["hmean"] + 0.1
    # the hard pair: solid has slightly larger nuclei than nested, but only slightly
    assert solid["area"] > nested["area"]
    assert solid["area"] < 1.6 * nested["area"]  # designed 1.21 (radius 4.4 vs 4.0 um); touching nuclei add noise


_DIGEST = """
import hashlib, sys
from pathpt_engine.synth import render_patch
from pathpt_engine.synth.slide import SlideSpec, make_layout, render_block
h = hashlib.sha256(render_patch(2, 96, rng=5).tobytes())
h.update(render_block(make_layout(SlideSpec(512, 512, kind=3, seed=8)), 128, 128, 192, 160).tobytes())
print(h.hexdigest())
"""


@pytest.mark.slow
def test_same_seed_same_pixels_in_fresh_processes_with_any_thread_count():
    import os
    import subprocess
    import sys

    digests = set()
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
        out = subprocess.run([sys.executable, "-c", _DIGEST], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1 and len(digests.pop()) == 64
