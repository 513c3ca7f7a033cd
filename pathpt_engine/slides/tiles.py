"""Reading the tiles of a `TileGrid`: one tile, or all of them in order with a small thread pool.

Typical use by the feature extractor::

    with open_slide(path) as reader:
        grid = make_grid(reader, tissue_mask(reader), GridParams(target_mpp=0.5, tile_size=224))
        with closing(iter_tiles(reader, grid, num_threads=2, prefetch=64)) as tiles:
            for index, tile in tiles:      # index into grid.coords, tile: (224, 224, 3) uint8 RGB
                ...
"""

from __future__ import annotations

import collections
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
from PIL import Image

from .base import SlideReader
from .grid import TileGrid


def read_tile(reader: SlideReader, grid: TileGrid, index: int) -> np.ndarray:
    """Tile `index` of `grid`: RGB uint8 of shape (tile_size, tile_size, 3).

    Raises:
        SlideError: the region cannot be decoded (the message names the file and the location).
    """
    x, y = (int(v) for v in grid.coords[index])
    region = reader.read_region((x, y), grid.level, (grid.read_size, grid.read_size))
    if grid.read_size == grid.tile_size:
        return region
    img = Image.fromarray(region).resize((grid.tile_size, grid.tile_size), Image.Resampling.BILINEAR)
    return np.asarray(img)


def iter_tiles(
    reader: SlideReader,
    grid: TileGrid,
    num_threads: int = 2,
    prefetch: int = 64,
    indices: Sequence[int] | None = None,
) -> Generator[tuple[int, np.ndarray], None, None]:
    """Yield `(index, tile)` for the tiles of `grid`, in order, read by `num_threads` threads over one reader.

    Signature: ``iter_tiles(reader, grid, num_threads=2, prefetch=64, indices=None)
    -> Iterator[tuple[int, np.ndarray]]``.

    Args:
        reader: an open slide; shared by the threads (readers are thread-safe).
        grid: the tile grid of that slide.
        num_threads: reader threads; 0 reads in the calling thread.
        prefetch: at most this many tiles are read ahead of the consumer (bounds memory).
        indices: which tiles (indices into `grid.coords`), in the order to yield them; default all.

    Yields:
        (index, tile) with tile RGB uint8 (tile_size, tile_size, 3).

    Raises:
        SlideError: a tile fails to decode; raised when that tile's turn comes.

    Closing the generator early (``closing(...)``, ``break`` in a ``with``) cancels the pending reads and joins
    the threads; abandoning it without closing leaves them to the garbage collector.
    """
    order = range(len(grid)) if indices is None else indices
    if num_threads <= 0:
        for i in order:
            yield i, read_tile(reader, grid, i)
        return
    pool = ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="pathpt-tiles")
    pending: collections.deque[tuple[int, Future[np.ndarray]]] = collections.deque()
    todo = iter(order)
    try:
        for i in todo:
            pending.append((i, pool.submit(read_tile, reader, grid, i)))
            if len(pending) >= max(1, prefetch):
                break
        while pending:
            i, fut = pending.popleft()
            tile = fut.result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append((nxt, pool.submit(read_tile, reader, grid, nxt)))
            yield i, tile
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
