"""Mixed precision on the training path, checked on the CPU with autocast (issue 17, defects 2 and 3)."""

from __future__ import annotations

import logging

import pytest
import torch

from pathpt_engine.jobs import collect
from pathpt_engine.ops.lumped_nystrom import LumpedNystromAttention, lumped_pinv
from pathpt_engine.ops.nystrom import NystromAttention, moore_penrose_pinv
from pathpt_engine.pathpt import trainer
from pathpt_engine.pathpt.model import PathPTConfig
from pathpt_engine.pathpt.spatial import SpatialAwareModule
from pathpt_engine.testing.cohorts import labelled_cohort

FAST = dict(n_prompts_random=20, n_prompts_keep=10)
HALF = (torch.bfloat16, torch.float16)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


@pytest.mark.parametrize("dtype", HALF)
def test_pinv_stays_fp32_under_autocast(dtype):
    """D = 768's m = 384: under autocast the iteration used to run its products in half (1e-3 .. 1e-2 error)."""
    torch.manual_seed(0)
    a = torch.randn(1, 2, 384, 384).softmax(dim=-1)
    want = moore_penrose_pinv(a.double())
    with torch.autocast("cpu", dtype=dtype):
        got = moore_penrose_pinv(a)
    assert got.dtype == torch.float32
    assert _rel(got, want) < 1e-5


@pytest.mark.parametrize("dtype", HALF)
def test_lumped_pinv_stays_fp32_under_autocast(dtype):
    torch.manual_seed(1)
    a = torch.rand(1, 2, 41, 41).softmax(dim=-1)
    w = torch.ones(41)
    w[0] = 300.0
    want = lumped_pinv(a.double(), w.double(), 6)
    with torch.autocast("cpu", dtype=dtype):
        got = lumped_pinv(a, w, 6)
    assert got.dtype == torch.float32
    assert _rel(got, want) < 1e-5


def test_lumped_short_slide_path_runs_under_autocast(monkeypatch):
    """A slide shorter than the landmark count takes the lumped path under autocast too, and agrees with the
    shared path under the same autocast and with fp32 (bf16 rounding aside)."""
    calls = []
    original = LumpedNystromAttention._lumped
    monkeypatch.setattr(LumpedNystromAttention, "_lumped", lambda self, x: calls.append(1) or original(self, x))
    torch.manual_seed(2)
    fast, ref = SpatialAwareModule(256, fast=True).eval(), SpatialAwareModule(256, fast=False).eval()
    ref.load_state_dict(fast.state_dict())
    x = torch.nn.functional.normalize(torch.randn(1, 40, 256), dim=-1)
    with torch.no_grad():
        full = fast(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            calls.clear()
            got = fast(x)
            assert calls, "the lumped path did not run under autocast"
            shared = ref(x)
    assert type(ref.trans.attn) is NystromAttention
    assert _rel(got.float(), shared.float()) < 3e-2
    assert _rel(got.float(), full) < 3e-2


def test_amp_auto_prefers_bf16_on_cuda(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert trainer.amp_settings("auto", cuda) == (True, torch.bfloat16, False)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert trainer.amp_settings("auto", cuda) == (True, torch.float16, True)
    assert trainer.amp_settings("auto", torch.device("cpu")) == (False, torch.float32, False)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return labelled_cohort(tmp_path_factory.mktemp("amp"), n_tiles=30)


def test_one_grad_scaler_per_run_and_skipped_steps_are_logged(cohort, monkeypatch, caplog):
    """fp16 + GradScaler (CPU autocast standing in for CUDA): the scale found in epoch 1 carries on, so later
    epochs skip no step. A scaler re-created per epoch would restart at its initial scale and skip again."""
    made = []

    class CountingScaler(torch.amp.GradScaler):
        def __init__(self, *args, **kwargs):
            kwargs.setdefault("init_scale", 2.0**22)  # overflows the tiny model's fp16 gradients for a few steps
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(trainer, "amp_settings", lambda amp, dev: (True, torch.float16, True))
    monkeypatch.setattr(torch.amp, "GradScaler", CountingScaler)
    bb, cs, slides = cohort
    with caplog.at_level(logging.WARNING, logger="pathpt_engine.pathpt.trainer"):
        res, _ = collect(trainer.train_pathpt(bb, cs, slides, PathPTConfig(epochs=3, **FAST)))
    assert len(made) == 1
    skipped = [h["skipped_steps"] for h in res.history]
    assert skipped[0] > 0, "the forced overflow did not happen: the test checks nothing"
    assert skipped[1:] == [0.0, 0.0]
    assert "optimiser steps skipped by the GradScaler" in caplog.text
    assert made[0].get_scale() < 2.0**22


def test_bf16_training_moves_the_weights(cohort, monkeypatch):
    bb, cs, slides = cohort
    init = {}
    original = trainer._Fitter.__init__

    def snapshot(self, model, *args):
        init.update({k: v.clone() for k, v in model.state_dict().items()})
        original(self, model, *args)

    monkeypatch.setattr(trainer._Fitter, "__init__", snapshot)
    res, _ = collect(trainer.train_pathpt(bb, cs, slides, PathPTConfig(epochs=3, amp="bf16", **FAST)))
    moved = [k for k, v in res.model.state_dict().items() if not torch.equal(v, init[k])]
    assert "prompt_learner.ctx" in moved and any(k.startswith("spatial.") for k in moved)
    assert all(h["skipped_steps"] == 0 for h in res.history)
