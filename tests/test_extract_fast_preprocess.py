"""The CPU fast preprocessing (strided-convolution resize, fused normalisation) against the plain reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.base import Preprocess
from pathpt_engine.backbones.encode import TileEncoder
from pathpt_engine.backbones.fast_preprocess import FastPreprocess, plan_axis, resize_matrix

torch.set_num_threads(1)


def _tiles(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Random tiles plus the hard cases: black, white, and a black/white step (bicubic over/undershoots)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    x[0] = 0
    x[1] = 255
    x[2, :, : w // 2], x[2, :, w // 2 :] = 255, 0
    x[3, : h // 3], x[3, h // 3 :] = 0, 255
    return x


CASES = [
    (Preprocess(112, 112), (224, 224)),  # the demo model
    (Preprocess(112, 96), (224, 224)),  # crop < resize
    (Preprocess(112, 112, interpolation="bilinear"), (224, 224)),
    (Preprocess(112, 112, interpolation="nearest"), (224, 224)),
    (Preprocess(224, 224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)), (224, 224)),  # no resize
    (Preprocess(224, 200), (224, 224)),  # no resize, crop
    (Preprocess(64, 64), (256, 256)),  # stride 4
    (Preprocess(112, 112), (224, 336)),  # non-square
    (Preprocess(224, 224), (256, 256)),  # ratio 8/7: no strided plan, reference path
]


@pytest.mark.parametrize(("pre", "size"), CASES)
def test_fast_preprocess_equals_reference(pre: Preprocess, size: tuple[int, int]) -> None:
    tiles = _tiles(11, *size)  # more than one chunk of 8
    ref = pre(tiles)
    fast = FastPreprocess(pre)(tiles)
    assert fast.shape == ref.shape == (11, 3, pre.crop, pre.crop) and fast.dtype == torch.float32
    np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=0, atol=1e-5)
    single = FastPreprocess(pre)(tiles[4])  # one tile [H, W, 3]
    np.testing.assert_allclose(single.numpy(), ref[4:5].numpy(), rtol=0, atol=1e-5)


def test_the_clamp_is_exercised_and_kept() -> None:
    """The black/white step overshoots [0, 1] in the bicubic resize: the clamp must bind in both paths."""
    pre = Preprocess(112, 112)
    tiles = _tiles(4, 224, 224)
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    raw = torch.nn.functional.interpolate(x, size=(112, 112), mode="bicubic", antialias=True)
    assert raw.max() > 1.0 + 1e-3 and raw.min() < -1e-3  # otherwise this test would prove nothing
    fast = FastPreprocess(pre)(tiles)
    lo = (0 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    hi = (1 - torch.tensor(pre.mean)) / torch.tensor(pre.std)
    assert torch.all(fast >= lo.view(1, 3, 1, 1) - 1e-5) and torch.all(fast <= hi.view(1, 3, 1, 1) + 1e-5)


def test_fast_path_taken_only_where_a_strided_plan_exists() -> None:
    pre = Preprocess(112, 112)
    fp = FastPreprocess(pre)
    assert fp.supports(224, 224) and fp.supports(112, 112) and fp.supports(448, 448)
    assert not fp.supports(200, 200)  # 200 -> 112 is not an integer stride
    m = resize_matrix(pre, 224, 112)
    plan = plan_axis(m)
    assert plan is not None and plan.stride == 2 and plan.n_out == 112
    assert plan.scale[0] != 1 and float(plan.scale[56]) == pytest.approx(1.0, abs=1e-6)  # border renormalised
    assert plan_axis(resize_matrix(pre, 256, 224)) is None


def test_demo_features_match_reference_preprocessing() -> None:
    """Encoder output on a few real slide-like tiles: new host path vs plain `model.preprocess`, within 1e-5."""
    from pathpt_engine.synth import render_patch

    model = load_backbone("demo", device="cpu")
    rng = np.random.default_rng(3)
    tiles = np.stack([render_patch(k % 4, size=224, rng=rng, mpp=0.5) for k in range(6)])
    enc = TileEncoder(model, torch.device("cpu"), None, 4)
    with torch.inference_mode():
        ref = model.encode_image(model.preprocess(tiles)).numpy()
    new = enc.encode(enc.host_transform(tiles))
    np.testing.assert_allclose(new, ref, rtol=0, atol=1e-5)
    assert np.abs(ref).max() > 0.05  # non-trivial features
