"""The one rasteriser (`pathpt_engine.export.raster.paint_tiles`): PNG/figure colours, the GUI's cell grid and the
TIFF overlay are views of it, so they agree on where every tile lands, on the grid and off it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from pathpt_engine.export.raster import paint_tiles, rasterize, tile_index_grid
from pathpt_engine.export.tiff_overlay import overlay_level0

T = 256


def _scores(coords: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(coords=np.asarray(coords), tile_size_level0=T)


def test_off_grid_tile_lands_where_most_of_it_lies() -> None:
    coords = np.array([[0, 0], [T, 0], [int(2.6 * T), 0], [int(0.3 * T), T]])  # tile 2 mostly in cell 3, tile 3 in 0
    origin, index = tile_index_grid(coords, T)
    assert origin == (0, 0)
    assert index.tolist() == [[0, 1, -1, 2], [3, -1, -1, -1]]


@pytest.mark.parametrize("offset", [0, 37])
def test_grid_and_colour_raster_agree(offset: int) -> None:
    rng = np.random.default_rng(5)
    coords = rng.integers(0, 12 * T, (60, 2)) + offset  # off the lattice and overlapping
    origin, index = tile_index_grid(coords, T)
    rgba = np.zeros((len(coords), 4), np.uint8)
    rgba[:, 0], rgba[:, 1], rgba[:, 3] = np.arange(len(coords)), 1, 255  # colour = row id
    region = (origin[0], origin[1], index.shape[1] * T, index.shape[0] * T)
    canvas = rasterize(_scores(coords), rgba, region, float(T))
    from_colours = np.where(canvas[..., 3] > 0, canvas[..., 0].astype(np.int32), -1)
    np.testing.assert_array_equal(from_colours, index)


@pytest.mark.parametrize("downsample", [float(T), 16.0])  # one pixel per tile (vectorised) and blocks (loop)
def test_later_tile_wins_and_transparent_tiles_cover_nothing(downsample: float) -> None:
    coords = np.array([[0, 0], [0, 0], [T, 0], [T, 0]])
    rgba = np.array([[10, 0, 0, 255], [20, 0, 0, 255], [30, 0, 0, 255], [40, 0, 0, 0]], np.uint8)
    canvas = rasterize(_scores(coords), rgba, (0, 0, 2 * T, T), downsample)
    px = int(T / downsample)
    assert canvas[0, 0, 0] == 20 and canvas[px - 1, px - 1, 0] == 20  # the later of two at the same place
    assert canvas[0, px, 0] == 30 and canvas[0, px, 3] == 255  # the transparent tile left tile 2's colour
    idx = paint_tiles(coords, T, (0, 0, 2 * T, T), downsample, np.arange(4), background=-1)
    assert idx[0, 0] == 1 and idx[0, px] == 3


def test_region_clips_and_keeps_one_pixel_tiles() -> None:
    coords = np.array([[-T, -T], [0, 0], [10 * T, 0]])
    rows = np.arange(3)
    idx = paint_tiles(coords, T, (0, 0, 2 * T, 2 * T), 4 * T, rows, background=-1)  # tiles under a pixel still show
    assert idx.shape == (1, 1) and idx[0, 0] == 1
    assert paint_tiles(coords, T, (0, 0, T, T), 1.0, rows, background=-1, paint=np.array([True, False, True])).max() == -1
    assert paint_tiles(coords, T, (0, 0, 2 * T, 2 * T), 4 * T, rows, background=-1, cover_one=False).max() == -1


def test_a_pixel_takes_the_tile_holding_its_centre() -> None:
    """Tile edges at exactly half a pixel: the pixel goes to the tile that holds its centre, at every parity."""
    coords = np.array([[0, 0], [224, 0], [560, 0]])  # at downsample 64 the edges fall on 0, 3.5, 7, 8.75, 12.25 px
    idx = paint_tiles(coords, 224, (0, 0, 832, 64), 64.0, np.arange(3), background=-1)
    assert idx[0, 3] == 1  # pixel 3's centre (224) is tile 1's first column
    centres = (np.arange(idx.shape[1]) + 0.5) * 64
    want = [max((k for k in range(3) if coords[k, 0] <= c < coords[k, 0] + 224), default=-1) for c in centres]
    assert idx[0].tolist() == want


def test_tiff_overlay_and_png_raster_agree() -> None:
    """The TIFF overlay's level 0 is the PNG rasteriser's picture at the same integer downsample."""
    rng = np.random.default_rng(3)
    coords = rng.integers(0, 20 * T, (80, 2))
    rgba = rng.integers(1, 256, (80, 4)).astype(np.uint8)
    tiff = overlay_level0(_scores(coords), rgba, (20 * T, 20 * T), 16)
    png = rasterize(_scores(coords), rgba, (0, 0, 20 * T, 20 * T), 16.0)
    np.testing.assert_array_equal(tiff, png)


def test_grid_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        tile_index_grid(np.zeros((0, 2)), T)
    with pytest.raises(ValueError, match="tile_size"):
        tile_index_grid(np.zeros((1, 2)), 0)
