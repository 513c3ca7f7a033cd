"""Feature extraction job: slides -> tile grid (coords h5, reused) -> backbone embeddings -> feature h5.

Layout under the output folder ``OUT``:

- ``OUT/coords/<slide>.h5``: the tiling (coords + attributes), shared by every backbone;
- ``OUT/<backbone>/h5_files/<slide>.h5``: features [N, D] + coords, as PathPT reads them.

A slide is skipped when its feature file already holds the same slide, backbone, weights hash and tile parameters
(``force`` redoes it). Tiles are decoded by reader threads ahead of the encoder and encoded in batches (see
`pathpt_engine.backbones.encode`); progress reports tiles/s and ETA, and cancellation is checked at every batch.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..backbones.base import Backbone
from ..backbones.encode import (
    BatchPrefetcher,
    TileEncoder,
    describe_device,
    resolve_device,
    resolve_precision,
)
from ..backbones.encode_streams import (
    encode_batches,
    one_torch_thread,
    reader_threads,
    resolve_streams,
    torch_threads_restored,
)
from ..errors import FeatureFileError, SlideError
from ..jobs import Eta, Job, Progress, check_cancel, run_job
from ..slides.base import SlideReader
from ..slides.batches import Batches
from ..slides.grid import GridParams, TileGrid
from ..slides.tissue import TissueParams
from .ledger import Ledger, LedgerEntry
from .store import grid_from_coords, read_coords, stale_reason, write_features

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract.

    Attributes:
        backbone: registry name.
        weights: weights folder (None: the registry default / environment variable).
        device: "auto", "cpu" or "cuda[:i]".
        batch_size: tiles per forward pass.
        precision: "auto" (bf16 on CUDA, fp32 on CPU), "fp32", "bf16" or "fp16" (CUDA only).
        workers: tile reader threads on the CPU; on CUDA at least the cores less two (at most 16), since decoding
            then feeds the GPU (`encode_streams.reader_threads`).
        prefetch_batches: batches decoded ahead of the encoder.
        tile_size: tile edge at `target_mpp` (None: the backbone's preference).
        target_mpp: tile microns per pixel (None: the backbone's preference).
        min_tissue: minimum tissue fraction of a kept tile.
        assume_mpp: level-0 um/px for slides that do not state it.
        force: redo slides whose features are up to date.
        encoder_streams: forward passes run side by side on CPU, sharing the torch threads (None: min(threads, 2)
            on CPU; always 1 on CUDA; see `pathpt_engine.backbones.encode_streams`).
    """

    backbone: str = "demo"
    weights: Path | None = None
    device: str = "auto"
    batch_size: int = 64
    precision: str = "auto"
    workers: int = 2
    prefetch_batches: int = 3
    tile_size: int | None = None
    target_mpp: float | None = None
    min_tissue: float = 0.5
    assume_mpp: float | None = None
    force: bool = False
    encoder_streams: int | None = None

    def __post_init__(self) -> None:
        if self.batch_size <= 0 or self.prefetch_batches <= 0 or self.workers < 0:
            raise ValueError("ExtractOptions: batch_size and prefetch_batches must be > 0, workers >= 0")
        if self.encoder_streams is not None and self.encoder_streams <= 0:
            raise ValueError(f"ExtractOptions: encoder_streams must be > 0, got {self.encoder_streams}")
        if self.tile_size is not None and self.tile_size < 8:
            raise ValueError(f"ExtractOptions: tile_size must be >= 8, got {self.tile_size}")
        if self.target_mpp is not None and not self.target_mpp > 0:
            raise ValueError(f"ExtractOptions: target_mpp must be > 0, got {self.target_mpp}")

    def grid_params(self, backbone: Backbone) -> GridParams:
        return GridParams(target_mpp=self.target_mpp or backbone.target_mpp,
                          tile_size=self.tile_size or backbone.tile_size, min_tissue=self.min_tissue,
                          assume_mpp=self.assume_mpp)


@dataclass(frozen=True)
class SlideExtraction:
    """What extraction did for one slide."""

    slide_name: str
    path: str
    output: str
    n_tiles: int
    skipped: bool
    seconds: float
    tiles_per_s: float


@dataclass(frozen=True)
class ExtractionSummary:
    """All slides of one run."""

    device: str
    backbone: str
    weights_hash: str
    slides: tuple[SlideExtraction, ...]
    failed: tuple[tuple[str, str], ...] = ()  # (path, error) of slides that could not be read or written


def feature_path(out_dir: Path, backbone: str, slide_name: str) -> Path:
    """Where the feature file of `slide_name` for `backbone` goes."""
    return Path(out_dir) / backbone / "h5_files" / f"{slide_name}.h5"


def extract_slides(paths: Sequence[str | Path], out_dir: str | Path, opts: ExtractOptions = ExtractOptions(),
                   cancel: threading.Event | None = None,
                   backbone: Backbone | None = None) -> Job[ExtractionSummary]:
    """Job: tile and encode every slide; returns an `ExtractionSummary`.

    Args:
        paths: slide files (names must be unique).
        out_dir: output folder (see the module docstring for the layout).
        opts: options.
        cancel: set to stop at the next batch (threads are joined, nothing half-written is kept).
        backbone: an already loaded backbone to use instead of loading `opts.backbone` (tests, GUI reuse).

    A slide that cannot be read or written (SlideError, FeatureFileError) does not stop the run: it is logged,
    listed in `ExtractionSummary.failed` and appended to `OUT/extract-ledger.jsonl` as `failed` with the reason
    (the other slides as `done`/`skipped`); a re-run skips the slides already up to date, so only failures retry.

    Raises:
        BackboneError, ConfigError, JobCancelled, DeviceMemoryError.
    """
    from ..backbones.registry import load_backbone

    device = resolve_device(opts.device)
    autocast = resolve_precision(opts.precision, device)
    dev_text = describe_device(device)
    log.info("extraction device: %s, precision %s", dev_text, autocast or "fp32")
    yield Progress("load", 0, 1, message=f"{opts.backbone} on {dev_text}")
    model = backbone if backbone is not None else load_backbone(opts.backbone, opts.weights, device=str(device))
    model = model.to(device)
    encoder = TileEncoder(model, device, autocast, opts.batch_size)
    yield Progress("load", 1, 1, message=f"{model.name} on {dev_text}")
    out = Path(out_dir)
    done: list[SlideExtraction] = []
    failed: list[tuple[str, str]] = []
    ledger = Ledger(out)
    for i, path in enumerate(Path(p) for p in paths):
        check_cancel(cancel)
        try:  # one bad slide never stops the batch: it is recorded (ledger, summary) and the rest go on
            result = yield from _extract_one(path, out, model, encoder, opts, cancel, f"{i + 1}/{len(paths)}")
        except (SlideError, FeatureFileError) as exc:
            log.warning("extraction failed, going on with the other slides: %s", exc)
            failed.append((str(path), str(exc)))
            ledger.append(LedgerEntry(slide=path.stem, status="failed", backbone=model.name, path=str(path),
                                      reason=str(exc)))
            continue
        ledger.append(LedgerEntry(slide=result.slide_name, status="skipped" if result.skipped else "done",
                                  backbone=model.name, path=str(path), n_tiles=result.n_tiles,
                                  seconds=result.seconds))
        done.append(result)
    return ExtractionSummary(dev_text, model.name, model.weights_hash, tuple(done), tuple(failed))


def extract_slide(path: str | Path, out_dir: str | Path, model: Backbone, opts: ExtractOptions,
                  cancel: threading.Event | None = None, *, encoder: TileEncoder | None = None,
                  pixels_from: str | Path | None = None) -> SlideExtraction:
    """Tile (coords reused) and encode one slide into `feature_path(out_dir, ...)`; skip it if up to date.

    The same per-slide step `extract_slides` runs, without progress events (cluster actors call it).

    Args:
        path: the slide (its name and tiling are filed under this path).
        out_dir: output folder (see the module docstring for the layout).
        model: the loaded backbone.
        opts: options (device and precision build the encoder when `encoder` is None).
        cancel: set to stop at the next batch.
        encoder: a `TileEncoder` to reuse across slides (keeps its halved batch size after an OOM).
        pixels_from: read tiles from this copy of the slide (a staged local copy); outputs are the same.
    """
    if encoder is None:
        device = resolve_device(opts.device)
        encoder = TileEncoder(model.to(device), device, resolve_precision(opts.precision, device), opts.batch_size)
    job = _extract_one(Path(path), Path(out_dir), model, encoder, opts, cancel, "",
                       Path(pixels_from) if pixels_from is not None else None)
    return run_job(job, cancel=cancel)


def _extract_one(path: Path, out: Path, model: Backbone, encoder: TileEncoder, opts: ExtractOptions,
                 cancel: threading.Event | None, tag: str, pixels_from: Path | None = None) -> Job[SlideExtraction]:
    from ..slides.reader import open_slide
    from .tiling import tile_params_json, tile_slide

    gp, tp = opts.grid_params(model), TissueParams()
    tiling = tile_slide(path, out / "coords", gp, tp, reuse=True)
    yield Progress("tile", 1, 1, message=f"{tag} {tiling.slide_name}", metrics={"tiles": float(tiling.n_tiles)})
    target = feature_path(out, model.name, tiling.slide_name)
    precision = "fp32" if encoder.autocast is None else str(encoder.autocast).replace("torch.", "")
    expected = {"slide_id": tiling.slide_id, "backbone": model.name, "weights_hash": model.weights_hash,
                "tile_params": tile_params_json(gp, tp), "precision": precision}
    reason = "forced" if opts.force else stale_reason(target, expected)
    if reason is None:
        log.info("%s: features up to date, skipped", target)
        return SlideExtraction(tiling.slide_name, str(path), str(target), tiling.n_tiles, True, 0.0, 0.0)
    cf = read_coords(tiling.output)
    t0 = time.monotonic()
    with open_slide(pixels_from or path) as reader:
        grid = replace(grid_from_coords(cf, reader), params=gp)
        feats = yield from encode_grid(reader, grid, model, encoder, opts, cancel, f"{tag} {tiling.slide_name}")
    dt = time.monotonic() - t0
    attrs = {**cf.attrs, **model.describe(), **expected, "extract_s": dt}
    write_features(target, cf.coords, feats, attrs, cf.coords_attrs)
    rate = len(grid) / dt if dt > 0 else 0.0
    log.info("%s: %d tiles in %.1f s (%.1f tiles/s) -> %s", tiling.slide_name, len(grid), dt, rate, target)
    return SlideExtraction(tiling.slide_name, str(path), str(target), len(grid), False, dt, rate)


def encode_grid(reader: SlideReader, grid: TileGrid, model: Backbone, encoder: TileEncoder, opts: ExtractOptions,
                cancel: threading.Event | None = None, message: str = "") -> Job[np.ndarray]:
    """Job: encode every tile of `grid`; returns float32 [N, D].

    Tiles come in batches (`slides.batches.iter_tile_batches`): composed straight from the level's native tiles
    where the grid allows, else read one by one by reader threads and stacked. One batcher thread preprocesses
    them, and they are encoded in this thread (CUDA) or by parallel encoder streams (CPU, single-threaded on 2
    cores). On CPU the batcher runs torch on one thread, so no two OpenMP teams share the cores; the caller's torch
    thread count is restored after.
    """
    n = len(grid)
    feats = np.zeros((n, model.embed_dim), dtype=np.float32)
    if n == 0:
        return feats
    eta, done = Eta(), 0
    cpu = encoder.device.type == "cpu"
    streams = resolve_streams(encoder.device, opts.encoder_streams)
    source, _native = tile_source(reader, grid, opts, encoder.device)
    with torch_threads_restored(), closing(source), BatchPrefetcher(
            source, opts.batch_size, encoder.host_transform, opts.prefetch_batches,
            pin=encoder.device.type == "cuda", thread_init=one_torch_thread if cpu else None,
            batched=True) as batches:
        yield Progress("extract", 0, n, message=message)
        with closing(encode_batches(encoder, batches, streams)) as encoded:
            for idx, f in encoded:
                check_cancel(cancel)
                feats[idx] = f
                done += len(idx)
                yield Progress("extract", done, n, message=message,
                               metrics={"tiles_per_s": eta.rate(done), "eta_s": eta.eta_s(done, n) or 0.0})
    return feats


def tile_source(reader: SlideReader, grid: TileGrid, opts: ExtractOptions,
                device: torch.device | None = None) -> tuple[Batches, bool]:
    """The batches of `grid` for `BatchPrefetcher` (`slides.batches.iter_tile_batches`, which chooses native or
    region reads), and whether they are composed from native tiles. Reader threads: `reader_threads(device,
    opts.workers)`; every batch is written into the same array on the native path."""
    from ..slides.batches import iter_tile_batches, native_tile_batches

    workers = reader_threads(device or torch.device("cpu"), opts.workers)
    ahead = opts.batch_size * opts.prefetch_batches
    native = native_tile_batches(reader, grid, opts.batch_size, workers, ahead, reuse=True)
    if native is not None:
        return native, True
    return iter_tile_batches(reader, grid, opts.batch_size, workers, ahead), False


def default_device_summary() -> str:
    """The device `--device auto` would use, described (for CLI/GUI status lines)."""
    return describe_device(resolve_device("auto"))


