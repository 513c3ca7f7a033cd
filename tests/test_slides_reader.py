"""OpenSlideReader: metadata, fast-path pixels against OpenSlide, fallbacks, thread sharing."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import openslide
import pytest
from slide_fixtures import blob_image, corrupt_tile, make_slide, write_plain_tiff, write_rgb_jpeg_svs

from pathpt_engine.errors import SlideError
from pathpt_engine.slides import OpenSlideReader, SlideReader, open_slide
from pathpt_engine.slides.reader import rgba_to_rgb


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("slides")
    img = blob_image(1300, 1100, seed=1)
    return {
        "tiff": make_slide(d / "a.tif", 1300, 1100, fmt="tiff", seed=1),
        "svs": make_slide(d / "a.svs", 1300, 1100, fmt="svs", seed=1, label=img[:120, :200].copy()),
        "rgb-svs": write_rgb_jpeg_svs(d / "rgb.svs", img),
    }


def _openslide_rgb(path: Path, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
    with openslide.OpenSlide(str(path)) as osr:
        return rgba_to_rgb(np.asarray(osr.read_region(location, level, size)))


def test_metadata_tiff_and_svs(slides: dict[str, Path]) -> None:
    with open_slide(slides["tiff"]) as r:
        assert isinstance(r, SlideReader)
        assert r.format == "generic-tiff"
        assert r.dimensions == (1300, 1100)
        assert r.level_count == len(r.level_dimensions) == len(r.level_downsamples) == 3
        assert r.level_dimensions[1] == (650, 550) and r.level_downsamples[1] == 2.0
        assert r.mpp == pytest.approx((0.25, 0.25))
        assert r.objective_power is None
        assert r.associated_image_names == ()
        assert len(r.quickhash) == 64
        assert r.best_level_for_downsample(3.0) == 1 and r.best_level_for_downsample(0.5) == 0
    with open_slide(slides["svs"]) as r:
        assert r.format == "aperio" and r.objective_power == 40.0
        assert r.mpp == pytest.approx((0.25, 0.25))
        assert "label" in r.associated_image_names
        label = r.associated_image("label")
        assert label.dtype == np.uint8 and label.shape == (120, 200, 3)
        with pytest.raises(SlideError, match="no associated image 'macro'"):
            r.associated_image("macro")


def test_thumbnail_and_close(slides: dict[str, Path]) -> None:
    r = open_slide(slides["svs"])
    thumb = r.thumbnail(200)
    assert thumb.dtype == np.uint8 and thumb.ndim == 3 and max(thumb.shape[:2]) == 200
    r.close()
    r.close()  # idempotent
    with pytest.raises(SlideError, match="closed"):
        r.read_region((0, 0), 0, (10, 10))


@pytest.mark.parametrize("kind", ["tiff", "svs", "rgb-svs"])
def test_native_tiles_match_openslide(slides: dict[str, Path], kind: str) -> None:
    path = slides[kind]
    with open_slide(path) as r, openslide.OpenSlide(str(path)) as osr:
        assert r.has_fast_path
        for level in range(r.level_count):
            ds = r.level_downsamples[level]
            if not ds.is_integer():  # OpenSlide cannot address that level's own pixel grid exactly
                continue
            tw, th = r.native_tile_size(level)
            lw, lh = r.level_dimensions[level]
            for row in range(-(-lh // th)):
                for col in range(-(-lw // tw)):
                    tile = r.read_native_tile(level, col, row)
                    assert tile.shape == (min(th, lh - row * th), min(tw, lw - col * tw), 3)
                    ref = rgba_to_rgb(np.asarray(osr.read_region(
                        (int(col * tw * ds), int(row * th * ds)), level, (tile.shape[1], tile.shape[0]))))
                    diff = np.abs(tile.astype(int) - ref).max()
                    assert diff <= 2, f"{kind} level {level} tile ({col},{row}) differs by {diff}"


@pytest.mark.parametrize("kind", ["tiff", "rgb-svs"])
def test_read_region_fast_matches_openslide(slides: dict[str, Path], kind: str) -> None:
    path = slides[kind]
    cases = [((0, 0), 0, (224, 224)), ((300, 170), 0, (500, 333)), ((1200, 1000), 0, (256, 256)),
             ((448, 224), 1, (224, 224)), ((-40, -20), 0, (100, 90)), ((1100, 900), 1, (224, 224)),
             ((5, 3), 1, (50, 50)), ((0, 0), 2, (325, 275))]
    with open_slide(path) as fast, open_slide(path, fast_path=False) as slow:
        for loc, level, size in cases:
            a, b = fast.read_region(loc, level, size), slow.read_region(loc, level, size)
            assert a.shape == b.shape == (size[1], size[0], 3)
            assert np.abs(a.astype(int) - b).max() <= 2, (loc, level, size)
            assert np.array_equal(b, _openslide_rgb(path, loc, level, size))


def test_non_jpeg_tiff_falls_back_to_openslide(tmp_path: Path) -> None:
    img = blob_image(600, 500)
    path = write_plain_tiff(tmp_path / "zlib.tif", img, compression="zlib", resolution=(40000, 40000))
    with open_slide(path) as r:
        assert not r.has_fast_path and r.native_tile_size(0) is None
        assert r.mpp == pytest.approx((0.25, 0.25))
        assert np.array_equal(r.read_region((0, 0), 0, (600, 500)), img)
        assert np.array_equal(r.read_native_tile(0, 2, 1), img[256:500, 512:600])


def test_mpp_from_tiff_tags_and_missing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    img = blob_image(600, 500)
    with open_slide(write_rgb_jpeg_svs(tmp_path / "tags.svs", img, mpp=None, resolution_mpp=0.5)) as r:
        assert "openslide.mpp-x" not in r.properties
        assert r.mpp == pytest.approx((0.5, 0.5))
    with caplog.at_level(logging.WARNING), open_slide(write_plain_tiff(tmp_path / "nores.tif", img)) as r:
        assert r.mpp is None
    assert "no microns-per-pixel" in caplog.text and "nores.tif" in caplog.text


def test_non_ascii_path(tmp_path: Path) -> None:
    folder = tmp_path / "Präparate 组织"
    folder.mkdir()
    for name, fmt in (("Gewebe_ü_é.tif", "tiff"), ("slide.svs", "svs")):
        with open_slide(make_slide(folder / name, 700, 600, fmt=fmt)) as r:
            assert r.dimensions == (700, 600) and r.has_fast_path
            assert r.read_region((0, 0), 0, (64, 64)).shape == (64, 64, 3)
    with pytest.raises(SlideError, match="Präparate 组织/missing_ü.svs: no such file"):
        open_slide(folder / "missing_ü.svs")


@pytest.mark.parametrize("fast", [True, False])
def test_threads_share_one_reader_with_a_bad_tile(tmp_path: Path, fast: bool) -> None:
    path = make_slide(tmp_path / "bad.tif", 1024, 768, fmt="tiff")
    corrupt_tile(path, page=0, index=5)  # level 0, col 1, row 1
    locs = [(x, y) for y in range(0, 768, 256) for x in range(0, 1024, 256)]
    with open_slide(path, fast_path=fast) as r:
        expected = {loc: r.read_region(loc, 0, (256, 256)) for loc in locs if loc != (256, 256)}
    errors: list[str] = []
    mismatches: list[tuple[int, int]] = []

    def work(reader: OpenSlideReader) -> None:
        for _ in range(3):
            for loc in locs:
                try:
                    tile = reader.read_region(loc, 0, (256, 256))
                except SlideError as exc:
                    errors.append(str(exc))
                    continue
                if not np.array_equal(tile, expected[loc]):
                    mismatches.append(loc)

    with open_slide(path, fast_path=fast) as r:
        threads = [threading.Thread(target=work, args=(r,)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert np.array_equal(r.read_region((0, 0), 0, (256, 256)), expected[(0, 0)])
    assert not mismatches
    assert len(errors) == 4 * 3  # only the corrupt tile fails, every time, in every thread
    assert all("bad.tif" in e and "(256, 256)" in e or "col 1, row 1" in e for e in errors)


def test_returned_arrays_are_private(slides: dict[str, Path]) -> None:
    with open_slide(slides["tiff"]) as r:
        for read in (lambda: r.read_region((0, 0), 0, (256, 256)), lambda: r.read_native_tile(0, 0, 0),
                     lambda: r.read_region((10, 10), 0, (100, 100)), lambda: r.read_region((0, 0), 1, (300, 300))):
            first = read()
            assert first.flags.writeable
            keep = first.copy()
            first[:] = 7
            assert np.array_equal(read(), keep)


def test_thumbnail_of_a_large_single_level_slide_reads_in_bands(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import pathpt_engine.slides.reader as reader_module

    img = blob_image(1000, 700, seed=2)
    path = write_plain_tiff(tmp_path / "flat.tif", img, compression="jpeg", resolution=(40000, 40000))
    with open_slide(path) as r:
        assert r.level_count == 1
        whole = r.thumbnail(100)
        monkeypatch.setattr(reader_module, "_WHOLE_LEVEL_PIXELS", 40_000)  # force bands of 10 rows
        calls: list[tuple[int, int]] = []
        original = r.read_region
        monkeypatch.setattr(r, "read_region", lambda loc, lv, size: calls.append(size) or original(loc, lv, size))
        banded = r.thumbnail(100)
    assert banded.shape == whole.shape == (70, 100, 3)
    assert len(calls) > 10 and max(w * h for w, h in calls) <= 40_000
    assert np.abs(banded.astype(int) - whole).mean() < 3
