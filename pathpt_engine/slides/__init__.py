"""Slides: reader protocol + OpenSlide reader (with a JPEG-tile fast path), tissue mask, tile grid, tile reading.

The tiling job (tissue + grid + coords h5 for many slides) is `pathpt_engine.features.tiling`: it writes the
feature store's coords files, so it lives in `features`, which builds on this package.
"""

from .base import SlideReader
from .batches import iter_tile_batches
from .grid import GridParams, TileGrid, make_grid
from .reader import OpenSlideReader, open_slide
from .tiles import iter_tiles, read_tile
from .tissue import TissueMask, TissueParams, tissue_mask

__all__ = [
    "GridParams",
    "OpenSlideReader",
    "SlideReader",
    "TileGrid",
    "TissueMask",
    "TissueParams",
    "iter_tile_batches",
    "iter_tiles",
    "make_grid",
    "open_slide",
    "read_tile",
    "tissue_mask",
]
