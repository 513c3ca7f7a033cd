"""`slides.batches.iter_tile_batches`: one entry point that picks native-tile or region reads, same pixels as
`read_tile` either way; `read_region` composes native tiles with the same step."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.slides import batches as batches_mod
from pathpt_engine.slides.batches import iter_tile_batches
from pathpt_engine.slides.grid import GridParams, make_grid
from pathpt_engine.slides.reader import open_slide
from pathpt_engine.slides.tiles import read_tile
from pathpt_engine.slides.tissue import tissue_mask
from pathpt_engine.synth.writer import write_slide


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noisy 0.25 um/px slide whose levels end mid-tile (128 px native tiles)."""
    img = np.random.default_rng(3).integers(0, 256, (700, 900, 3), dtype=np.uint8)
    return write_slide(tmp_path_factory.mktemp("batches") / "s.tiff", img, mpp=0.25, fmt="tiff", tile=128)


def _grids(reader):  # noqa: ANN001, ANN202
    native = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=64, min_tissue=0))
    resized = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.6, tile_size=64, min_tissue=0))
    return {"native": native, "off-grid": replace(native, coords=native.coords + 1), "resized": resized}


@pytest.mark.parametrize("kind", ["native", "off-grid", "resized"])
@pytest.mark.parametrize("workers", [0, 2])
def test_batches_equal_read_tile_whichever_read_is_chosen(slide: Path, kind: str, workers: int, monkeypatch) -> None:
    calls = []
    real = batches_mod._compose_batches
    monkeypatch.setattr(batches_mod, "_compose_batches", lambda *a: calls.append(1) or real(*a))
    with open_slide(slide) as reader:
        grid = _grids(reader)[kind]
        got = list(iter_tile_batches(reader, grid, batch_size=5, workers=workers, ahead=7))
        ref = np.stack([read_tile(reader, grid, i) for i in range(len(grid))])
    assert bool(calls) == (kind == "native")  # native composition only where the grid allows it
    assert all(len(i) == 5 for i, _ in got[:-1]) and 0 < len(got[-1][0]) <= 5
    np.testing.assert_array_equal(np.concatenate([i for i, _ in got]), np.arange(len(grid)))
    np.testing.assert_array_equal(np.concatenate([t for _, t in got]), ref)


def test_read_region_composes_like_the_batches_at_the_level_edge(slide: Path) -> None:
    with open_slide(slide) as fast, open_slide(slide, fast_path=False) as ref:
        for loc, level, size in (((0, 0), 0, (300, 200)), ((768, 640), 0, (200, 100)), ((-64, -32), 0, (128, 96)),
                                 ((512, 384), 1, (300, 200))):
            np.testing.assert_array_equal(fast.read_region(loc, level, size), ref.read_region(loc, level, size))
