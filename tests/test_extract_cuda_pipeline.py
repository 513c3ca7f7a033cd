"""GPU extraction pipelining (issue 17 defect 5): the in-order, double-buffered launch/collect loop and the reader
threads, on the CPU with a fake encoder; the CUDA streams themselves in the gpu tier below."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathpt_engine.backbones.encode import InFlight, TileEncoder
from pathpt_engine.backbones.encode_streams import CUDA_IN_FLIGHT, encode_batches, pipelined, reader_threads


class _FakeLaunches:
    """Stands in for a CUDA `TileEncoder`: records launches and collections in order."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def launch(self, x: torch.Tensor) -> object:
        k = int(x[0])
        self.log.append(f"launch {k}")
        log = self.log

        class Handle:
            def result(self) -> np.ndarray:
                log.append(f"collect {k}")
                return np.full((len(x), 2), k, np.float32)

        return Handle()


def _batches(n: int):
    for k in range(n):
        yield np.array([2 * k, 2 * k + 1]), torch.full((2,), k)


def test_pipeline_keeps_the_next_batch_queued_and_returns_in_order():
    fake = _FakeLaunches()
    out = list(pipelined(fake, _batches(4)))
    assert [int(f[0, 0]) for _, f in out] == [0, 1, 2, 3]
    assert [i.tolist() for i, _ in out] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert CUDA_IN_FLIGHT == 2  # batch k+1 is launched before batch k is collected
    assert fake.log == ["launch 0", "launch 1", "collect 0", "launch 2", "collect 1", "launch 3", "collect 2",
                        "collect 3"]


def test_pipeline_closed_early_waits_for_the_batches_in_flight():
    fake = _FakeLaunches()
    it = pipelined(fake, _batches(5))
    next(it)
    it.close()
    assert fake.log == ["launch 0", "launch 1", "collect 0", "collect 1"]  # batch 1 was in flight


def test_encode_batches_on_cpu_is_not_pipelined():
    class Enc:
        device = torch.device("cpu")

        def encode(self, x):
            return x.numpy()[:, None]

        def launch(self, x):  # pragma: no cover - must not be called on the CPU
            raise AssertionError("pipelined on the CPU")

    out = list(encode_batches(Enc(), _batches(3)))
    assert [int(f[0, 0]) for _, f in out] == [0, 1, 2]


def test_launch_off_cuda_encodes_at_once():
    class Fake(torch.nn.Module):
        name, embed_dim = "fake", 3

        def encode_image(self, x):
            return x.flatten(1)[:, :3]

    enc = TileEncoder(Fake(), torch.device("cpu"), None, batch_size=4)
    x = torch.randn(3, 3, 2, 2)
    handle = enc.launch(x)
    assert isinstance(handle, InFlight) and handle.value is not None
    np.testing.assert_allclose(handle.result(), x.flatten(1)[:, :3].numpy())


def test_reader_threads_are_sized_to_the_cores_on_cuda():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert reader_threads(cpu, 1, cores=32) == 1  # CPU: the encoder needs the cores
    assert reader_threads(cuda, 1, cores=32) == 16  # the GUI's 1 thread would starve a ViT-L in bf16
    assert reader_threads(cuda, 1, cores=8) == 6
    assert reader_threads(cuda, 2, cores=2) == 2


@pytest.mark.gpu
def test_cuda_pipelined_encoding_equals_one_batch_at_a_time():
    from pathpt_engine.backbones.keep import KeepBackbone

    torch.manual_seed(0)
    cfg = {"model_type": "keep",
           "vision_config": {"model_type": "vit", "img_size": 32, "patch_size": 8, "hidden_size": 64, "num_heads": 4,
                             "num_layers": 2, "num_classes": 0},
           "text_config": {"model_type": "bert", "vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64},
           "projection_dim": 32}
    model = KeepBackbone(cfg, __import__("pathlib").Path("."), name="keep-tiny").freeze().to("cuda")
    enc = TileEncoder(model, torch.device("cuda"), torch.bfloat16, batch_size=16)
    tiles = torch.randint(0, 256, (64, 32, 32, 3), dtype=torch.uint8)
    batches = [(np.arange(i, i + 16), enc.host_transform(tiles[i : i + 16].numpy()).pin_memory())
               for i in range(0, 64, 16)]
    want = np.concatenate([enc.encode(x) for _, x in batches])
    got = np.concatenate([f for _, f in encode_batches(enc, iter(batches))])
    np.testing.assert_array_equal(got, want)


def test_cluster_worker_counts_a_pipelined_batch_once(monkeypatch):
    from pathpt_engine.cluster.actor import _CountingEncoder

    class Fake(torch.nn.Module):
        name, embed_dim = "fake", 3

        def encode_image(self, x):
            return x.flatten(1)[:, :3]

    enc = _CountingEncoder(Fake(), torch.device("cpu"), None, batch_size=4)
    enc.launch(torch.randn(2, 3, 2, 2))  # off CUDA a launch encodes at once: one call, not two
    enc.encode(torch.randn(2, 3, 2, 2))
    assert enc.calls == 2
