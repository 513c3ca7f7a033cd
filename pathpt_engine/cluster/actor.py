"""The Ray worker: one per GPU, holds the backbone and extracts one slide per call.

Imported only by the driver (it imports Ray). The worker calls the same `extract_slide` the single-process path
runs, so outputs are identical; neither the model nor pixels travel through the object store (slides are read from
storage every node mounts at the same path, or staged to local disk first).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar, cast

try:
    import ray
except ImportError:  # the optional extra is missing: importable, not usable (import_ray raises)
    ray = None  # type: ignore[assignment]
import torch

from ..backbones.encode import TileEncoder, resolve_device, resolve_precision
from ..errors import PathPTError
from ..features.extract import ExtractOptions, extract_slide
from .base import ClusterOptions
from .staging import Stager

log = logging.getLogger(__name__)
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _io_group(method: _Method) -> _Method:
    """Put an actor method in the "io" concurrency group. `ray.method` only sets an attribute on the function and
    returns it; its stubs type the result as a remote method, hence the cast."""
    return cast(_Method, ray.method(concurrency_group="io")(method)) if ray is not None else method


class _CountingEncoder(TileEncoder):
    """A `TileEncoder` that counts the batches it is given (the ledger records encoder calls per slide): `encode`
    calls on the CPU, `launch` calls on CUDA (a launch that falls back to `encode` counts once)."""

    calls: int = 0
    _launching: bool = False

    def encode(self, x: torch.Tensor) -> Any:
        if not self._launching:
            self.calls += 1
        return super().encode(x)

    def launch(self, x: torch.Tensor) -> Any:
        self.calls += 1
        self._launching = True
        try:
            return super().launch(x)
        finally:
            self._launching = False


class ExtractWorker:
    """Holds the backbone on its device; `extract(path)` runs one slide and returns a plain result dict."""

    def __init__(self, opts: ExtractOptions, out_dir: str, copts: ClusterOptions, slot: int) -> None:
        from ..backbones.registry import load_backbone

        self.gpu_ids = [str(g) for g in ray.get_gpu_ids()]
        device = opts.device  # "cpu" stays on the CPU even with a GPU assigned
        if device == "auto" or device.startswith("cuda"):
            device = "cuda" if self.gpu_ids and torch.cuda.is_available() else "cpu"
        if device == "cpu" and copts.cpus_per_worker:
            torch.set_num_threads(copts.cpus_per_worker)
        self.opts = replace(opts, device=device)
        self.out_dir = Path(out_dir)
        self.faults = dict(copts.fault_injection)
        dev = resolve_device(device)
        t0 = time.monotonic()
        self.model = load_backbone(opts.backbone, opts.weights, device=str(dev))
        self.encoder = _CountingEncoder(self.model, dev, resolve_precision(opts.precision, dev), opts.batch_size)
        self.load_s = time.monotonic() - t0
        self.stager = Stager(copts.stage_dir, slot) if copts.stage_dir is not None else None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="pathpt-stage") if self.stager else None
        self._staged: dict[str, Future[Path]] = {}
        self.slot = slot

    def info(self) -> dict[str, Any]:
        """Where this worker runs: pid, node, assigned GPU ids, torch device, backbone load seconds."""
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "gpu_ids": self.gpu_ids,
                "device": str(self.encoder.device), "load_s": self.load_s, "slot": self.slot}

    @_io_group
    def stage(self, path: str) -> None:
        """Start copying `path` to the stage folder (runs while the current slide is being encoded)."""
        if self._pool is not None and path not in self._staged:
            self._staged[path] = self._pool.submit(self.stager.stage, path)  # type: ignore[union-attr]

    def extract(self, path: str) -> dict[str, Any]:
        """Extract one slide; a bad slide comes back as status `failed` with the error message."""
        self._act_out_fault(Path(path).stem)
        calls0, t0 = self.encoder.calls, time.monotonic()
        pixels = self._staged_copy(path)
        try:
            r = extract_slide(path, self.out_dir, self.model, self.opts, encoder=self.encoder, pixels_from=pixels)
        except PathPTError as exc:
            return {"slide": Path(path).stem, "path": path, "status": "failed", "reason": str(exc),
                    "seconds": time.monotonic() - t0, **self._tags(calls0)}
        finally:
            if pixels is not None and self.stager is not None:
                self.stager.release(path)
        return {"slide": r.slide_name, "path": path, "status": "skipped" if r.skipped else "done",
                "n_tiles": r.n_tiles, "seconds": time.monotonic() - t0, "output": r.output,
                **self._tags(calls0)}

    def _tags(self, calls0: int) -> dict[str, Any]:
        return {"encode_calls": self.encoder.calls - calls0, "pid": os.getpid(), "gpu_ids": self.gpu_ids}

    def _staged_copy(self, path: str) -> Path | None:
        if self.stager is None:
            return None
        self.stage(path)
        try:
            return self._staged.pop(path).result()
        except OSError as exc:
            log.warning("%s: staging failed (%s); reading it in place", path, exc)
            return None

    def _act_out_fault(self, slide: str) -> None:
        fault = self.faults.get(slide)
        if fault == "crash":
            os._exit(3)
        if fault == "hang":
            time.sleep(10**6)
        if fault == "slow":
            time.sleep(1.0)


def worker_class(copts: ClusterOptions) -> Any:
    """The Ray actor class for `ExtractWorker` (extract calls run one at a time; staging alongside)."""
    # ray's stubs omit `concurrency_groups`, a documented actor option that ray.remote accepts at run time
    return ray.remote(concurrency_groups={"io": 1})(ExtractWorker)  # type: ignore[call-overload]
