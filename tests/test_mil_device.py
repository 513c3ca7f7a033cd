"""MIL baselines' per-step waste that costs on a GPU (issue 17 defect 9), checked on the CPU with TorchFunctionModes:
no host read per step, DGRMIL's bags copied to the device once, no TransMIL heat map in training forwards, CLAM's
instance targets made on the device."""

from __future__ import annotations

import traceback

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from pathpt_engine.baselines.dgrmil import DGRMILConfig, train_dgrmil
from pathpt_engine.baselines.models import CLAMSB
from pathpt_engine.baselines.train import MILConfig, train_mil
from pathpt_engine.jobs import collect
from pathpt_engine.ops.lumped_nystrom import LumpedNystromAttention
from pathpt_engine.ops.nystrom import NystromAttention

_READS = {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "cpu"}
_FACTORIES = {"ones", "zeros", "tensor", "full", "arange", "empty", "as_tensor"}


class Recorder(TorchFunctionMode):
    """Records (op name, first tensor argument's shape, whether `device=` was given) of every torch call, except
    those from torch/optim (Adam reads its step counter, a host tensor on CUDA too)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple, bool]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if "torch/optim" in traceback.extract_stack(limit=3)[-3].filename:
            return func(*args, **kwargs)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        shape = tuple(first.shape) if first is not None else ()
        self.calls.append((getattr(func, "__name__", ""), shape, "device" in kwargs))
        return func(*args, **kwargs)

    def reads(self) -> int:
        return sum(name in _READS for name, _, _ in self.calls)


def _bags(n_bags: int = 6, n: int = 20, d: int = 32) -> list[tuple[np.ndarray, int]]:
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(n, d)).astype(np.float32), i % 2) for i in range(n_bags)]


def test_mil_training_reads_the_device_once_per_epoch():
    for model in ("abmil", "clam", "transmil"):
        rec = Recorder()
        with rec:
            collect(train_mil(MILConfig(model=model, epochs=2), 2, _bags()))
        assert rec.reads() <= 2, (model, [c for c in rec.calls if c[0] in _READS])  # 6 steps per epoch
    rec = Recorder()
    with rec:  # validation selection: one more read per epoch for all 4 validation bags
        collect(train_mil(MILConfig(epochs=2, selection="val"), 2, _bags(), val=_bags(4)))
    assert rec.reads() <= 4


def test_dgrmil_copies_each_bag_once_and_reads_once_per_epoch():
    bags = _bags()
    rec = Recorder()
    with rec:
        collect(train_dgrmil(DGRMILConfig(epochs=2, dim=64), 2, bags))
    assert not [c for c in rec.calls if c[0] == "to" and c[1] == bags[0][0].shape]  # no per-step bag copy
    assert rec.reads() <= 2


def test_transmil_training_forward_skips_the_heat_map(monkeypatch):
    calls = []
    for cls in (NystromAttention, LumpedNystromAttention):
        original = cls.row_attention
        monkeypatch.setattr(cls, "row_attention",
                            lambda self, x, row, _o=original: calls.append(1) or _o(self, x, row))
    model, _ = collect(train_mil(MILConfig(model="transmil", epochs=1), 2, _bags(n_bags=3)))
    assert calls == []
    out = model.eval()(torch.randn(20, 32))
    assert calls == [1] and out["tile_scores"].shape == (20,)


def test_clam_instance_targets_are_made_on_the_device():
    torch.manual_seed(0)
    m = CLAMSB(32, 3).train()
    out = m(torch.randn(40, 32))
    rec = Recorder()
    with rec:
        m.loss(out, 1).backward()
    assert not [c for c in rec.calls if c[0] in _FACTORIES and not c[2]]
