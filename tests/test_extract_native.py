"""Batches composed straight from native tiles: the same pixels as read_tile, edges, fallbacks, errors."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.errors import SlideError
from pathpt_engine.features.extract import ExtractOptions, tile_source
from pathpt_engine.slides.batches import native_tile_batches
from pathpt_engine.slides.grid import GridParams, make_grid
from pathpt_engine.slides.reader import open_slide
from pathpt_engine.slides.tiles import read_tile
from pathpt_engine.slides.tissue import tissue_mask
from pathpt_engine.synth.writer import write_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.25 um/px slide whose levels end mid-tile (1504 x 1208, 128 px tiles), noisy so every pixel matters."""
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (1208, 1504, 3), dtype=np.uint8)
    return write_slide(tmp_path_factory.mktemp("native") / "odd.tiff", img, mpp=0.25, fmt="tiff", tile=128)


def _all(batches) -> tuple[np.ndarray, np.ndarray]:
    out = list(batches)
    return np.concatenate([i for i, _ in out]), np.concatenate([a for _, a in out])


@pytest.mark.parametrize(("mpp", "size", "workers"), [(0.5, 224, 2), (0.5, 100, 0), (0.25, 96, 1), (1.0, 64, 1)])
def test_native_batches_equal_read_tile(slide: Path, mpp: float, size: int, workers: int) -> None:
    with open_slide(slide) as reader:
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=mpp, tile_size=size, min_tissue=0))
        assert grid.read_size == size and len(grid) > 4
        batches = native_tile_batches(reader, grid, 5, workers, ahead=7)
        assert batches is not None
        idx, tiles = _all(batches)
        ref = np.stack([read_tile(reader, grid, i) for i in range(len(grid))])
    np.testing.assert_array_equal(idx, np.arange(len(grid)))
    np.testing.assert_array_equal(tiles, ref)


def test_tiles_past_the_level_edge_are_white_like_read_region(slide: Path) -> None:
    with open_slide(slide) as reader:
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=64, min_tissue=0))
        lw, lh = grid.level_dimensions
        # move the last tile so that it sticks out of the level (read_region pads with white)
        coords = grid.coords.copy()
        coords[-1] = ((lw - 40) * 2, (lh - 30) * 2)
        grid = replace(grid, coords=coords)
        _, tiles = _all(native_tile_batches(reader, grid, 4, 1))
        ref = read_tile(reader, grid, len(grid) - 1)
    assert (ref[30:, :] == 255).all() and (ref[:, 40:] == 255).all() and not (ref[:30, :40] == 255).all()
    np.testing.assert_array_equal(tiles[-1], ref)


def test_fallback_to_single_tiles_when_the_grid_does_not_allow(slide: Path) -> None:
    opts = ExtractOptions(batch_size=4, workers=1)
    with open_slide(slide) as reader:
        resized = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.6, tile_size=64, min_tissue=0))
        assert resized.read_size != resized.tile_size and native_tile_batches(reader, resized, 4) is None
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=64, min_tissue=0))
        odd = replace(grid, coords=grid.coords + 1)  # not on the level's pixel grid
        assert native_tile_batches(reader, odd, 4) is None
        source, batched = tile_source(reader, odd, opts)
        assert not batched
        source.close()
    with open_slide(slide, fast_path=False) as reader:
        assert native_tile_batches(reader, grid, 4) is None


class _Broken:
    """A reader whose native tile (1, 0) fails to decode."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def native_tile_size(self, level: int) -> tuple[int, int] | None:
        return self.inner.native_tile_size(level)

    def read_native_tile(self, level: int, col: int, row: int) -> np.ndarray:
        if (col, row) == (1, 0):
            raise SlideError("odd.tiff: cannot decode level 1 tile (col 1, row 0)")
        return self.inner.read_native_tile(level, col, row)


def test_decode_errors_surface_and_threads_are_joined(slide: Path) -> None:
    with open_slide(slide) as reader:
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=64, min_tissue=0))
        batches = native_tile_batches(_Broken(reader), grid, 4, workers=2)
        with pytest.raises(SlideError, match="cannot decode"):
            _all(batches)
        early = native_tile_batches(reader, grid, 4, workers=2)
        next(early)
        early.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("pathpt-tiles")]


def test_reused_batch_array_is_never_seen_twice(slide: Path) -> None:
    """A transform that returns a view of its input must still get each batch's own pixels (the prefetcher
    copies such a result, since the source overwrites its array for the next batch)."""
    import torch

    from pathpt_engine.backbones.encode import BatchPrefetcher

    with open_slide(slide) as reader:
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=64, min_tissue=0))
        ref = np.stack([read_tile(reader, grid, i) for i in range(len(grid))])
        source = native_tile_batches(reader, grid, 3, 1, reuse=True)
        with BatchPrefetcher(source, 3, torch.from_numpy, depth=4, batched=True) as batches:
            got = [(idx, x.numpy()) for idx, x in batches]
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), np.arange(len(grid)))
    np.testing.assert_array_equal(np.concatenate([x for _, x in got]), ref)
