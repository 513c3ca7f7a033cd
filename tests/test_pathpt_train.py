"""PathPT trainer, checkpoints and predictor on a tiny KEEP-format backbone and a fake feature cohort."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from tempfiles import assert_no_temp

from pathpt_engine.errors import ConfigError, JobCancelled
from pathpt_engine.jobs import collect, run_job
from pathpt_engine.pathpt.checkpoint import is_complete, load_checkpoint, save_checkpoint
from pathpt_engine.pathpt.model import PathPTConfig
from pathpt_engine.pathpt.predictor import load_run, predict_slide
from pathpt_engine.pathpt.trainer import amp_settings, train_pathpt
from pathpt_engine.testing.cohorts import labelled_cohort

FAST = dict(n_prompts_random=20, n_prompts_keep=10)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return labelled_cohort(tmp_path_factory.mktemp("cohort"), n_tiles=30)


def test_train_checkpoint_and_reload_give_same_predictions(setup, tmp_path):
    bb, cs, slides = setup
    cfg = PathPTConfig(epochs=3, **FAST)
    res, events = collect(train_pathpt(bb, cs, slides, cfg, out_dir=tmp_path / "run"))
    steps = [e for e in events if e.stage == "train" and "epoch" not in e.metrics]
    epochs = [e for e in events if e.stage == "train" and "epoch" in e.metrics]
    assert len(steps) == 3 * len(slides) and len(epochs) == 3
    assert {"loss", "labelled", "candidate", "pseudo", "lr"} <= set(steps[0].metrics)
    assert "train_acc" in epochs[0].metrics
    state, meta = load_checkpoint(tmp_path / "run")
    assert set(state) == {k for k, _ in res.model.named_parameters()}
    assert all(k == "prompt_learner.ctx" or k.startswith("spatial.") for k in state)
    assert meta["backbone"]["backbone"] == "keep" and meta["config"]["recipe"] == "paper"
    assert meta["classes"]["name"] == "synthetic"
    run = load_run(tmp_path / "run", backbone=bb)
    pred_a, tiles_a = predict_slide(res.model, cs, slides[0])
    pred_b, tiles_b = predict_slide(run.model, cs, slides[0])
    np.testing.assert_allclose(tiles_a.probs, tiles_b.probs, rtol=1e-6, atol=1e-7)
    assert pred_a == pred_b and pred_a.predicted in cs.subtype_names
    assert tiles_a.probs.shape == (30, 4) and tiles_a.class_names == cs.class_names
    x = torch.as_tensor(slides[1].features)
    with torch.no_grad():
        text = res.model.eval().text_features()
    torch.testing.assert_close(res.model.predict_probs(x, text=text), res.model.predict_probs(x), rtol=0, atol=0)
    chunked = res.model.predict_probs(x, chunk=7)  # each chunk its own sequence: a different (valid) result
    assert chunked.shape == (30, 4) and torch.allclose(chunked.sum(1), torch.ones(30))
    assert np.allclose(tiles_a.probs.sum(1), 1, atol=1e-5)


def test_epoch0_runs_at_lr_zero_and_schedule_in_events(setup):
    bb, cs, slides = setup
    res, events = collect(train_pathpt(bb, cs, slides[:3], PathPTConfig(epochs=10, **FAST)))
    lrs = [e.metrics["lr"] for e in events if e.stage == "train" and "epoch" not in e.metrics]
    assert lrs[:3] == [0.0, 0.0, 0.0]
    assert lrs[3] == pytest.approx(1e-4) and lrs[-1] == pytest.approx(1e-4 * 0.5 * (1 + np.cos(np.pi * 8 / 9)))


def test_epoch0_does_not_move_weights(setup, monkeypatch):
    """Epoch 0 runs at lr 0: after its steps the context still equals the template initialisation."""
    from pathpt_engine.pathpt import trainer
    from pathpt_engine.pathpt.model import PathPTModel
    from pathpt_engine.pathpt.prompt_learner import PromptLearner

    built: list[PathPTModel] = []

    class Recorded(PathPTModel):  # the model the trainer builds, kept for a look at it between events
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self)

    monkeypatch.setattr(trainer, "PathPTModel", Recorded)
    bb, cs, slides = setup
    job = train_pathpt(bb, cs, slides[:2], PathPTConfig(epochs=10, **FAST))
    for ev in job:
        if ev.stage == "train" and "epoch" in ev.metrics:
            break
    (model,) = built  # the job's live model after epoch 0
    after = model.prompt_learner.ctx.detach().clone()
    next(job)  # one more step, at lr 5e-5, moves it
    moved = model.prompt_learner.ctx.detach().clone()
    job.close()
    init = PromptLearner(bb, cs.learnable_names(), n_ctx=32).ctx.detach()
    assert torch.equal(after, init)
    assert not torch.equal(moved, init)


def test_cancel_leaves_no_checkpoint(setup, tmp_path):
    bb, cs, slides = setup
    cancel = threading.Event()
    seen = []

    def on_progress(ev):
        seen.append(ev)
        if ev.stage == "train":
            cancel.set()

    with pytest.raises(JobCancelled):
        run_job(train_pathpt(bb, cs, slides, PathPTConfig(epochs=2, **FAST), out_dir=tmp_path / "run",
                             cancel=cancel), on_progress, cancel)
    assert not is_complete(tmp_path / "run")
    assert not bb.training  # dropout switched back off after the cancelled run
    with pytest.raises(ConfigError, match="not a finished"):
        load_run(tmp_path / "run", backbone=bb)


def test_clean_recipe_selects_on_validation(setup, tmp_path):
    bb, cs, slides = setup
    cfg = PathPTConfig(recipe="clean", epochs=3, early_stop=1, **FAST)
    res, events = collect(train_pathpt(bb, cs, slides[::2], cfg, val=slides[1::2]))
    assert all("val_bacc" in h for h in res.history)
    best = max(range(len(res.history)), key=lambda i: (res.history[i]["val_bacc"], -i))
    assert res.best_epoch == best


def test_checkpoint_integrity(tmp_path):
    save_checkpoint(tmp_path, {"a": torch.ones(2)}, {"x": 1})
    state, meta = load_checkpoint(tmp_path)
    assert meta["x"] == 1 and torch.equal(state["a"], torch.ones(2))
    (tmp_path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ConfigError, match="checksum"):
        load_checkpoint(tmp_path)
    assert_no_temp(tmp_path)


def test_amp_settings_and_bf16_cpu_step(setup):
    assert amp_settings("auto", torch.device("cpu")) == (False, torch.float32, False)
    with pytest.raises(ValueError, match='needs a CUDA device'):
        amp_settings("fp16", torch.device("cpu"))
    bb, cs, slides = setup
    res, _ = collect(train_pathpt(bb, cs, slides[:2], PathPTConfig(epochs=1, amp="bf16", **FAST)))
    assert np.isfinite(res.history[0]["loss"])


def test_feature_dim_mismatch_is_clear(setup):
    bb, cs, slides = setup
    from dataclasses import replace

    bad = [replace(s, features=np.zeros((5, 7), np.float32)) for s in slides[:2]]
    with pytest.raises(ValueError, match=r"\[7\]-d"):
        collect(train_pathpt(bb, cs, bad, PathPTConfig(epochs=1, **FAST)))


@pytest.mark.gpu
def test_fp16_amp_training_on_cuda(setup):
    bb, cs, slides = setup
    bb = bb.to("cuda")
    try:
        res, _ = collect(train_pathpt(bb, cs, slides, PathPTConfig(epochs=3, amp="fp16", device="cuda", **FAST)))
        assert np.isfinite(res.history[-1]["loss"])
        assert all(h["skipped_steps"] == 0 for h in res.history[1:])  # one GradScaler for the run
    finally:
        bb.to("cpu")


def test_text_dropout_follows_recipe(setup):
    from pathpt_engine.pathpt.model import PathPTModel

    bb, cs, _ = setup
    for recipe, flag, want in (("paper", None, True), ("clean", None, False), ("clean", True, True)):
        m = PathPTModel(bb, cs.learnable_names(), PathPTConfig(recipe=recipe, text_dropout=flag), bb.embed_dim)
        m.train()
        assert bb.training is want, recipe
        m.eval()
        assert not bb.training
