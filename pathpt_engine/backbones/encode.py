"""Batched image encoding: device choice, a tile-prefetching thread, and an encoder that survives one OOM.

Used by feature extraction and the extraction benchmark. Tiles are decoded by reader threads (the tile iterator),
stacked and preprocessed by one batcher thread into a bounded queue (pinned memory on CUDA), and encoded in the
calling thread, so decoding overlaps with the forward pass. Every thread is joined on normal exit, on error and
on cancel (closing the iterator).
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..errors import DeviceMemoryError, PathPTError
from .base import Backbone, Preprocess
from .fast_preprocess import FastPreprocess

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU raises PathPTError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise PathPTError(f"device {name!r} requested but torch sees no CUDA GPU (use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise PathPTError(f"unknown device {name!r}; use auto, cpu or cuda")
    return torch.device(name)


def describe_device(device: torch.device) -> str:
    """Human-readable device line: GPU name and memory, or CPU threads."""
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(idx)
        return f"cuda:{idx} {props.name} ({props.total_memory / 2**30:.1f} GiB)"
    return f"cpu ({torch.get_num_threads()} torch threads, {os.cpu_count()} cores)"


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for `precision` ("auto": bf16 on CUDA, fp32 on CPU); None means plain fp32."""
    if precision not in PRECISIONS:
        raise PathPTError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise PathPTError("precision fp16 needs a CUDA device (use fp32 or bf16 on CPU)")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class BatchPrefetcher:
    """Background thread: (index, tile) pairs -> (indices, preprocessed batch) in a bounded queue.

    With ``batched=True`` the iterable yields (indices, stacked uint8 tiles [B, H, W, 3]) instead of single tiles
    (`batch_size` is then the source's business). `thread_init` runs first in the thread (e.g.
    `encode_streams.one_torch_thread`). Use as a context manager and
    iterate; leaving the block (normally, by error or by cancel) stops and joins the
    thread and closes the tile iterator in that thread.
    """

    _DONE = object()

    def __init__(self, tiles: Iterable[tuple[Any, np.ndarray]], batch_size: int,  # (int, tile) or (indices, batch)
                 transform: Callable[[np.ndarray], torch.Tensor], depth: int = 3, pin: bool = False,
                 thread_init: Callable[[], None] | None = None, batched: bool = False) -> None:
        if batch_size <= 0 or depth <= 0:
            raise ValueError("BatchPrefetcher: batch_size and depth must be positive")
        self._tiles = tiles
        self._batch_size = batch_size
        self._transform = transform
        self._pin = pin
        self._thread_init = thread_init
        self._batched = batched
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pathpt-batcher", daemon=True)

    def __enter__(self) -> BatchPrefetcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._thread.join()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _emit(self, idx: list[int] | np.ndarray, tiles: list[np.ndarray] | np.ndarray) -> bool:
        arr = tiles if isinstance(tiles, np.ndarray) else np.stack(tiles)
        x = self._transform(arr)
        if self._pin:
            x = x.pin_memory()
        elif self._batched and _shares_memory(x, arr):  # the source may reuse its array for the next batch
            x = x.clone()
        return self._put((np.asarray(idx, dtype=np.int64), x))

    def _run(self) -> None:
        it = iter(self._tiles)
        try:
            if self._thread_init is not None:
                self._thread_init()
            if self._batched:
                for idx_b, batch in it:
                    if self._stop.is_set() or not self._emit(np.asarray(idx_b, dtype=np.int64), batch):
                        return
                self._put(self._DONE)
                return
            idx: list[int] = []
            tiles: list[np.ndarray] = []
            for i, tile in it:
                if self._stop.is_set():
                    return
                idx.append(int(i))
                tiles.append(tile)
                if len(idx) == self._batch_size:
                    if not self._emit(idx, tiles):
                        return
                    idx, tiles = [], []
            if idx and not self._emit(idx, tiles):
                return
            self._put(self._DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread and re-raised there
            self._put(exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _shares_memory(x: torch.Tensor, arr: np.ndarray) -> bool:
    """Whether CPU tensor `x` lies (partly) in the memory of `arr`."""
    if x.device.type != "cpu" or arr.nbytes == 0:
        return False
    x0, a0 = x.untyped_storage().data_ptr(), arr.ctypes.data
    return x0 < a0 + arr.nbytes and a0 < x0 + x.untyped_storage().nbytes()


@dataclass
class InFlight:
    """A batch launched by `TileEncoder.launch`: its embeddings once `result()` returns.

    `host` (pinned) receives them when `done` fires; `keep` holds the pinned input until its copy has run."""

    value: np.ndarray | None = None
    host: torch.Tensor | None = None
    done: torch.cuda.Event | None = None
    keep: torch.Tensor | None = None

    def result(self) -> np.ndarray:
        if self.value is None:
            self.done.synchronize()  # type: ignore[union-attr]
            self.value, self.host, self.keep = self.host.numpy(), None, None  # type: ignore[union-attr]
        return self.value


@dataclass
class TileEncoder:
    """Runs `backbone.encode_image` on batches; on device out-of-memory halves the batch once and continues.

    Attributes:
        backbone: the frozen model (already on `device`).
        device: where to run.
        autocast: autocast dtype or None for fp32.
        batch_size: current chunk size (halved once on OOM).
    """

    backbone: Backbone
    device: torch.device
    autocast: torch.dtype | None = None
    batch_size: int = 64
    halved: bool = False

    _copy_stream: torch.cuda.Stream | None = None

    @property
    def preprocess_on_device(self) -> bool:
        """On CUDA, batches travel as uint8 tiles and are preprocessed on the GPU (4x less to copy, no CPU work)."""
        return self.device.type == "cuda"

    def host_transform(self, tiles: np.ndarray) -> torch.Tensor:
        """What the batcher thread does to a stacked uint8 batch [B, H, W, 3] before it is queued.

        On CPU: `FastPreprocess` (the backbone's `Preprocess` maths, computed as strided convolutions and one fused
        normalisation; equal to it within float rounding) when the backbone uses a plain `Preprocess`.
        """
        if self.preprocess_on_device:  # a Pillow resize (the "pil" resampler) still runs here, on the host
            pre = getattr(self.backbone, "preprocess", None)
            return pre.host_resize(tiles) if isinstance(pre, Preprocess) else torch.from_numpy(tiles)
        if self._host_preprocess is None:
            raise TypeError(f"{type(self.backbone).__name__} has no preprocess: it takes preprocessed images only")
        return self._host_preprocess(tiles)

    def __post_init__(self) -> None:
        if self.batch_size <= 0:
            raise ValueError(f"TileEncoder: batch_size must be positive, got {self.batch_size}")
        pre = getattr(self.backbone, "preprocess", None)
        self._host_preprocess: Callable[[np.ndarray], torch.Tensor] | None = (
            FastPreprocess(pre) if type(pre) is Preprocess else pre)
        self.channels_last = self.device.type == "cuda"
        if self.channels_last:
            # Module.to(memory_format=...) is documented and works; torch's typed overloads leave it out
            self.backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._encode_on_device(x.to(self.device, non_blocking=True)).cpu()

    def _encode_on_device(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocess (uint8 input), layout and autocast as configured, encode; float32 embeddings on the device."""
        if x.dtype == torch.uint8:
            x = self.backbone.preprocess(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = (torch.autocast(self.device.type, dtype=self.autocast) if self.autocast is not None
               else contextlib.nullcontext())
        with ctx:
            return self.backbone.encode_image(x).float()

    def launch(self, x: torch.Tensor) -> InFlight:
        """Queue one batch on the GPU without waiting for it (CUDA; elsewhere it is encoded at once).

        The host-to-device copy runs on a side stream (from `x`, pinned by the batcher), the preprocessing and
        forward pass on the current stream once the copy is in, and the embeddings come back into pinned host memory,
        non-blocking. `collect` waits for that batch only, so the next batch's copy and the host work overlap this
        one's compute. A batch larger than `batch_size`, or one that runs out of memory, goes through `encode`
        (chunks, halving once) after the batches in flight.
        """
        if self.device.type != "cuda" or len(x) > self.batch_size:
            return InFlight(self.encode(x))
        try:
            return self._launch(x)
        except torch.OutOfMemoryError:
            pass
        torch.cuda.synchronize(self.device)  # outside the except block: the failed launch's tensors are gone
        return InFlight(self.encode(x))

    @torch.inference_mode()
    def _launch(self, x: torch.Tensor) -> InFlight:
        if self._copy_stream is None:
            self._copy_stream = torch.cuda.Stream(self.device)
        compute = torch.cuda.current_stream(self.device)
        # no wait on compute here: the copy of this batch overlaps the forward pass of the previous one (the
        # allocator keeps per-stream pools, and record_stream below guards x_dev's block until compute is done)
        with torch.cuda.stream(self._copy_stream):
            x_dev = x.to(self.device, non_blocking=True)
        compute.wait_stream(self._copy_stream)
        x_dev.record_stream(compute)  # allocated on the copy stream, used on the compute stream
        out = self._encode_on_device(x_dev)
        host = torch.empty(out.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(out, non_blocking=True)
        done = torch.cuda.Event()
        done.record(compute)
        return InFlight(None, host, done, x)

    def encode(self, x: torch.Tensor) -> np.ndarray:
        """Preprocessed images [B, 3, H, W] (or uint8 tiles [B, H, W, 3], preprocessed on the device) -> float32
        embeddings [B, D]."""
        parts = []
        i = 0
        while i < len(x):
            chunk = x[i : i + self.batch_size]
            try:
                parts.append(self._forward(chunk))
                i += len(chunk)
                continue
            except torch.OutOfMemoryError:
                if self.halved or self.batch_size == 1:
                    raise DeviceMemoryError(f"out of memory on {self.device} at batch size {self.batch_size} "
                                            "(already halved once); use a smaller --batch-size") from None
            # out of memory: handled here, after the except block, so that the traceback (and the failed batch's
            # device tensors in its frames) is gone before the cache is emptied
            del chunk
            self.halved = True
            self.batch_size = max(1, self.batch_size // 2)
            log.warning("out of memory on %s: halving the batch size to %d and continuing", self.device,
                        self.batch_size)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
                torch.cuda.empty_cache()
        return torch.cat(parts).numpy()
