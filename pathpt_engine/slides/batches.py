"""The tiles of a `TileGrid` in batches, the one way extraction reads pixels: `iter_tile_batches(reader, grid)`.

It chooses the read itself: where the grid allows (the level has natively decodable tiles, tiles are not resized
after reading, coordinates sit on the level's pixel grid) every batch is composed straight from the level's
native tiles, each native JPEG tile decoded once; elsewhere tiles are read region by region (`tiles.iter_tiles`)
and stacked. Both give the pixels `tiles.read_tile` gives; the composition step (`compose.compose_native`) is the
one `OpenSlideReader.read_region` uses.
"""

from __future__ import annotations

from collections.abc import Generator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .base import SlideReader
from .compose import Key, compose_native, native_keys
from .grid import TileGrid
from .tiles import iter_tiles

Batch = tuple[np.ndarray, np.ndarray]  # (indices into grid.coords int64 [B], uint8 tiles [B, S, S, 3])
Batches = Generator[Batch, None, None]  # closable: closing stops the reads


def iter_tile_batches(reader: SlideReader, grid: TileGrid, batch_size: int = 64, workers: int = 1,
                      ahead: int = 96, reuse: bool = False) -> Batches:
    """(indices, uint8 tiles [B, S, S, 3]) for the whole grid, in order: composed from native tiles where the
    grid allows (`native_tile_batches`), else read region by region by `workers` threads and stacked.

    Args:
        reader: the open slide (shared by the reader threads).
        grid: its tile grid.
        batch_size: tiles per batch (the last may be smaller).
        workers: reader threads (0: read in the consuming thread).
        ahead: about how many grid tiles are read ahead of the consumer.
        reuse: native path only: every batch is written into the same array, so the consumer must be done
            with a batch before it asks for the next (`BatchPrefetcher` is).

    Raises:
        SlideError: a tile fails to decode (raised when its batch's turn comes; the message names the slide
            and the tile).
    """
    native = native_tile_batches(reader, grid, batch_size, workers, ahead, reuse)
    return native if native is not None else _region_batches(reader, grid, batch_size, workers, ahead)


def _region_batches(reader: SlideReader, grid: TileGrid, batch_size: int, workers: int,
                    ahead: int) -> Batches:
    idx: list[int] = []
    tiles: list[np.ndarray] = []
    source = iter_tiles(reader, grid, num_threads=workers, prefetch=ahead)
    try:
        for i, tile in source:
            idx.append(i)
            tiles.append(tile)
            if len(idx) == batch_size:
                yield np.asarray(idx, np.int64), np.stack(tiles)
                idx, tiles = [], []
        if idx:
            yield np.asarray(idx, np.int64), np.stack(tiles)
    finally:
        source.close()


def native_tile_batches(reader: SlideReader, grid: TileGrid, batch_size: int, workers: int = 1, ahead: int = 96,
                        reuse: bool = False) -> Batches | None:
    """The native path of `iter_tile_batches`, or None where the grid does not allow it (no fast path at the
    level, tiles resized after reading, off-grid coordinates).

    The same pixels as `tiles.read_tile` (i.e. `read_region` composing native tiles), without its per-tile
    costs: each native tile is decoded once (by `workers` threads, up to about `ahead` grid tiles in advance),
    copied into the batch array where the grid tiles overlap it, and dropped after its last use.
    """
    size = grid.tile_size
    if grid.read_size != size or len(grid) == 0 or reader.native_tile_size(grid.level) is None:
        return None
    ds = grid.level_downsample
    if grid.level != 0 and not (float(ds).is_integer() and not (grid.coords % int(ds)).any()):
        return None
    tile = reader.native_tile_size(grid.level)
    assert tile is not None  # checked above  # noqa: S101
    lxy = np.rint(grid.coords / ds).astype(np.int64)
    return _compose_batches(reader, grid.level, lxy, size, tile, grid.level_dimensions, batch_size, workers, ahead,
                            reuse)


def _compose_batches(reader: SlideReader, level: int, lxy: np.ndarray, size: int, tile: tuple[int, int],
                     dims: tuple[int, int], batch_size: int, workers: int, ahead: int,
                     reuse: bool) -> Batches:
    keys = [native_keys(int(x), int(y), (size, size), tile, dims) for x, y in lxy]
    last_use: dict[Key, int] = {}
    order: list[tuple[int, Key]] = []  # (first grid tile needing it, key), in order of need
    for i, ks in enumerate(keys):
        for k in ks:
            if k not in last_use:
                order.append((i, k))
            last_use[k] = i
    read = reader.read_native_tile
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pathpt-tiles") if workers > 0 else None
    live: dict[Key, Future[np.ndarray]] = {}
    nxt = 0
    buf = np.empty((batch_size, size, size, 3), np.uint8) if reuse else None

    def fetch(until: int) -> None:  # start decoding every native tile first needed by grid tile < until
        nonlocal nxt
        while nxt < len(order) and order[nxt][0] < until:
            key = order[nxt][1]
            live[key] = pool.submit(read, level, *key) if pool is not None else _done(read(level, *key))
            nxt += 1

    def tile_of(key: Key) -> np.ndarray:
        return live[key].result()

    try:
        for start in range(0, len(keys), batch_size):
            stop = min(start + batch_size, len(keys))
            fetch(stop + ahead)
            out = buf[: stop - start] if buf is not None else np.empty((stop - start, size, size, 3), np.uint8)
            for i in range(start, stop):
                compose_native(out[i - start], int(lxy[i, 0]), int(lxy[i, 1]), keys[i], tile_of, tile)
                for k in keys[i]:
                    if last_use[k] == i:
                        del live[k]
            yield np.arange(start, stop, dtype=np.int64), out
    finally:
        for fut in live.values():
            fut.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _done(value: np.ndarray) -> Future[np.ndarray]:
    fut: Future[np.ndarray] = Future()
    fut.set_result(value)
    return fut
