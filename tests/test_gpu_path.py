"""The GPU path, checked without a GPU (issue 17): Ray's GPU assignment mocked, tensor factories checked on the
meta device, host syncs counted with a TorchFunctionMode, out-of-memory retries forced, CUDA numerics flags."""

from __future__ import annotations

import collections
import gc
import logging
import traceback
import weakref
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from pathpt_engine.cluster import predict as cluster_predict
from pathpt_engine.cluster import tasks
from pathpt_engine.cluster.base import ClusterError, ClusterOptions
from pathpt_engine.jobs import collect
from pathpt_engine.ops import gpu
from pathpt_engine.ops.gpu import tile_vote_tensor
from pathpt_engine.ops.nystrom import sequence_depthwise_conv
from pathpt_engine.pathpt import model as model_mod
from pathpt_engine.pathpt import trainer
from pathpt_engine.pathpt.losses import LabelPlan, pathpt_loss
from pathpt_engine.pathpt.model import PathPTConfig, PathPTModel
from pathpt_engine.prompts.classsets import load_classset
from pathpt_engine.testing.cohorts import labelled_cohort, make_fake_cohort, tiny_backbone

FAST = dict(n_prompts_random=20, n_prompts_keep=10)


# --- Ray: --device is honoured, GPU workers are not reused --------------------------------------------------------

def _fake_ray(monkeypatch, gpu_ids: list[int], cluster_gpus: int = 2) -> None:
    """Ray's GPU assignment and cluster resources faked; `ray.remote` is the real one (no Ray started)."""
    import ray

    fake = SimpleNamespace(get_gpu_ids=lambda: list(gpu_ids), cluster_resources=lambda: {"GPU": cluster_gpus},
                           remote=ray.remote)
    monkeypatch.setattr(tasks, "ray", fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_ray_task_device_honours_the_requested_device(monkeypatch):
    _fake_ray(monkeypatch, [1])
    assert tasks.task_device("cpu") == "cpu"  # a GPU assigned, but --device cpu
    assert tasks.task_device("auto") == "cuda" and tasks.task_device("cuda") == "cuda"
    _fake_ray(monkeypatch, [])
    assert tasks.task_device("auto") == "cpu"
    with pytest.raises(ClusterError, match="no GPU"):
        tasks.task_device("cuda")


def test_ray_gpu_tasks_get_a_fresh_worker_and_cpu_tasks_no_gpu(monkeypatch):
    _fake_ray(monkeypatch, [0])
    opts = tasks.task_resources(ClusterOptions(), "auto")
    assert opts["num_gpus"] == 1 and opts["max_calls"] == 1
    cpu = tasks.task_resources(ClusterOptions(), "cpu")
    assert cpu["num_gpus"] == 0 and "max_calls" not in cpu
    _fake_ray(monkeypatch, [], cluster_gpus=0)
    assert tasks.task_resources(ClusterOptions(), "auto")["num_gpus"] == 0


def test_ray_gpu_task_is_built_with_max_calls_1(monkeypatch):
    """Ray accepts max_calls only in `ray.remote(...)`, not in `.options()`: the real Ray builds the task here."""
    _fake_ray(monkeypatch, [0])
    task = tasks.remote_task(lambda: None, ClusterOptions(), "auto")
    assert task._default_options["max_calls"] == 1 and task._default_options["num_gpus"] == 1
    assert tasks.remote_task(lambda: None, ClusterOptions(), "cpu")._default_options["num_gpus"] == 0


def test_ray_worker_caches_are_keyed_by_the_assigned_gpu(monkeypatch):
    _fake_ray(monkeypatch, [0])
    first = tasks.cache_key("keep", "w", "cuda")
    _fake_ray(monkeypatch, [1])
    assert tasks.cache_key("keep", "w", "cuda") != first


def test_ray_predict_task_honours_device(monkeypatch, tmp_path):
    _fake_ray(monkeypatch, [0])
    seen = []
    from pathpt_engine.pathpt import predictor

    monkeypatch.setattr(predictor, "load_run", lambda run_dir, weights=None, device="cpu": seen.append(device))
    monkeypatch.setattr(cluster_predict, "_RUNS", {})
    out = cluster_predict.predict_chunk(str(tmp_path), None, [], str(tmp_path), "cpu")
    assert seen == ["cpu"] and out["summary"]["device"] == "cpu"
    assert out["summary"]["gpu_ids"] == "0" and "pid" in out["summary"]


# --- no device-less tensor factories (a CUDA-only mismatch, caught on the meta device) -----------------------------

@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return labelled_cohort(tmp_path_factory.mktemp("gpu_path"), n_tiles=30)


def _plan_on(plan: LabelPlan, device: str) -> LabelPlan:
    return LabelPlan(plan.known_idx.to(device), plan.known_labels.to(device), plan.cand_idx.to(device),
                     plan.cand_k.to(device), plan.n_known, plan.n_cand)


@pytest.mark.parametrize("n_tiles", [9, 40])  # lumped short-slide path (n < m = 16) and the shared path
def test_training_step_and_prediction_create_no_tensor_off_the_device(cohort, n_tiles):
    """Everything after the text tower runs on the meta device: a tensor factory without `device=` makes a CPU
    tensor, and mixing it with meta tensors raises, as it would with CUDA tensors."""
    bb, cs, _ = cohort
    torch.manual_seed(0)
    m = PathPTModel(bb, cs.learnable_names(), PathPTConfig(**FAST), bb.embed_dim)
    with torch.no_grad():
        text = m.text_features()
    labels = torch.tensor([0, 1, -1, -2, 2, 3, -3, 0, 1] * 5)[:n_tiles]
    plan = _plan_on(LabelPlan.build(labels), "meta")
    m.spatial.to("meta")
    m.train()
    feats, text = torch.randn(n_tiles, bb.embed_dim, device="meta"), text.to("meta").requires_grad_(True)
    cos = m.cosine(feats, text)
    probs = (10 * cos.float()).softmax(dim=-1)
    out = pathpt_loss(probs, plan, epoch=12)
    out["loss"].backward()
    assert out["loss"].device.type == "meta" and tile_vote_tensor(probs.detach()).device.type == "meta"
    assert all(p.grad is not None and p.grad.device.type == "meta" for p in m.spatial.parameters())
    assert m.predict_probs(feats, text=text.detach()).device.type == "meta"


def test_value_convolution_uses_the_native_gradient_off_the_cpu():
    """The own kernel gradient is for a CPU kernel bug; on other devices (meta here, CUDA in use) it is native."""
    v = torch.randn(1, 2, 40, 4, device="meta", requires_grad=True)
    w = torch.randn(2, 1, 33, 1, device="meta", requires_grad=True)
    assert "SequenceDepthwiseConv" not in type(sequence_depthwise_conv(v, w).grad_fn).__name__
    cpu = sequence_depthwise_conv(torch.randn(1, 2, 40, 4, requires_grad=True), torch.randn(2, 1, 33, 1))
    assert "SequenceDepthwiseConv" in type(cpu.grad_fn).__name__


# --- host syncs per training step ------------------------------------------------------------------------------------

_SYNCING = {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "cpu", "unique", "nonzero",
            "masked_select", "bincount", "repeat_interleave", "unique_consecutive", "allclose", "equal"}


class SyncCounter(TorchFunctionMode):
    """Counts the tensor operations that wait for the device on CUDA (a reading of a value on the host, or an
    output whose size depends on the data), by caller. Frames in torch/optim are left out: the non-fused Adam
    reads its step counter, a host tensor on CUDA too (and CUDA training uses the fused Adam)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter = collections.Counter()
        self.on = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.on and (name in _SYNCING or (name == "__getitem__" and _bool_index(args))):
            caller = traceback.extract_stack(limit=4)[-3]
            if "torch/optim" not in caller.filename:
                self.calls[(name, caller.filename.rsplit("/", 1)[-1], caller.lineno)] += 1
        return func(*args, **(kwargs or {}))


def _bool_index(args) -> bool:
    index = args[1] if len(args) > 1 else None
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items)


def test_a_training_step_reads_the_device_at_most_twice(cohort, monkeypatch):
    """The step's metrics come back in one read; the other one left is transformers' padding-mask check in the text
    tower (`masking_utils`, outside this package). The loss, vote and labels need none (they used to need ~15)."""
    bb, cs, slides = cohort
    counter, steps = SyncCounter(), []
    original = trainer._Fitter._step

    def counted(self, i, epoch):
        counter.on = True
        try:
            return original(self, i, epoch)
        finally:
            counter.on = False
            steps.append(1)

    monkeypatch.setattr(trainer._Fitter, "_step", counted)
    with counter:
        collect(trainer.train_pathpt(bb, cs, slides, PathPTConfig(epochs=11, **FAST)))  # pseudo term from epoch 10
    per_step = sum(counter.calls.values()) / len(steps)
    ours = {k: v for k, v in counter.calls.items() if k[1] != "masking_utils.py"}
    assert sum(ours.values()) == len(steps), ours  # the one metrics read per step
    assert per_step <= 2, counter.calls


# --- out of memory: planned chunks, retries smaller, failed batch released first -----------------------------------

def test_plan_chunk_from_free_memory():
    assert gpu.plan_chunk(50_000, 50_000, 1000, None) == 50_000  # CPU: no plan
    assert gpu.plan_chunk(50_000, 50_000, 1000, 10**9) == 50_000
    assert gpu.plan_chunk(50_000, 50_000, 100_000, 10**9) == 7000  # 70 % of 1 GB / 100 kB
    assert gpu.bytes_per_tile(768, training=True) == 3 * gpu.bytes_per_tile(768)


def test_predict_retries_smaller_after_out_of_memory_with_the_failed_chunk_released(cohort, monkeypatch, caplog):
    bb, cs, slides = cohort
    m = PathPTModel(bb, cs.learnable_names(), PathPTConfig(**FAST), bb.embed_dim).eval()
    x = torch.randn(600, bb.embed_dim)
    want = m.predict_probs(x, chunk=300)
    original, held, released_alive = m.cosine, [], []

    def cosine(features, text=None):
        if features.shape[0] > 300:
            big = torch.empty(1000)
            held.append(weakref.ref(big))
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(features, text)

    def release(device):
        gc.collect()
        released_alive.append(held[-1]() is not None)

    monkeypatch.setattr(m, "cosine", cosine)
    monkeypatch.setattr(model_mod, "release_cached", release)
    with caplog.at_level(logging.WARNING, logger="pathpt_engine.pathpt.model"):
        got = m.predict_probs(x, chunk=600)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert released_alive == [False]
    assert "out of memory" in caplog.text and "retrying with 300" in caplog.text


def test_predict_gives_a_clear_error_when_even_small_chunks_do_not_fit(cohort, monkeypatch):
    from pathpt_engine.errors import DeviceMemoryError

    bb, cs, _ = cohort
    m = PathPTModel(bb, cs.learnable_names(), PathPTConfig(**FAST), bb.embed_dim).eval()

    def cosine(features, text=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(m, "cosine", cosine)
    monkeypatch.setattr(model_mod, "release_cached", lambda device: None)
    with pytest.raises(DeviceMemoryError, match="600 tiles even in chunks of 150"):
        m.predict_probs(torch.randn(600, bb.embed_dim), chunk=600)


def test_training_step_out_of_memory_retries_with_checkpointing(cohort, monkeypatch, caplog):
    """The retried step gives the same weights as an uninterrupted run (checkpointing recomputes, same maths)."""
    bb, cs, slides = cohort
    cfg = PathPTConfig(epochs=2, **FAST)
    plain, _ = collect(trainer.train_pathpt(bb, cs, slides, cfg))
    original, failed = trainer._Fitter._step, []

    def flaky(self, i, epoch):
        if not failed:
            failed.append(1)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        assert self.model.spatial.checkpoint_activations
        return original(self, i, epoch)

    monkeypatch.setattr(trainer._Fitter, "_step", flaky)
    with caplog.at_level(logging.WARNING, logger="pathpt_engine.pathpt.trainer"):
        res, _ = collect(trainer.train_pathpt(bb, cs, slides, cfg))
    assert "retrying with activation checkpointing" in caplog.text
    assert not res.model.spatial.checkpoint_activations
    for k, v in plain.model.state_dict().items():
        torch.testing.assert_close(res.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_checkpointed_spatial_module_gives_the_same_gradients():
    from pathpt_engine.pathpt.spatial import SpatialAwareModule

    torch.manual_seed(0)
    mod = SpatialAwareModule(64, dropout=0.1).train()
    x = torch.randn(1, 50, 64)
    grads = []
    for ckpt in (False, True):
        mod.checkpoint_activations = ckpt
        mod.zero_grad()
        torch.manual_seed(1)  # the same dropout masks
        (mod(x) * torch.linspace(-1, 1, 64)).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in mod.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


# --- non-finite training stops, unsaved (issue 18 §3) ------------------------------------------------------------------

def test_huge_features_stop_training_with_a_clear_message_and_no_run(cohort, tmp_path):
    from dataclasses import replace

    bb, cs, slides = cohort
    bad = [replace(s, features=np.full_like(s.features, 1e30)) for s in slides]
    with pytest.raises(trainer.NonFiniteLossError, match="loss is nan; no run was saved"):
        collect(trainer.train_pathpt(bb, cs, bad, PathPTConfig(epochs=2, **FAST), out_dir=tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_infinite_lr_stops_training_with_a_clear_message_and_no_run(cohort, tmp_path):
    """lr = inf: epoch 0 runs at lr inf * 0 = nan, the weights go NaN, the next loss is NaN; with a single step the
    final weight check catches it."""
    bb, cs, slides = cohort
    for epochs, slides_used in ((2, slides), (1, slides[:1])):
        out = tmp_path / f"run{epochs}"
        with pytest.raises(trainer.NonFiniteLossError, match="no run was saved"):
            collect(trainer.train_pathpt(bb, cs, slides_used[:1] if epochs == 1 else slides_used,
                                         PathPTConfig(epochs=epochs, lr=float("inf"), **FAST), out_dir=out))
        assert not out.exists()


def test_cli_train_on_huge_features_exits_2_with_one_line_and_no_run(tmp_path, capsys):
    import h5py

    from pathpt_engine.cli import main

    bb_dir = tmp_path / "keep"
    bb = tiny_backbone(bb_dir)
    feats, labels = make_fake_cohort(tmp_path / "c", bb, load_classset("synthetic"), per_class=1, n_tiles=12)
    for path in feats.glob("*.h5"):
        with h5py.File(path, "r+") as f:
            f["features"][...] = 1e30
    code = main(["-q", "train", "--features", str(feats), "--labels", str(labels), "--backbone", "keep",
                 "--weights", str(bb_dir), "--classes", "synthetic", "--device", "cpu", "--epochs", "2",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no run was saved" in err[0], err
    assert not (tmp_path / "run" / "checkpoint.json").exists()


# --- CUDA numerics ------------------------------------------------------------------------------------------------------

def test_cuda_numerics_sets_and_restores_the_flags(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
              torch.are_deterministic_algorithms_enabled())
    torch.backends.cudnn.allow_tf32 = True  # torch's own default: TF32 convolutions
    with gpu.cuda_numerics(torch.device("cuda"), tf32=False, deterministic=True):
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cuda.math_sdp_enabled() and not torch.backends.cuda.flash_sdp_enabled()
        assert not torch.backends.cuda.mem_efficient_sdp_enabled()  # fused attention backward is not deterministic
    assert torch.backends.cuda.flash_sdp_enabled()
    assert torch.backends.cudnn.allow_tf32
    with gpu.cuda_numerics(torch.device("cuda"), tf32=True, deterministic=False):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    with gpu.cuda_numerics(torch.device("cpu"), tf32=True):
        assert not torch.backends.cuda.matmul.allow_tf32  # CPU runs leave the flags alone
    torch.backends.cudnn.allow_tf32 = before[1]
    assert (torch.backends.cuda.matmul.allow_tf32, torch.are_deterministic_algorithms_enabled()) == \
        (before[0], before[2])


def test_training_on_cuda_runs_inside_the_numerics_context(cohort, monkeypatch):
    bb, cs, slides = cohort
    seen = []

    def numerics(device, tf32=False, deterministic=True):
        seen.append((device.type, tf32, deterministic))
        return gpu.cuda_numerics(torch.device("cpu"))

    monkeypatch.setattr(trainer, "cuda_numerics", numerics)
    collect(trainer.train_pathpt(bb, cs, slides[:2], PathPTConfig(epochs=1, tf32=True, **FAST)))
    assert seen == [("cpu", True, True)]


def test_device_vote_equals_the_vote_rule():
    from pathpt_engine.ops.vote import tile_vote

    rng = np.random.default_rng(0)
    for t in range(2000):  # integer-valued scores on even t: ties everywhere
        n, c = int(rng.integers(1, 12)), int(rng.integers(2, 5))
        p = rng.integers(0, 4, (n, c)).astype(np.float32) + rng.random((n, c)).astype(np.float32) * (t % 2)
        assert tile_vote(p)[0] == int(tile_vote_tensor(torch.from_numpy(p))), p


def test_tile_encoder_empties_the_cache_only_after_the_failed_batch_is_released(monkeypatch):
    """CUDA device faked: `_forward` holds a tensor in its frame and raises out of memory; when empty_cache runs,
    that tensor must be gone (it used to run inside the except block, with the traceback still holding it)."""
    from pathpt_engine.backbones.encode import TileEncoder

    class Fake(torch.nn.Module):
        name, embed_dim = "fake", 3

    enc = TileEncoder(Fake(), torch.device("cuda"), None, batch_size=8)
    held, alive_at_empty = [], []

    def forward(x):
        if len(x) > 4:
            failed_batch = torch.empty(1000)
            held.append(weakref.ref(failed_batch))
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return x.flatten(1)[:, :3].float()

    def empty_cache():
        gc.collect()
        alive_at_empty.append(held[-1]() is not None)

    monkeypatch.setattr(enc, "_forward", forward)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "empty_cache", empty_cache)
    x = torch.randn(10, 3, 2, 2)
    np.testing.assert_allclose(enc.encode(x), x.flatten(1)[:, :3].numpy())
    assert alive_at_empty == [False] and enc.batch_size == 4


def test_prediction_and_mil_training_run_inside_the_numerics_context(cohort, monkeypatch):
    """Strict numerics cover evaluation too: PathPT prediction (with the run's tf32 setting) and the MIL baselines."""
    from pathpt_engine.baselines import dgrmil
    from pathpt_engine.baselines import train as mil_train

    seen = []

    def numerics(device, tf32=False, deterministic=True):
        seen.append((device.type, tf32))
        return gpu.cuda_numerics(torch.device("cpu"))

    for mod in (model_mod, mil_train, dgrmil):
        monkeypatch.setattr(mod, "cuda_numerics", numerics)
    bb, cs, _ = cohort
    m = PathPTModel(bb, cs.learnable_names(), PathPTConfig(tf32=True, **FAST), bb.embed_dim)
    m.predict_probs(torch.randn(10, bb.embed_dim))
    bags = [(np.random.default_rng(i).normal(size=(8, 16)).astype(np.float32), i % 2) for i in range(2)]
    model, _ = collect(mil_train.train_mil(mil_train.MILConfig(epochs=1), 2, bags))
    mil_train.predict_mil(model, bags[0][0])
    collect(dgrmil.train_dgrmil(dgrmil.DGRMILConfig(epochs=1, dim=64), 2, bags))
    assert seen == [("cpu", True), ("cpu", False), ("cpu", False), ("cpu", False)]


def test_loss_and_vote_use_no_atomic_accumulation():
    """Seeded CUDA runs repeat only if the per-step sums do not come from atomic adds (scatter_add_, gather's
    backward, bincount), whose order varies between runs."""

    class Names(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.names: set[str] = set()

        def __torch_function__(self, func, types, args=(), kwargs=None):
            self.names.add(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    scores = torch.randn(30, 4, requires_grad=True)
    plan = LabelPlan.build(torch.tensor([0, 1, -1, -2, 2, 3, -3, 0, 1, -1] * 3))
    rec = Names()
    with rec:
        pathpt_loss(scores.softmax(-1), plan, epoch=12)["loss"].backward()
        tile_vote_tensor(scores.detach())
    assert not rec.names & {"scatter_add_", "scatter_add", "gather", "index_add_", "bincount", "index_put_"}


def test_cluster_evaluate_with_device_auto_lets_the_workers_decide(monkeypatch, tmp_path):
    """`--device auto` reaches the Ray tasks as "auto" (their assigned GPU decides), not as the driver's own
    resolution (a GPU-less driver would have sent every task to the CPU)."""
    import argparse

    from pathpt_engine.cluster import cli as cluster_cli
    from pathpt_engine.evaluate import EvalConfig

    seen = []

    def fake_evaluate(inputs, folds, out, cfg, copts):
        seen.append(cfg.pathpt.device)
        (tmp_path / "results.md").write_text("table\n")
        return {}
        yield  # a job

    monkeypatch.setattr(tasks, "evaluate_cluster", fake_evaluate)
    args = argparse.Namespace(cluster="local", cpus_per_task=1, allow_network=False, backbone="keep", weights=None,
                              classes="synthetic", features=str(tmp_path), masks=None, out=str(tmp_path), quiet=True,
                              device="auto")
    cfg = EvalConfig(pathpt=PathPTConfig(device="cpu"))  # what the driver resolved "auto" to without a GPU
    assert cluster_cli.run_evaluate(args, {}, cfg) == 0
    args.device = "cpu"
    assert cluster_cli.run_evaluate(args, {}, cfg) == 0
    assert seen == ["auto", "cpu"]


def test_training_plans_activation_checkpointing_from_free_memory(cohort, monkeypatch, caplog):
    bb, cs, slides = cohort
    seen = []
    original = trainer._Fitter._step

    def spy(self, i, epoch):
        seen.append(self.model.spatial.checkpoint_activations)
        return original(self, i, epoch)

    monkeypatch.setattr(trainer._Fitter, "_step", spy)
    monkeypatch.setattr(trainer, "free_bytes", lambda device: 100_000)  # 100 kB "free": 30 tiles (~460 kB) do not fit
    with caplog.at_level(logging.WARNING, logger="pathpt_engine.pathpt.trainer"):
        res, _ = collect(trainer.train_pathpt(bb, cs, slides, PathPTConfig(epochs=1, **FAST)))
    assert seen and all(seen) and "checkpointing activations" in caplog.text
    assert not res.model.spatial.checkpoint_activations  # reset after the run
    monkeypatch.setattr(trainer, "free_bytes", lambda device: 80 * 2**30)
    seen.clear()
    collect(trainer.train_pathpt(bb, cs, slides, PathPTConfig(epochs=1, **FAST)))
    assert seen and not any(seen)
