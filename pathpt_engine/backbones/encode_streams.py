"""Encoding batches on the CPU without the threads fighting: parallel single-threaded encoder streams.

On a CPU with T torch threads, one forward pass with T intra-op (OpenMP) threads synchronises them at every
operator; while tile reading and preprocessing run on the same cores, a descheduled OpenMP thread stalls its team
and the others spin at the barrier. Running S forward passes side by side, each on its own thread with T // S
intra-op threads (`encode_batches` with ``streams=S``), has smaller teams or, with S = T, no barriers at all:
reading and preprocessing fill the gaps. The default is S = min(T, 2) (2 single-threaded streams on the 2-core
machine this was measured on; on bigger CPUs, two half-size teams, so that memory stays at a few batches).
The extraction benchmark measures the encoder alone with one stream and with S streams and takes the faster as
its baseline.

On CUDA, `encode_batches` pipelines instead (`TileEncoder.launch`): the next batch's host-to-device copy (from
pinned memory, on a side stream) and the host's work overlap the current batch's forward pass, and results come
back into pinned buffers without a blocking `.cpu()`; `CUDA_IN_FLIGHT` batches are queued on the device.

Torch's intra-op thread count is per thread once a thread has used it, and `torch.set_num_threads` also sets the
default of threads that have not yet; `torch_threads_restored` puts the caller's count back as the default after.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from .encode import TileEncoder


def one_torch_thread() -> None:
    """Thread initialiser: this thread's torch operators run on one intra-op thread."""
    torch.set_num_threads(1)


@contextlib.contextmanager
def torch_threads_restored() -> Iterator[int]:
    """Yield the calling thread's torch thread count; restore it (and the process default) on exit."""
    n = torch.get_num_threads()
    try:
        yield n
    finally:
        torch.set_num_threads(n)


def resolve_streams(device: torch.device, requested: int | None = None) -> int:
    """Encoder streams: `requested`, or by default min(torch threads, 2) on CPU; always 1 on CUDA."""
    if requested is not None and requested <= 0:
        raise ValueError(f"encoder streams must be positive, got {requested}")
    if device.type != "cpu":
        return 1
    return requested if requested is not None else max(1, min(torch.get_num_threads(), 2))


CUDA_IN_FLIGHT = 2  # batches queued on the GPU (double buffering: one computing, the next copied in)


def reader_threads(device: torch.device, requested: int, cores: int | None = None) -> int:
    """Tile reader threads: `requested` on the CPU (the encoder needs the cores); on CUDA at least the cores less
    two (the encode and batcher threads), at most 16, since JPEG decoding is then what feeds the GPU."""
    if device.type != "cuda":
        return requested
    cores = cores or os.cpu_count() or 1
    return max(requested, min(16, cores - 2))


def encode_batches(encoder: TileEncoder, batches: Iterable[tuple[np.ndarray, torch.Tensor]],
                   streams: int = 1) -> Generator[tuple[np.ndarray, np.ndarray], None, None]:
    """(indices, batch) -> (indices, float32 embeddings), in input order.

    On CUDA: pipelined (`pipelined`), `streams` is ignored.

    ``streams == 1``: encoded in the calling thread with its torch threads. ``streams > 1``: that many worker
    threads, each with (calling thread's torch threads) // streams torch threads (at least 1), encode batches
    concurrently (one more is queued so none waits); call inside `torch_threads_restored`. Closing the iterator
    early waits for the batches in flight.
    """
    if encoder.device.type == "cuda":
        yield from pipelined(encoder, batches)
        return
    if streams <= 1:
        for idx, x in batches:
            yield idx, encoder.encode(x)
        return
    per_stream = max(1, torch.get_num_threads() // streams)
    pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="pathpt-encode",
                              initializer=torch.set_num_threads, initargs=(per_stream,))
    try:
        yield from _in_order(batches, lambda x: pool.submit(encoder.encode, x), ahead=streams,
                             drop=lambda fut: fut.cancel())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _in_order(batches: Iterable[tuple[np.ndarray, torch.Tensor]], start: Callable[[torch.Tensor], Any],
              ahead: int, drop: Callable[[Any], object]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Start each batch (`start` returns a handle with `.result()`), keep `ahead` started beyond the one being
    handed back, and yield (indices, result) in input order; on early close `drop` each handle still pending."""
    pending: collections.deque[tuple[np.ndarray, Any]] = collections.deque()
    try:
        for idx, x in batches:
            pending.append((idx, start(x)))
            if len(pending) > ahead:
                i, handle = pending.popleft()
                yield i, handle.result()
        while pending:
            i, handle = pending.popleft()
            yield i, handle.result()
    finally:
        for _, handle in pending:
            drop(handle)


def pipelined(encoder: TileEncoder, batches: Iterable[tuple[np.ndarray, torch.Tensor]],
              depth: int = CUDA_IN_FLIGHT) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`encoder.launch` each batch and hand results back in order, `depth` batches behind (so the device always
    has the next batch queued). Closing early waits for the batches in flight."""
    yield from _in_order(batches, encoder.launch, ahead=depth - 1, drop=lambda h: h.result())
