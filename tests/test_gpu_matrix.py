"""The gpu tier (issue 17 §2): the training and prediction path on CUDA. Every test here needs a CUDA device and is
skipped without one (tests/conftest.py). Nothing in this file has run on a GPU yet; tolerances marked "stated"
are the expected size of the effect, to be confirmed by the first run (bench/gpu_check.sh).

`PATHPT_GPU_DRY_RUN=cpu` runs the tier on the CPU instead (bench/gpu_check.sh --cpu-dry-run): the code paths and
assertions, not CUDA's numerics; tests that need CUDA's own APIs skip then."""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch
from reference_ops import depthwise_conv_grads_float64

from pathpt_engine.jobs import collect
from pathpt_engine.ops.gpu import cuda_numerics
from pathpt_engine.ops.nystrom import moore_penrose_pinv, sequence_depthwise_conv
from pathpt_engine.pathpt import trainer
from pathpt_engine.pathpt.data import load_labelled, read_labels_csv
from pathpt_engine.pathpt.model import PathPTConfig, PathPTModel
from pathpt_engine.pathpt.predictor import load_run, predict_slide
from pathpt_engine.prompts.classsets import load_classset
from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

pytestmark = pytest.mark.gpu
DEV = "cpu" if os.environ.get("PATHPT_GPU_DRY_RUN") == "cpu" else "cuda"
needs_cuda_apis = pytest.mark.skipif(DEV == "cpu", reason="CPU dry run: uses CUDA's sync-debug/memory-fraction APIs")

FAST = dict(n_prompts_random=20, n_prompts_keep=10)
STRICT_PROB_TOL = 1e-5  # stated: fp32 on both sides, different kernels and summation orders
TF32_PROB_TOL = 2e-3  # stated: TF32 products carry ~1e-3 relative error, probabilities move by about that


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    """A tiny backbone (D = 32, so m = 16 landmarks) on CUDA, and cohorts of 12-tile slides (lumped short-slide
    path) and 40-tile slides (shared Nyström path)."""
    root = tmp_path_factory.mktemp("gpu")
    bb = tiny_backbone(root / "keep")
    cs = load_classset("synthetic")
    out = {}
    for n_tiles in (12, 40):
        feats, labels = make_fake_cohort(root / f"c{n_tiles}", bb, cs, per_class=2, n_tiles=n_tiles)
        out[n_tiles] = load_labelled(feats, read_labels_csv(labels, cs))
    bb.to(DEV)
    yield bb, cs, out
    bb.to("cpu")


def _initial_state(monkeypatch) -> dict:
    init: dict = {}
    original = trainer._Fitter.__init__

    def snapshot(self, model, *args):
        init.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        original(self, model, *args)

    monkeypatch.setattr(trainer._Fitter, "__init__", snapshot)
    return init


@pytest.mark.parametrize("recipe", ["paper", "clean"])
@pytest.mark.parametrize("n_tiles", [12, 40])
@pytest.mark.parametrize("amp", ["auto", "bf16", "off"])
def test_training_matrix_on_cuda(cohorts, amp, n_tiles, recipe, tmp_path, monkeypatch):
    bb, cs, by_n = cohorts
    slides = by_n[n_tiles]
    init = _initial_state(monkeypatch)
    cfg = PathPTConfig(recipe=recipe, epochs=3, amp=amp, device=DEV, **FAST)
    val = slides[-2:] if recipe == "clean" else None
    res, _ = collect(trainer.train_pathpt(bb, cs, slides, cfg, out_dir=tmp_path / "run", val=val))
    moved = [k for k, v in res.model.state_dict().items() if not torch.equal(v, init[k])]
    assert "prompt_learner.ctx" in moved and any(k.startswith("spatial.") for k in moved)
    assert all(h["skipped_steps"] == 0 for h in res.history[1:]), res.history
    assert all(np.isfinite(h["loss"]) for h in res.history)
    run = load_run(tmp_path / "run", backbone=bb, device=DEV)
    for s in slides[:2]:
        a = predict_slide(res.model, cs, s)[1].probs
        b = predict_slide(run.model, cs, s)[1].probs
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@needs_cuda_apis
def test_a_cuda_training_step_synchronises_at_most_twice(cohorts, monkeypatch):
    """Counted with torch.cuda.set_sync_debug_mode: the step's one metrics read and transformers' padding-mask
    check in the text tower (bf16 where supported: no GradScaler; fused Adam)."""
    bb, cs, by_n = cohorts
    counts = []
    original = trainer._Fitter._step

    def counted(self, i, epoch):
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return original(self, i, epoch)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                counts.append(sum("synchroniz" in str(w.message) for w in caught))

    monkeypatch.setattr(trainer._Fitter, "_step", counted)
    collect(trainer.train_pathpt(bb, cs, by_n[40], PathPTConfig(epochs=11, device=DEV, **FAST)))
    assert max(counts[len(by_n[40]):]) <= 2, counts  # after the first epoch's warm-up


@pytest.mark.parametrize("n_tiles", [12, 40])
def test_cuda_probabilities_match_cpu(cohorts, n_tiles):
    bb, cs, by_n = cohorts
    x = torch.as_tensor(by_n[n_tiles][0].features)
    torch.manual_seed(0)
    model = PathPTModel(bb, cs.learnable_names(), PathPTConfig(**FAST), bb.embed_dim)
    bb.to("cpu")
    try:
        want = model.to("cpu").predict_probs(x)
    finally:
        bb.to(DEV)
    model.to(DEV)
    strict = model.predict_probs(x.to(DEV)).cpu()  # the config's default: tf32=False
    model.config = replace(model.config, tf32=True)  # predict_probs sets the numerics from the run's config
    fast = model.predict_probs(x.to(DEV)).cpu()
    torch.testing.assert_close(strict, want, rtol=0, atol=STRICT_PROB_TOL)
    torch.testing.assert_close(fast, want, rtol=0, atol=TF32_PROB_TOL)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_nystrom_pinv_error_under_cuda_autocast(dtype):
    torch.manual_seed(0)
    a = torch.randn(1, 8, 384, 384, device=DEV).softmax(dim=-1)
    want = moore_penrose_pinv(a.double())
    with cuda_numerics(torch.device(DEV)), torch.autocast(DEV, dtype=dtype):
        got = moore_penrose_pinv(a)
    assert float((got.double() - want).abs().max() / want.abs().max()) < 1e-5


@pytest.mark.parametrize("n", [256, 1216, 70])
def test_native_cuda_value_convolution_gradient_matches_float64(n):
    """Defect 7's check: CUDA uses torch's native kernel gradient; it must not have the CPU bug at 256 + 960 i."""
    torch.manual_seed(n)
    h, k, d = 4, 33, 8
    v = torch.randn(1, h, n, d, device=DEV, requires_grad=True)
    w = torch.randn(h, 1, k, 1, device=DEV, requires_grad=True)
    g = torch.randn(1, h, n, d, device=DEV)
    with cuda_numerics(torch.device(DEV)):
        (sequence_depthwise_conv(v, w) * g).sum().backward()
    w_ref, v_ref = depthwise_conv_grads_float64(v, w, g)
    torch.testing.assert_close(w.grad.double(), w_ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(v.grad.double(), v_ref, rtol=1e-5, atol=1e-5)


@needs_cuda_apis
def test_forced_out_of_memory_in_prediction_recovers(cohorts, caplog):
    bb, cs, _ = cohorts
    torch.manual_seed(0)
    model = PathPTModel(bb, cs.learnable_names(), PathPTConfig(**FAST), bb.embed_dim).to(DEV).eval()
    x = torch.nn.functional.normalize(torch.randn(200_000, bb.embed_dim, device=DEV), dim=-1)
    with torch.no_grad():
        text = model.text_features()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    limit = torch.cuda.memory_allocated() + 96 * 2**20  # ~96 MiB of head room: 200k tiles in one sequence fail
    torch.cuda.set_per_process_memory_fraction(limit / total)
    try:
        with caplog.at_level(logging.WARNING, logger="pathpt_engine.pathpt.model"):
            probs = model.predict_probs(x, chunk=200_000, text=text)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert "out of memory" in caplog.text and "retrying with" in caplog.text
    assert probs.shape == (200_000, cs.n_classes) and torch.isfinite(probs).all()


def test_two_seeded_cuda_runs_give_the_same_weights(cohorts):
    bb, cs, by_n = cohorts
    cfg = PathPTConfig(epochs=3, device=DEV, **FAST)
    a, _ = collect(trainer.train_pathpt(bb, cs, by_n[40], cfg))
    b, _ = collect(trainer.train_pathpt(bb, cs, by_n[40], cfg))
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k

