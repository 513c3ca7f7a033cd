"""Parallel single-threaded encoder streams (CPU): same features, input order, torch threads restored, cancel."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.encode import TileEncoder
from pathpt_engine.backbones.encode_streams import (
    encode_batches,
    resolve_streams,
    torch_threads_restored,
)
from pathpt_engine.errors import JobCancelled
from pathpt_engine.features.extract import ExtractOptions, extract_slides, feature_path
from pathpt_engine.features.store import read_features
from pathpt_engine.jobs import collect, run_job
from pathpt_engine.synth.writer import write_slide
from pathpt_engine.testing.backbones import make_tiny_keep_folder


def _slide(path: Path) -> Path:
    rng = np.random.default_rng(1)
    img = np.full((1000, 1400, 3), 250, np.uint8)
    img[50:-50, 50:-50] = np.clip(np.array([200, 120, 170]) + rng.integers(-40, 40, (900, 1300, 3)), 0, 255)
    return write_slide(path, img, mpp=0.25, fmt="tiff")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("streams")
    return {"keep": make_tiny_keep_folder(root / "keep"), "slide": _slide(root / "s.tiff")}


def _new_thread_torch_threads() -> int:
    """Torch threads a thread started now gets (the process default that `torch.set_num_threads` also sets)."""
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    t.start()
    t.join()
    return out[0]


def _leftover_threads() -> list[str]:
    return [t.name for t in threading.enumerate()
            if t.name.startswith(("pathpt-batcher", "pathpt-tiles", "pathpt-encode"))]


def test_resolve_streams() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with torch_threads_restored():
        torch.set_num_threads(3)
        assert resolve_streams(cpu) == 2 and resolve_streams(cuda) == 1
        assert resolve_streams(cpu, 3) == 3 and resolve_streams(cuda, 4) == 1
        torch.set_num_threads(1)
        assert resolve_streams(cpu) == 1
    with pytest.raises(ValueError, match="positive"):
        resolve_streams(cpu, 0)
    with pytest.raises(ValueError, match="encoder_streams"):
        ExtractOptions(encoder_streams=0)


def test_encode_batches_keeps_order_and_values_and_restores_threads(env: dict) -> None:
    model = load_backbone("keep", env["keep"])
    enc = TileEncoder(model, torch.device("cpu"), None, 4)
    xs = [torch.randn(k, 3, 32, 32) for k in (4, 4, 3, 4, 1, 4, 2)]
    batches = [(np.arange(i * 10, i * 10 + len(x)), x) for i, x in enumerate(xs)]
    before = torch.get_num_threads()
    single = list(encode_batches(enc, batches, 1))
    with torch_threads_restored():
        multi = list(encode_batches(enc, batches, 3))
        assert _new_thread_torch_threads() == 1  # the workers set the default: this is what gets restored
    assert torch.get_num_threads() == before and _new_thread_torch_threads() == before
    assert [i.tolist() for i, _ in multi] == [i.tolist() for i, _ in batches]
    for (_, a), (_, b) in zip(single, multi, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    assert not _leftover_threads()


class _ThreadProbe(torch.nn.Module):
    """Backbone stand-in that records the torch threads each forward pass runs with."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.seen: list[tuple[str, int]] = []

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((threading.current_thread().name, torch.get_num_threads()))
        return x.flatten(1)[:, :2] * self.w


def test_streams_share_the_callers_torch_threads() -> None:
    probe = _ThreadProbe()
    enc = TileEncoder(probe, torch.device("cpu"), None, 2)
    batches = [(np.arange(2 * i, 2 * i + 2), torch.full((2, 3, 2, 2), float(i))) for i in range(6)]
    with torch_threads_restored():
        torch.set_num_threads(4)
        out = list(encode_batches(enc, batches, 2))
    assert [float(f[0, 0]) for _, f in out] == [float(i) for i in range(6)]
    assert {n for _, n in probe.seen} == {2} and all(t.startswith("pathpt-encode") for t, _ in probe.seen)
    probe.seen.clear()
    with torch_threads_restored():
        torch.set_num_threads(3)
        list(encode_batches(enc, batches, 1))  # one stream: the calling thread, all its threads
    assert probe.seen == [(threading.current_thread().name, 3)] * 6


def test_extraction_with_streams_equals_single_stream(env: dict, tmp_path: Path) -> None:
    before = torch.get_num_threads()
    base = {"backbone": "keep", "weights": env["keep"], "device": "cpu", "batch_size": 3, "workers": 2}
    one, _ = collect(extract_slides([env["slide"]], tmp_path / "one", ExtractOptions(**base, encoder_streams=1)))
    two, _ = collect(extract_slides([env["slide"]], tmp_path / "two", ExtractOptions(**base, encoder_streams=2)))
    a = read_features(feature_path(tmp_path / "one", "keep", "s")).features
    b = read_features(feature_path(tmp_path / "two", "keep", "s")).features
    assert one.slides[0].n_tiles == two.slides[0].n_tiles >= 4
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    assert torch.get_num_threads() == _new_thread_torch_threads() == before and not _leftover_threads()


def test_cancel_with_streams_joins_everything(env: dict, tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(ev) -> None:
        if ev.stage == "extract" and ev.done > 0:
            cancel.set()

    opts = ExtractOptions(backbone="keep", weights=env["keep"], device="cpu", batch_size=2, encoder_streams=2)
    before = torch.get_num_threads()
    with pytest.raises(JobCancelled):
        run_job(extract_slides([env["slide"]], tmp_path, opts, cancel=cancel), on_progress, cancel)
    assert not feature_path(tmp_path, "keep", "s").exists()
    assert not _leftover_threads() and torch.get_num_threads() == _new_thread_torch_threads() == before
