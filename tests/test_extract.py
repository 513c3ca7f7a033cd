"""Feature extraction: slide -> coords -> tiny KEEP backbone -> feature h5; skip/force, cancel, OOM, CLI."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.encode import BatchPrefetcher, DeviceMemoryError, TileEncoder, resolve_precision
from pathpt_engine.errors import JobCancelled, PathPTError, SlideError
from pathpt_engine.features.extract import ExtractOptions, extract_slides, feature_path
from pathpt_engine.features.store import read_coords, read_features
from pathpt_engine.jobs import collect, run_job
from pathpt_engine.synth.writer import write_slide
from pathpt_engine.testing.backbones import make_tiny_keep_folder

torch.set_num_threads(1)


def _tissue_slide(path: Path, seed: int = 0, w: int = 1400, h: int = 1000) -> Path:
    """0.25 um/px slide: white background, a pink/purple noisy rectangle of 'tissue' (~12 tiles at 0.5 um/px)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 250, np.uint8)
    tissue = np.array([200, 120, 170]) + rng.integers(-40, 40, size=(h - 100, w - 100, 3))
    img[50:-50, 50:-50] = np.clip(tissue, 0, 255).astype(np.uint8)
    return write_slide(path, img, mpp=0.25, fmt="tiff")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("extract")
    return {"root": root, "keep": make_tiny_keep_folder(root / "keep"), "slide": _tissue_slide(root / "s1.tiff")}


def _opts(env: dict, **kw: object) -> ExtractOptions:
    base: dict = {"backbone": "keep", "weights": env["keep"], "device": "cpu", "batch_size": 4, "workers": 2}
    return ExtractOptions(**{**base, **kw})


def test_extract_matches_direct_encoding_and_skips(env: dict, tmp_path: Path) -> None:
    from pathpt_engine.slides.reader import open_slide
    from pathpt_engine.slides.tiles import read_tile

    summary, events = collect(extract_slides([env["slide"]], tmp_path, _opts(env)))
    assert summary.device.startswith("cpu") and len(summary.slides) == 1
    s = summary.slides[0]
    assert not s.skipped and s.n_tiles >= 4
    ff = read_features(feature_path(tmp_path, "keep", "s1"))
    model = load_backbone("keep", env["keep"])
    assert ff.features.shape == (s.n_tiles, model.embed_dim)
    assert ff.attrs["backbone"] == "keep" and ff.attrs["weights_hash"] == model.weights_hash
    cf = read_coords(tmp_path / "coords" / "s1.h5")
    np.testing.assert_array_equal(ff.coords, cf.coords)
    from pathpt_engine.features import grid_from_coords

    with open_slide(env["slide"]) as reader:
        grid = grid_from_coords(cf, reader)
        assert grid.tile_size == _opts(env).grid_params(model).tile_size
        tiles = np.stack([read_tile(reader, grid, i) for i in range(len(grid))])
    with torch.no_grad():
        direct = model.encode_image(model.preprocess(tiles)).numpy()
    np.testing.assert_allclose(ff.features, direct, atol=1e-5)
    ext = [e for e in events if e.stage == "extract"]
    assert ext[-1].done == s.n_tiles and "tiles_per_s" in ext[-1].metrics

    again, _ = collect(extract_slides([env["slide"]], tmp_path, _opts(env)))
    assert again.slides[0].skipped
    forced, _ = collect(extract_slides([env["slide"]], tmp_path, _opts(env, force=True)))
    assert not forced.slides[0].skipped
    other = make_tiny_keep_folder(tmp_path / "other", seed=1)
    changed, _ = collect(extract_slides([env["slide"]], tmp_path,
                                        ExtractOptions(backbone="keep", weights=other, device="cpu", batch_size=4)))
    assert not changed.slides[0].skipped  # different weights hash -> redone


def test_cancel_stops_joins_threads_and_writes_nothing(env: dict, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(ev) -> None:
        if ev.stage == "extract" and ev.done > 0:
            cancel.set()

    with pytest.raises(JobCancelled):
        run_job(extract_slides([env["slide"]], tmp_path, _opts(env, batch_size=2), cancel=cancel), on_progress,
                cancel)
    assert not feature_path(tmp_path, "keep", "s1").exists()
    assert not [t for t in threading.enumerate() if t.name.startswith(("pathpt-batcher", "pathpt-tiles", "pathpt-encode"))]


class _FakeOOM(torch.nn.Module):
    """Backbone stand-in that runs out of 'memory' above a batch size."""

    name, embed_dim = "fake", 3

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.w = torch.nn.Parameter(torch.ones(1))
        self.calls: list[int] = []

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(len(x))
        if len(x) > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return x.flatten(1)[:, :3] * self.w


def test_oom_halves_batch_once_and_continues(caplog: pytest.LogCaptureFixture) -> None:
    fake = _FakeOOM(limit=8)
    enc = TileEncoder(fake, torch.device("cpu"), None, batch_size=16)
    x = torch.randn(20, 3, 2, 2)
    with caplog.at_level(logging.WARNING):
        out = enc.encode(x)
    np.testing.assert_allclose(out, x.flatten(1)[:, :3].numpy())
    assert enc.batch_size == 8 and enc.halved and fake.calls == [16, 8, 8, 4]
    assert "halving the batch size to 8" in caplog.text
    with pytest.raises(DeviceMemoryError, match="already halved once"):
        TileEncoder(_FakeOOM(limit=2), torch.device("cpu"), None, batch_size=16).encode(x)


def test_prefetcher_propagates_reader_errors_and_joins() -> None:
    def tiles():
        for i in range(10):
            if i == 5:
                raise SlideError("slide.tiff: cannot decode tile at (5, 0)")
            yield i, np.full((4, 4, 3), i, np.uint8)

    seen = []
    with pytest.raises(SlideError, match="cannot decode"), BatchPrefetcher(  # noqa: PT012 - raised mid-iteration
            tiles(), 2, lambda a: torch.from_numpy(a).float()) as batches:
        for idx, x in batches:
            seen.extend(idx.tolist())
            assert x.shape[1:] == (4, 4, 3)
    assert seen == [0, 1, 2, 3]
    assert not [t for t in threading.enumerate() if t.name == "pathpt-batcher"]


def test_precision_rules_and_bf16_close_to_fp32(env: dict) -> None:
    assert resolve_precision("auto", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(PathPTError, match="fp16 needs a CUDA"):
        resolve_precision("fp16", torch.device("cpu"))
    model = load_backbone("keep", env["keep"])
    x = torch.randn(4, 3, 32, 32)
    a = TileEncoder(model, torch.device("cpu"), None, 4).encode(x)
    b = TileEncoder(model, torch.device("cpu"), torch.bfloat16, 4).encode(x)
    assert b.dtype == np.float32 and np.abs(a - b).max() < 0.1


def test_cli_extract_and_backbones(env: dict, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pathpt_engine.cli import main

    rc = main(["-q", "extract", str(env["slide"]), "--backbone", "keep", "--weights", str(env["keep"]),
               "--out", str(tmp_path), "--device", "cpu", "--batch-size", "8"])
    out = capsys.readouterr().out
    assert rc == 0 and "device: cpu" in out and "s1:" in out
    assert feature_path(tmp_path, "keep", "s1").is_file()
    assert main(["backbones"]) == 0
    listing = capsys.readouterr().out
    assert "demo [DEMO: synthetic slides only, never for diagnosis]" in listing and "keep" in listing
    assert main(["-q", "extract", str(env["slide"]), "--backbone", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown backbone 'nope'" in capsys.readouterr().err
    assert main(["-q", "extract", str(env["slide"]), "--batch-size", "0", "--out", str(tmp_path)]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_uint8_batches_are_preprocessed_by_the_encoder(env: dict) -> None:
    model = load_backbone("keep", env["keep"])
    enc = TileEncoder(model, torch.device("cpu"), None, 4)
    tiles = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert not enc.preprocess_on_device and enc.host_transform(tiles).shape == (5, 3, 32, 32)
    np.testing.assert_array_equal(enc.encode(torch.from_numpy(tiles)), enc.encode(model.preprocess(tiles)))


@pytest.mark.gpu
def test_cuda_bf16_extraction_matches_cpu_fp32(env: dict, tmp_path: Path) -> None:
    cpu, _ = collect(extract_slides([env["slide"]], tmp_path / "cpu", _opts(env)))
    gpu, _ = collect(extract_slides([env["slide"]], tmp_path / "gpu", _opts(env, device="cuda", precision="bf16")))
    assert gpu.device.startswith("cuda")
    a = read_features(cpu.slides[0].output).features
    b = read_features(gpu.slides[0].output).features
    assert a.shape == b.shape
    # stated, not yet measured on a GPU: bf16 keeps ~3 significant digits, so unit-norm embeddings stay within
    # ~1e-2 per element and their per-tile cosine above 0.999 (0.1 would let a broken preprocessing through)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert np.abs(a - b).max() < 2e-2 and cos.min() > 0.999, (np.abs(a - b).max(), cos.min())
    assert read_features(gpu.slides[0].output).attrs["precision"] == "bfloat16"


@pytest.mark.gpu
def test_cuda_fp32_extraction_matches_cpu_fp32(env: dict, tmp_path: Path) -> None:
    """Strict fp32 on CUDA (TF32 off for matmuls and cuDNN convolutions) against the CPU: rounding only."""
    from pathpt_engine.ops.gpu import cuda_numerics

    cpu, _ = collect(extract_slides([env["slide"]], tmp_path / "cpu", _opts(env)))
    with cuda_numerics(torch.device("cuda"), tf32=False):
        gpu, _ = collect(extract_slides([env["slide"]], tmp_path / "gpu", _opts(env, device="cuda",
                                                                                 precision="fp32")))
    a = read_features(cpu.slides[0].output).features
    b = read_features(gpu.slides[0].output).features
    assert np.abs(a - b).max() < 1e-4
