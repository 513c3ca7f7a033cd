"""Tile grid: resolution/level choice, tissue filter, raster order, mpp fallback; tile reading."""

from __future__ import annotations

import itertools
import shutil
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from slide_fixtures import blob_image, corrupt_tile, make_slide, write_plain_tiff

from pathpt_engine.errors import SlideError
from pathpt_engine.slides import (
    GridParams,
    TissueMask,
    TissueParams,
    iter_tiles,
    make_grid,
    open_slide,
    read_tile,
)
from pathpt_engine.slides import tissue_mask as compute_mask
from pathpt_engine.slides.grid import choose_level, tissue_fractions


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slide(tmp_path_factory.mktemp("grid") / "s.svs", 3000, 2200, fmt="svs", seed=5, blobs=3)


def _grid(path: Path, params: GridParams = GridParams()):  # noqa: ANN202
    with open_slide(path) as r:
        return make_grid(r, compute_mask(r, TissueParams(thumb_size=1024)), params)


def test_default_grid_at_half_micron(slide: Path) -> None:
    g = _grid(slide)
    assert (g.level, g.level_downsample, g.read_size, g.size_level0) == (1, 2.0, 224, 448)
    assert g.slide_mpp == 0.25 and g.mpp_source == "slide"
    assert len(g) > 3 and g.coords.dtype == np.int64 and g.coords.shape == (len(g), 2)
    assert np.all(g.coords % 448 == 0)
    assert np.all(g.coords[:, 0] + 448 <= 3000) and np.all(g.coords[:, 1] + 448 <= 2200)
    order = np.lexsort((g.coords[:, 0], g.coords[:, 1]))
    assert np.array_equal(order, np.arange(len(g)))  # raster: y, then x
    assert np.all(g.tissue >= 0.5)
    everything = _grid(slide, GridParams(min_tissue=0.0))
    assert len(everything) == (3000 // 448) * (2200 // 448)
    kept = {tuple(c) for c in g.coords}
    assert kept == {tuple(c) for c, f in zip(everything.coords, everything.tissue, strict=True) if f >= 0.5}


def test_tiles_on_tissue_are_tissue(slide: Path) -> None:
    g = _grid(slide, GridParams(min_tissue=0.9))
    with open_slide(slide) as r:
        for i in range(len(g)):
            tile = read_tile(r, g, i)
            assert tile.shape == (224, 224, 3) and tile.dtype == np.uint8
            assert (tile.min(axis=2) > 245).mean() < 0.2  # mostly not white background


def test_level_choice_and_resizing(slide: Path, tmp_path: Path) -> None:
    g = _grid(slide, GridParams(target_mpp=0.6, tile_size=100))
    assert g.level == 1 and g.size_level0 == 240 and g.read_size == 120
    with open_slide(slide) as r:
        assert read_tile(r, g, 0).shape == (100, 100, 3)
    g0 = _grid(make_slide(tmp_path / "half.tif", 1200, 900, mpp=0.5), GridParams(tile_size=128))
    assert (g0.level, g0.read_size, g0.size_level0) == (0, 128, 128)
    assert choose_level((1.0, 2.0, 4.0, 8.02), 8.0) == 3  # within 1%
    assert choose_level((1.0, 2.0, 4.0), 3.9) == 1
    assert choose_level((1.0, 2.0), 0.5) == 0


def test_missing_mpp_needs_assume_mpp(tmp_path: Path) -> None:
    path = write_plain_tiff(tmp_path / "nores.tif", blob_image(900, 700))
    with pytest.raises(SlideError, match=r"nores\.tif: .*--assume-mpp"):
        _grid(path)
    g = _grid(path, GridParams(assume_mpp=0.5, tile_size=100, min_tissue=0.0))
    assert g.mpp_source == "assumed" and g.slide_mpp == 0.5 and g.size_level0 == 100 and len(g) == 9 * 7


def test_blank_slide_yields_no_tiles(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = make_slide(tmp_path / "blank.tif", 1000, 800, blobs=0)
    g = _grid(path)
    assert len(g) == 0 and g.coords.shape == (0, 2)
    assert "no tiles with at least 50% tissue" in caplog.text
    with open_slide(path) as r:
        assert list(iter_tiles(r, g)) == []


def test_tissue_fractions_match_brute_force() -> None:
    rng = np.random.default_rng(0)
    mask = TissueMask(rng.random((60, 80)) > 0.6, (10.0, 10.0), 0.1)
    coords = np.array([(x, y) for y in range(0, 600 - 50, 50) for x in range(0, 800 - 50, 50)])
    got = tissue_fractions(mask, coords, 50)
    want = [mask.mask[y // 10:(y + 50) // 10, x // 10:(x + 50) // 10].mean() for x, y in coords]
    assert np.allclose(got, want)


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_iter_tiles_in_order_matches_read_tile(slide: Path, threads: int) -> None:
    g = _grid(slide, GridParams(min_tissue=0.0, tile_size=112))
    with open_slide(slide) as r, open_slide(slide, fast_path=False) as ref:
        got = list(iter_tiles(r, g, num_threads=threads, prefetch=5))
        assert [i for i, _ in got] == list(range(len(g)))
        for i, tile in got:
            assert np.abs(tile.astype(int) - read_tile(ref, g, i)).max() <= 2
        subset = [7, 2, 5]
        assert [i for i, _ in iter_tiles(r, g, threads, indices=subset)] == subset


def test_iter_tiles_early_close_joins_threads(slide: Path) -> None:
    g = _grid(slide, GridParams(min_tissue=0.0, tile_size=64))
    with open_slide(slide) as r, closing(iter_tiles(r, g, num_threads=2, prefetch=16)) as tiles:
        first = list(itertools.islice(tiles, 3))
    assert [i for i, _ in first] == [0, 1, 2]
    # the autouse no_thread_leak fixture fails this test if the reader threads outlive the generator


def test_iter_tiles_raises_slide_error_for_bad_tile(slide: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.svs"
    shutil.copy(slide, path)
    g = _grid(slide, GridParams(min_tissue=0.0, target_mpp=0.25, tile_size=256))
    corrupt_tile(path, page=0, index=0)
    with open_slide(path) as r, closing(iter_tiles(r, g, num_threads=2)) as tiles, \
            pytest.raises(SlideError, match=r"bad\.svs: cannot decode level 0 tile \(col 0, row 0\)"):
        next(tiles)


@pytest.mark.parametrize("kwargs", [{"target_mpp": 0}, {"tile_size": 4}, {"min_tissue": 1.5},
                                    {"assume_mpp": -1.0}, {"target_mpp": float("nan")}])
def test_grid_params_validate(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - one case per invalid field, each with its own message
        GridParams(**kwargs)


def test_pixel_size_outside_plausible_range_counts_as_unknown(tmp_path) -> None:
    from slide_fixtures import blob_image, write_plain_tiff

    from pathpt_engine.errors import SlideError
    from pathpt_engine.slides import open_slide
    from pathpt_engine.slides.grid import slide_mpp
    from pathpt_engine.slides.reader import plausible_mpp

    assert plausible_mpp(0.05) and plausible_mpp(20.0) and not plausible_mpp(0.049) and not plausible_mpp(20.1)
    for mpp, known in ((0.25, True), (19.0, True), (0.01, False), (352.78, False)):
        path = write_plain_tiff(tmp_path / f"s{mpp}.tif", blob_image(300, 200), resolution=(1e4 / mpp, 1e4 / mpp))
        with open_slide(path) as r:
            assert r.reported_mpp is not None and abs(r.reported_mpp[0] - mpp) < 1e-6
            assert (r.mpp is not None) == known
            if known:
                assert slide_mpp(r, None) == (pytest.approx(mpp), "slide")
            else:
                with pytest.raises(SlideError, match=rf"s{mpp}\.tif: pixel size {mpp:.4g} µm/px is implausible"):
                    slide_mpp(r, None)
                assert slide_mpp(r, 0.5) == (0.5, "assumed")
