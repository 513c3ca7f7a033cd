"""The MIL baselines' lumped Nyström fast path computes the same function as the shared implementation."""

from __future__ import annotations

import copy

import pytest
import torch

from pathpt_engine.baselines.dgrmil import DGRMIL
from pathpt_engine.baselines.models import TransMIL
from pathpt_engine.ops.lumped_nystrom import LumpedNystromAttention, lumped_pinv, use_lumped_nystrom
from pathpt_engine.ops.nystrom import NystromAttention, TransLayer, moore_penrose_pinv


def _reference(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` that runs the shared (unlumped) Nyström implementation."""
    ref = copy.deepcopy(model)
    n_switched = 0
    for sub in ref.modules():
        if type(sub) is LumpedNystromAttention:
            sub.__class__ = NystromAttention
            n_switched += 1
    assert n_switched > 0
    return ref


def test_models_use_the_fast_path():
    assert all(type(m.attn) is LumpedNystromAttention for m in (TransMIL(16, 2).layer1, TransMIL(16, 2).layer2))
    d = DGRMIL(16, 2, dim=64)
    assert type(d.tile_layer.attn) is LumpedNystromAttention and type(d.global_layer.attn) is LumpedNystromAttention


def test_lumped_pinv_equals_full_pinv():
    """A 40x40 matrix with 30 identical 'pad' rows and, per row, identical pad columns, lumped to 11x11."""
    torch.manual_seed(0)
    p, n = 30, 10
    lumped = torch.rand(2, 3, n + 1, n + 1)
    idx = torch.cat([torch.zeros(p, dtype=torch.long), torch.arange(1, n + 1)])
    full = lumped[:, :, idx][:, :, :, idx]
    w = torch.ones(n + 1)
    w[0] = p
    got = lumped_pinv(lumped, w, 6)[:, :, idx][:, :, :, idx]
    torch.testing.assert_close(got, moore_penrose_pinv(full, 6), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 26, 127])
def test_layer_forward_backward_and_row_attention_equal(n):
    torch.manual_seed(n)
    fast = use_lumped_nystrom(TransLayer(256, dropout=0.0)).eval()
    ref = _reference(fast)
    x = (2 * torch.randn(2, n, 256)).requires_grad_(True)
    a, b = ref(x), fast(x)
    torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    ga, = torch.autograd.grad(a.square().sum(), x)
    gb, = torch.autograd.grad(b.square().sum(), x)
    torch.testing.assert_close(gb, ga, rtol=1e-4, atol=1e-4)
    with torch.no_grad():
        normed = fast.norm(x)
        torch.testing.assert_close(fast.attn.row_attention(normed, 0), ref.attn.row_attention(normed, 0),
                                   rtol=0, atol=1e-7)


def test_long_bags_and_misaligned_fall_back():
    torch.manual_seed(0)
    fast = use_lumped_nystrom(TransLayer(64, dropout=0.0)).eval()  # m = 32 landmarks
    ref = _reference(fast)
    for n in (32, 45):  # n == m (no pad) and n > m (runs of 2): the shared code path, bit for bit
        x = torch.randn(1, n, 64)
        assert torch.equal(fast(x), ref(x))
    fast.attn.misaligned = ref.attn.misaligned = True
    x = torch.randn(1, 7, 64)
    assert torch.equal(fast(x), ref(x))


@pytest.mark.parametrize("n", [1, 9, 20, 24])
def test_transmil_outputs_equal_reference(n):
    torch.manual_seed(1)
    model = TransMIL(128, 3).eval()
    ref = _reference(model)
    x = torch.randn(n, 128)
    with torch.no_grad():
        a, b = ref(x), model(x)
    torch.testing.assert_close(b["logits"], a["logits"], rtol=0, atol=1e-5)
    torch.testing.assert_close(b["tile_scores"], a["tile_scores"], rtol=0, atol=1e-7)


@pytest.mark.parametrize("mode", ["paper", "clean"])
def test_dgrmil_outputs_and_gradients_equal_reference(mode):
    """Reference gradients with oneDNN off: its depthwise-conv weight gradient is wrong at sequence length 256
    on torch 2.13 CPU (see test_value_conv_weight_gradient_is_exact), and the reference pads to 256."""
    torch.manual_seed(2)
    model = DGRMIL(128, 3, mode=mode).eval()
    ref = _reference(model)
    x = torch.randn(20, 128)
    with torch.backends.mkldnn.flags(enabled=False):
        a = ref(x)
        a["logits"].sum().backward()
    b = model(x)
    b["logits"].sum().backward()
    torch.testing.assert_close(b["logits"], a["logits"], rtol=0, atol=1e-5)
    torch.testing.assert_close(b["tile_scores"], a["tile_scores"], rtol=0, atol=1e-6)
    for (name, pa), pb in zip(ref.named_parameters(), model.parameters(), strict=True):
        if pa.grad is not None:
            torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-3, atol=1e-5, msg=name)


def test_value_conv_weight_gradient_is_exact(monkeypatch):
    """The fast path's value-convolution weight gradient equals a float64 computation (default backends)."""
    torch.manual_seed(3)
    layer = use_lumped_nystrom(TransLayer(512, dropout=0.0)).eval()
    x = torch.randn(1, 20, 512)
    grad_out = _conv_output_grad(layer, x, monkeypatch)  # also leaves the parameter gradients of that backward
    with torch.no_grad():
        attn = layer.attn
        v = attn._split(attn.to_qkv(layer.norm(x)).chunk(3, dim=-1)[2]).double()  # [1, 8, 20, 64]
    k = attn.res_conv.weight.shape[2]
    vp = torch.nn.functional.pad(v, (0, 0, k // 2, k // 2))
    want = torch.stack([torch.stack([(grad_out[0, c] * vp[0, c, t : t + 20]).sum() for t in range(k)])
                        for c in range(8)])
    torch.testing.assert_close(attn.res_conv.weight.grad[:, 0, :, 0].double(), want, rtol=1e-4, atol=1e-4)


def _conv_output_grad(layer: TransLayer, x: torch.Tensor, monkeypatch) -> torch.Tensor:
    """d loss / d (value convolution output) for loss = layer(x).square().sum(), via a tensor hook (float64)."""
    from pathpt_engine.ops import lumped_nystrom

    store: list[torch.Tensor] = []
    original = lumped_nystrom.sequence_depthwise_conv

    def hooked(v, w):
        out = original(v, w)
        out.register_hook(store.append)
        return out

    monkeypatch.setattr(lumped_nystrom, "sequence_depthwise_conv", hooked)
    layer.zero_grad()
    layer(x).square().sum().backward()
    assert len(store) == 1, "the value convolution did not run through sequence_depthwise_conv"
    return store[0].double()
