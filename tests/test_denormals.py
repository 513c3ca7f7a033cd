"""Denormals are flushed on the CPU while MIL baselines train and predict (ops.denormals): they made late epochs ten
times slower (bench/denormals.py)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from pathpt_engine.baselines import dgrmil as dgrmil_mod
from pathpt_engine.baselines import train as train_mod
from pathpt_engine.baselines.dgrmil import DGRMILConfig, train_dgrmil
from pathpt_engine.baselines.train import MILConfig, predict_mil, train_mil
from pathpt_engine.jobs import collect
from pathpt_engine.ops.denormals import flush_denormals

TINY = 1e-39  # a float32 denormal


def _flushed() -> bool:
    return float(torch.tensor([TINY], dtype=torch.float32) * 1.0) == 0.0


@pytest.fixture(autouse=True)
def _needs_ftz():
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal returned False)")


def test_flushed_inside_the_block_only():
    assert not _flushed()
    with flush_denormals(torch.device("cpu")):
        assert _flushed()
    assert not _flushed()
    with contextlib.suppress(RuntimeError), flush_denormals(torch.device("cpu")):
        raise RuntimeError("the mode is restored on errors too")
    assert not _flushed()
    with flush_denormals(torch.device("meta")):  # not the CPU: left alone
        assert not _flushed()


def _bags(n=6, tiles=20, dim=16):
    rng = np.random.default_rng(0)
    return [(rng.normal(size=(tiles, dim)).astype(np.float32), i % 3) for i in range(n)]


@pytest.mark.parametrize("model", ["abmil", "clam", "transmil"])
def test_mil_epochs_and_prediction_run_flushed(monkeypatch, model):
    seen = []
    real_epoch = train_mod._mil_epoch

    def spy(*args, **kwargs):
        seen.append(_flushed())
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_mod, "_mil_epoch", spy)
    mil, _ = collect(train_mil(MILConfig(model=model, epochs=2), 3, _bags()))
    assert seen == [True, True] and not _flushed()

    real_forward = type(mil).forward
    monkeypatch.setattr(type(mil), "forward", lambda self, x: (seen.append(_flushed()), real_forward(self, x))[1])
    predict_mil(mil, _bags()[0][0])
    assert seen[-1] is True and not _flushed()


def test_dgrmil_epochs_run_flushed(monkeypatch):
    seen = []
    real = dgrmil_mod.run_epochs

    def spy(model, epochs, one_epoch, *rest):
        def wrapped(epoch):
            seen.append(_flushed())
            return one_epoch(epoch)

        return (yield from real(model, epochs, wrapped, *rest))

    monkeypatch.setattr(dgrmil_mod, "run_epochs", spy)
    collect(train_dgrmil(DGRMILConfig(epochs=2, warmup_epochs=1), 3, _bags()))
    assert seen == [True, True] and not _flushed()
