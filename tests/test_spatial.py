"""Nyström attention and the spatial-aware module against slow, direct implementations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference_ops import depthwise_conv_grads_float64

from pathpt_engine.ops.nystrom import NystromAttention, TransLayer, moore_penrose_pinv
from pathpt_engine.pathpt.spatial import SpatialAwareModule


def slow_nystrom(attn: NystromAttention, x: np.ndarray, keep_last: bool = True) -> np.ndarray:
    """Loop-based float64 re-derivation of the aligned Nyström forward from method.md §9."""
    w_qkv = attn.to_qkv.weight.detach().double().numpy()
    w_out = attn.to_out[0].weight.detach().double().numpy()
    b_out = attn.to_out[0].bias.detach().double().numpy()
    h, d, m = attn.heads, attn.dim_head, attn.num_landmarks
    n = x.shape[0]
    pad = 0 if n % m == 0 else m - n % m
    xp = np.concatenate([np.zeros((pad, x.shape[1])), x], axis=0)
    qkv = xp @ w_qkv.T
    inner = h * d
    run = math.ceil(n / m)

    def softmax(a):
        e = np.exp(a - a.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    heads_out = []
    a2s = []
    for i in range(h):
        q = qkv[:, i * d:(i + 1) * d] * d**-0.5
        a2s.append((q, qkv[:, inner + i * d: inner + (i + 1) * d], qkv[:, 2 * inner + i * d: 2 * inner + (i + 1) * d]))
    # pinv init uses maxima over all heads
    parts = []
    for q, k, v in a2s:
        ql = np.stack([q[j * run:(j + 1) * run].sum(0) / run for j in range(m)])
        kl = np.stack([k[j * run:(j + 1) * run].sum(0) / run for j in range(m)])
        parts.append((softmax(q @ kl.T), softmax(ql @ kl.T), softmax(ql @ k.T), v))
    colmax = max(np.abs(p[1]).sum(axis=1).max() for p in parts)
    rowmax = max(np.abs(p[1]).sum(axis=0).max() for p in parts)
    for i, (a1, a2, a3, v) in enumerate(parts):
        z = a2.T / (colmax * rowmax)
        eye = np.eye(m)
        for _ in range(attn.pinv_iterations):
            xz = a2 @ z
            z = 0.25 * z @ (13 * eye - xz @ (15 * eye - xz @ (7 * eye - xz)))
        o = a1 @ z @ (a3 @ v)
        if attn.res_conv is not None:
            kern = attn.res_conv.weight.detach().double().numpy()[i, 0, :, 0]
            half = len(kern) // 2
            vp = np.concatenate([np.zeros((half, d)), v, np.zeros((half, d))])
            o = o + np.stack([(kern[:, None] * vp[t:t + len(kern)]).sum(0) for t in range(len(v))])
        heads_out.append(o)
    out = np.concatenate(heads_out, axis=1) @ w_out.T + b_out
    return out[-n:] if keep_last else out[:n]


@pytest.mark.parametrize("reassociate", [True, False])
@pytest.mark.parametrize("n", [1, 5, 8, 13, 16])
def test_nystrom_matches_slow_direct(n, reassociate):
    torch.manual_seed(0)
    attn = NystromAttention(16, heads=2, dim_head=4, num_landmarks=4, residual_kernel=5,
                            reassociate=reassociate).double().eval()
    x = torch.randn(1, n, 16, dtype=torch.float64)
    ours = attn(x)[0].detach().numpy()
    np.testing.assert_allclose(ours, slow_nystrom(attn, x[0].numpy()), rtol=1e-9, atol=1e-10)


def test_misaligned_flag_keeps_first_rows():
    torch.manual_seed(1)
    attn = NystromAttention(16, heads=2, dim_head=4, num_landmarks=4, residual_kernel=5).double().eval()
    x = torch.randn(1, 6, 16, dtype=torch.float64)  # padded to 8, p = 2
    attn.misaligned = True
    ours = attn(x)[0].detach().numpy()
    np.testing.assert_allclose(ours, slow_nystrom(attn, x[0].numpy(), keep_last=False), rtol=1e-9, atol=1e-10)
    attn.misaligned = False
    aligned = attn(x)[0].detach().numpy()
    # misaligned row i == aligned output of padded row i, i.e. aligned row i - p for i >= p
    np.testing.assert_allclose(ours[2:], aligned[:4], rtol=1e-9, atol=1e-10)


def test_short_sequence_equals_exact_attention_with_zero_pads():
    """n <= m: run length 1, so with enough pinv iterations the output is exact softmax attention over the n
    real keys plus m - n zero keys (which score 0 and carry zero values)."""
    torch.manual_seed(2)
    attn = NystromAttention(8, heads=1, dim_head=8, num_landmarks=6, pinv_iterations=40,
                            residual_kernel=0).double().eval()
    x = torch.randn(1, 3, 8, dtype=torch.float64) * 0.5
    ours = attn(x)[0].detach()
    xp = torch.cat([torch.zeros(3, 8, dtype=torch.float64), x[0]])
    q, k, v = attn.to_qkv(xp).chunk(3, dim=-1)
    exact = ((q * 8**-0.5) @ k.T).softmax(-1) @ v
    exact = attn.to_out(exact)[-3:]
    torch.testing.assert_close(ours, exact, rtol=1e-6, atol=1e-8)


def test_pinv_inverts_a_softmax_matrix():
    torch.manual_seed(3)
    a = torch.randn(2, 5, 5, dtype=torch.float64).softmax(-1)
    z = moore_penrose_pinv(a, iters=30)
    torch.testing.assert_close(z, torch.linalg.inv(a), rtol=1e-6, atol=1e-8)


def test_pinv_scale_uses_max_over_all_heads():
    a = torch.stack([torch.eye(2, dtype=torch.float64), 3 * torch.eye(2, dtype=torch.float64)])
    z0 = moore_penrose_pinv(a, iters=0)
    # max col sum 3, max row sum 3 -> z0 = aᵀ / 9 for both heads
    torch.testing.assert_close(z0, a.transpose(-1, -2) / 9)


@pytest.mark.parametrize("dim", [32, 64])
def test_spatial_module_shapes_and_scaling(dim):
    mod = SpatialAwareModule(dim).eval()
    assert mod.trans.attn.num_landmarks == dim // 2
    assert mod.trans.attn.dim_head == dim // 8
    for n in (1, 7, 40):
        assert mod(torch.randn(n, dim)).shape == (n, dim)
        assert mod(torch.randn(1, n, dim)).shape == (1, n, dim)


def test_spatial_module_matches_direct_formula():
    torch.manual_seed(4)
    mod = SpatialAwareModule(32).double().eval()
    x = torch.randn(1, 9, 32, dtype=torch.float64)
    ln, relu = mod.norm, torch.relu
    h = x.clone()
    for conv, k in zip(mod.convs, (3, 5, 7), strict=True):
        w, b = conv.weight, conv.bias  # [out, in, k]
        xp = torch.nn.functional.pad(x[0].T, (k // 2, k // 2))
        y = torch.stack([(w * xp[None, :, t:t + k]).sum((1, 2)) + b for t in range(9)])
        h = h + relu(ln(y))[None]
    hp = h + torch.from_numpy(slow_nystrom(mod.trans.attn, mod.trans.norm(h)[0].detach().numpy()))[None]
    torch.testing.assert_close(mod(x), ln(hp), rtol=1e-9, atol=1e-9)


def test_spatial_module_parameter_count_at_768():
    mod = SpatialAwareModule(768)
    n = sum(p.numel() for p in mod.parameters())
    # 3 convs (768*768*15 + 3*768) + qkv 768*2304 + out 768*768+768 + res conv 8*33 + 2 LayerNorms
    assert n == 768 * 768 * 15 + 3 * 768 + 768 * 2304 + 768 * 768 + 768 + 264 + 4 * 768


def test_translayer_rejects_bad_dim():
    with pytest.raises(ValueError, match='multiple of 16'):
        TransLayer(20)


def test_fast_spatial_module_equals_reference_order_in_float32():
    """The reassociated Nyström product gives the reference order's outputs and gradients up to float32
    rounding, at a realistic width (D = 256, 8 heads, 128 landmarks, 700 tiles: 6 landmark runs): both float32
    orders sit as close to the float64 truth as each other."""
    torch.manual_seed(5)
    fast, ref = SpatialAwareModule(256, fast=True), SpatialAwareModule(256, fast=False)
    ref.load_state_dict(fast.state_dict())
    truth = SpatialAwareModule(256, fast=False).double()
    truth.load_state_dict(ref.state_dict())
    assert fast.trans.attn.reassociate and not ref.trans.attn.reassociate
    x = torch.nn.functional.normalize(torch.randn(1, 700, 256), dim=-1)
    results = []
    for mod, inp in ((fast, x), (ref, x), (truth, x.double())):
        mod.eval()
        out = mod(inp)
        (out * torch.linspace(-1, 1, 256, dtype=inp.dtype)).sum().backward()
        results.append((out.detach().double(), torch.cat([p.grad.flatten() for p in mod.parameters()]).double()))
    (out_f, grad_f), (out_r, grad_r), (out_t, grad_t) = results
    torch.testing.assert_close(out_f, out_r, rtol=1e-5, atol=1e-5)

    def rel(a, b):
        return float((a - b).norm() / b.norm())

    assert rel(grad_f, grad_r) < 1e-5
    assert rel(out_f, out_t) < 2 * rel(out_r, out_t) + 1e-7
    assert rel(grad_f, grad_t) < 2 * rel(grad_r, grad_t) + 1e-7


@pytest.mark.parametrize(("b", "n", "d"), [(1, 256, 16), (1, 1216, 8), (2, 256, 4), (1, 5, 3), (3, 70, 6)])
def test_value_convolution_gradients_match_float64(b, n, d):
    """Kernel and input gradients of the value convolution against a float64 shift-and-add reference, at lengths
    where torch 2.13's own CPU kernel gradient is wrong (256, 1216) and at ordinary ones."""
    from pathpt_engine.ops.nystrom import sequence_depthwise_conv

    torch.manual_seed(n)
    h, k = 4, 33
    v = torch.randn(b, h, n, d, requires_grad=True)
    w = torch.randn(h, 1, k, 1, requires_grad=True)
    g = torch.randn(b, h, n, d)
    (sequence_depthwise_conv(v, w) * g).sum().backward()

    w_ref, v_ref = depthwise_conv_grads_float64(v, w, g)
    torch.testing.assert_close(w.grad.double(), w_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v.grad.double(), v_ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [1, 40, 127])
def test_fast_spatial_module_on_short_sequences_equals_reference(n):
    """Fewer tiles than landmarks (D/2 = 128): the fast module takes the exact lumped path and still equals the
    reference operations, forward and parameter gradients."""
    from pathpt_engine.ops.lumped_nystrom import LumpedNystromAttention

    torch.manual_seed(n)
    fast, ref = SpatialAwareModule(256, fast=True).eval(), SpatialAwareModule(256, fast=False).eval()
    ref.load_state_dict(fast.state_dict())
    assert type(fast.trans.attn) is LumpedNystromAttention and type(ref.trans.attn) is NystromAttention
    x = torch.nn.functional.normalize(torch.randn(1, n, 256), dim=-1)
    outs, grads = [], []
    for mod in (fast, ref):
        out = mod(x)
        (out * torch.linspace(-1, 1, 256)).sum().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in mod.parameters()]))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-5, atol=1e-5)
    assert float((grads[0] - grads[1]).norm() / grads[1].norm()) < 1e-4
