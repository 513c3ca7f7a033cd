"""Extraction pipeline efficiency: end-to-end tiles/s on a synthetic slide vs encoder-only tiles/s.

    python bench/extract.py                       # CPU, the shipped demo model
    python bench/extract.py --gpu                 # CUDA, KEEP-size random-init model (ViT-L/16 + BERT-base)

End-to-end = tile reading (reader threads) + preprocessing (batcher thread) + encoding, on every tile of a
synthetic slide. Encoder-only = the same number of random inputs, of the dtype and shape the pipeline hands the
encoder, through the same encode call (`encode_batches`) with the same batch size; on CPU it is measured with one
stream on all torch threads and with the pipeline's streams (2 single-threaded ones on 2 cores), and the faster is
the baseline.
Efficiency = end-to-end / encoder-only (target >= 0.85). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from pathpt_engine.backbones.base import Backbone
from pathpt_engine.backbones.encode import TileEncoder, describe_device, resolve_device, resolve_precision
from pathpt_engine.backbones.encode_streams import (
    encode_batches,
    one_torch_thread,
    reader_threads,
    resolve_streams,
    torch_threads_restored,
)
from pathpt_engine.features import grid_from_coords
from pathpt_engine.features.extract import ExtractOptions, encode_grid
from pathpt_engine.features.store import read_coords
from pathpt_engine.jobs import run_job
from pathpt_engine.slides import SlideReader, TileGrid

KEEP_CONFIG = {  # the published KEEP config.json (method.md §7.1)
    "model_type": "keep",
    "vision_config": {"model_type": "vit", "img_size": 224, "patch_size": 16, "hidden_size": 1024, "num_heads": 16,
                      "num_layers": 24, "mlp_ratio": 4.0, "qkv_bias": True, "init_values": 1e-5, "num_classes": 0,
                      "dynamic_img_size": True},
    "text_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 768, "num_hidden_layers": 12,
                    "num_attention_heads": 12, "intermediate_size": 3072, "max_position_embeddings": 512},
    "projection_dim": 768,
}


def synthetic_slide(path: Path, size_px: int, seed: int = 0) -> Path:
    """A 0.25 um/px pyramidal TIFF filled with synthetic tissue (a few rendered patches, flipped and repeated)."""
    from pathpt_engine.synth import render_patch
    from pathpt_engine.synth.writer import write_slide

    rng = np.random.default_rng(seed)
    patches = [render_patch(k % 4, size=512, rng=rng, mpp=0.25) for k in range(8)]
    img = np.empty((size_px, size_px, 3), np.uint8)
    for y in range(0, size_px, 512):
        for x in range(0, size_px, 512):
            p = patches[int(rng.integers(len(patches)))]
            p = p[:, ::-1] if rng.random() < 0.5 else p
            img[y : y + 512, x : x + 512] = p[: size_px - y, : size_px - x]
    return write_slide(path, img, mpp=0.25, fmt="tiff")


def build_model(kind: str, device: torch.device) -> Backbone:
    if kind == "demo":
        from pathpt_engine.backbones.registry import load_backbone

        return load_backbone("demo", device=str(device))
    from pathpt_engine.backbones.keep import KeepBackbone

    return KeepBackbone(KEEP_CONFIG, Path("."), name="keep-random").freeze().to(device)


def encoder_only(encoder: TileEncoder, model: Backbone, n: int, batch: int, tile: int, streams: int) -> float:
    """Tiles/s of the encoder alone: the pipeline's encode call (`encode_batches` with `streams`) on random input
    of exactly the dtype, shape and memory layout the pipeline hands it (`host_transform` of random uint8 tiles:
    float [B, 3, crop, crop] on CPU, pinned uint8 [B, tile, tile, 3] on CUDA, preprocessed in the encode call)."""
    rng = np.random.default_rng(0)
    x = encoder.host_transform(rng.integers(0, 256, (batch, tile, tile, 3), dtype=np.uint8))
    if encoder.device.type == "cuda":
        x = x.pin_memory()
    idx = np.arange(batch)

    def batches(count: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        for start in range(0, count, batch):
            m = min(batch, count - start)
            yield idx[:m], x[:m]

    with torch_threads_restored():
        for _ in encode_batches(encoder, batches(batch * max(2, streams)), streams):  # warm-up
            pass
        t0 = time.perf_counter()
        for _ in encode_batches(encoder, batches(n), streams):
            pass
        return n / (time.perf_counter() - t0)


def reader_only(reader: SlideReader, grid: TileGrid, encoder: TileEncoder, opts: ExtractOptions) -> float:
    """Tiles/s of reading + preprocessing alone (the pipeline's tile source and batcher thread, no encoding)."""
    from contextlib import closing

    from pathpt_engine.backbones.encode import BatchPrefetcher
    from pathpt_engine.features.extract import tile_source

    t0, n = time.perf_counter(), 0
    source, _native = tile_source(reader, grid, opts, encoder.device)
    cpu = encoder.device.type == "cpu"
    with torch_threads_restored(), closing(source), BatchPrefetcher(
            source, opts.batch_size, encoder.host_transform, opts.prefetch_batches, pin=not cpu,
            thread_init=one_torch_thread if cpu else None, batched=True) as batches:
        for idx, _ in batches:
            n += len(idx)
    return n / (time.perf_counter() - t0)


def main() -> None:
    from pathpt_engine.features.tiling import tile_slide
    from pathpt_engine.slides.reader import open_slide
    from pathpt_engine.slides.tissue import TissueParams

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpu", action="store_true", help="CUDA + KEEP-size random-init model")
    ap.add_argument("--model", choices=("demo", "keep-random"), default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None, help="tile reader threads")
    ap.add_argument("--slide-px", type=int, default=None, help="level-0 edge of the synthetic slide")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    ap.add_argument("--streams", type=int, default=None,
                    help="the pipeline's encoder streams (default: ExtractOptions' auto, min(torch threads, 2) on CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating measurements (medians are reported)")
    args = ap.parse_args()
    device = resolve_device("cuda" if args.gpu else "cpu")
    model_kind = args.model or ("keep-random" if args.gpu else "demo")
    batch = args.batch_size or (256 if args.gpu else 32)
    workers = args.workers if args.workers is not None else (8 if args.gpu else 1)
    slide_px = args.slide_px or (16384 if args.gpu else 8192)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(model_kind, device)
    autocast = resolve_precision(args.precision, device)
    opts = ExtractOptions(device=device.type, batch_size=batch, workers=workers, encoder_streams=args.streams)
    streams = resolve_streams(device, args.streams)
    # The baseline is the encoder alone at its best: one stream on all torch threads, or the default / requested
    # streams sharing them (CPU), whichever is faster (medians over the rounds).
    configs = sorted({1, resolve_streams(device), streams})
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        slide = synthetic_slide(Path(tmp) / "bench.tiff", slide_px)
        t_slide = time.perf_counter() - t0
        gp = opts.grid_params(model)
        tiling = tile_slide(slide, Path(tmp) / "coords", gp, TissueParams(), reuse=False)
        encoder = TileEncoder(model, device, autocast, batch)
        with open_slide(slide) as reader:
            grid = replace(grid_from_coords(read_coords(tiling.output), reader), params=gp)
            n = len(grid)
            read_rate = reader_only(reader, grid, encoder, opts)
        enc_rates: dict[int, list[float]] = {k: [] for k in configs}
        e2e_rates: list[float] = []
        for _ in range(args.repeats):  # alternate the measurements so load drift hits them alike
            for k in configs:
                enc_rates[k].append(encoder_only(encoder, model, n, batch, gp.tile_size, k))
            with open_slide(slide) as reader:
                t0 = time.perf_counter()
                feats = run_job(encode_grid(reader, grid, model, encoder, opts))
                e2e_rates.append(n / (time.perf_counter() - t0))
        enc_by = {k: float(np.median(v)) for k, v in enc_rates.items()}
        enc_rate, e2e = max(enc_by.values()), float(np.median(e2e_rates))
    print(json.dumps({
        "device": describe_device(device), "model": model_kind, "precision": str(autocast or "fp32"),
        "tiles": n, "batch_size": batch, "reader_threads": reader_threads(device, workers),
        "torch_threads": torch.get_num_threads(), "cuda_pipelined": device.type == "cuda",
        "slide_px": slide_px, "slide_write_s": round(t_slide, 2), "feature_dim": int(feats.shape[1]),
        "encoder_streams": streams,
        "end_to_end_tiles_per_s": round(e2e, 2), "encoder_only_tiles_per_s": round(enc_rate, 2),
        "encoder_only_by_streams": {str(k): round(v, 2) for k, v in enc_by.items()},
        "read_preprocess_only_tiles_per_s": round(read_rate, 2), "repeats": args.repeats,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "pipeline_efficiency": round(e2e / enc_rate, 3), "python": platform.python_version(),
    }, indent=2))


if __name__ == "__main__":
    main()
