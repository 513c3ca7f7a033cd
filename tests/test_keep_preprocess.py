"""KEEP's transform (torchvision Resize(224, bicubic) + CenterCrop(224) on a PIL image) reproduced exactly.

The reference is written here with Pillow directly, the way torchvision's PIL path computes it: the short side
becomes `size`, the long side `int(size * long / short)`, Pillow resamples the uint8 image, the crop starts at
`int(round((side - crop) / 2))`, then ToTensor (/255) and Normalize.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.base import Preprocess
from pathpt_engine.backbones.encode import TileEncoder
from pathpt_engine.backbones.fast_preprocess import FastPreprocess
from pathpt_engine.testing.backbones import make_tiny_keep_folder

torch.set_num_threads(1)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def keep_transform(tile: np.ndarray, size: int, crop: int) -> torch.Tensor:
    img = Image.fromarray(tile, "RGB")
    w, h = img.size
    short, long = min(w, h), max(w, h)
    if short != size:
        new_long = int(size * long / short)
        img = img.resize((size, new_long) if w <= h else (new_long, size), Image.BICUBIC)
    w, h = img.size
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    img = img.crop((left, top, left + crop, top + crop))
    x = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1).contiguous().float().div(255)
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def _tiles(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    x[0, :, : w // 2], x[0, :, w // 2 :] = 255, 0  # a step: bicubic overshoots, the uint8 clamp binds
    return x


# 256 (the usual 256-px tile), 240, a non-square tile whose long side truncates (331.52 -> 331, torch rounds to 332)
# and whose crop offset rounds half to even (53.5 -> 54, not 53)
SIZES = [(256, 256), (240, 240), (225, 333), (333, 225)]


@pytest.mark.parametrize("size", SIZES)
def test_pil_resampler_is_keeps_transform_exactly(size: tuple[int, int]) -> None:
    tiles = _tiles(3, *size)
    ref = torch.stack([keep_transform(t, 224, 224) for t in tiles])
    pre = Preprocess(224, 224, MEAN, STD, resampler="pil")
    np.testing.assert_array_equal(pre(tiles).numpy(), ref.numpy())
    np.testing.assert_array_equal(FastPreprocess(pre)(tiles).numpy(), ref.numpy())


def test_torch_resampler_differs_from_keeps_transform() -> None:
    """The float antialiased resize is not KEEP's: the exact test above can tell them apart."""
    tiles = _tiles(3, 256, 256)
    ref = torch.stack([keep_transform(t, 224, 224) for t in tiles])
    assert (Preprocess(224, 224, MEAN, STD, resampler="torch")(tiles) - ref).abs().max() > 1e-3


def test_tiles_at_224_are_not_resampled() -> None:
    tiles = _tiles(4, 224, 224)
    pre = Preprocess(224, 224, MEAN, STD, resampler="pil")
    x = torch.from_numpy(tiles)
    assert pre.host_resize(x) is x  # no Pillow pass
    fast = FastPreprocess(pre)
    ref = torch.stack([keep_transform(t, 224, 224) for t in tiles])
    np.testing.assert_array_equal(fast(tiles).numpy(), ref.numpy())
    np.testing.assert_array_equal(pre(tiles).numpy(), ref.numpy())


def test_published_keep_folder_uses_keeps_transform_and_the_demo_keeps_its_own(tmp_path: Path) -> None:
    """A folder without a `preprocess` block (the published KEEP config) gets the exact PIL path, through the
    model's preprocess and the extraction path; a project-made folder with a block keeps the torch resize."""
    folder = make_tiny_keep_folder(tmp_path / "keep")  # img_size 32: tiles of 48 px are resized
    assert "preprocess" not in json.loads((folder / "config.json").read_text())
    model = load_backbone("keep", folder)
    tiles = _tiles(5, 48, 48)
    ref = torch.stack([keep_transform(t, 32, 32) for t in tiles])
    np.testing.assert_array_equal(model.preprocess(tiles).numpy(), ref.numpy())
    assert model.preprocess.resampler == "pil"
    enc = TileEncoder(model, torch.device("cpu"), None, 8)  # one batch: the same matmuls as the direct call
    np.testing.assert_array_equal(enc.host_transform(tiles).numpy(), ref.numpy())
    with torch.inference_mode():
        np.testing.assert_array_equal(enc.encode(enc.host_transform(tiles)), model.encode_image(ref).numpy())
    block = {"preprocess": {"resize": 32, "crop": 32}}
    own = load_backbone("keep", make_tiny_keep_folder(tmp_path / "own", config_overrides=block))
    assert own.preprocess.resampler == "torch"
    named = {"preprocess": {"resize": 32, "crop": 32, "resampler": "pil"}}
    assert load_backbone("keep", make_tiny_keep_folder(tmp_path / "n", config_overrides=named)).preprocess.resampler \
        == "pil"


def test_device_path_resizes_on_the_host() -> None:
    """With preprocessing on the device, the Pillow resize still happens in the batcher (uint8, on the host)."""
    pre = Preprocess(224, 224, MEAN, STD, resampler="pil")
    tiles = _tiles(2, 256, 256)
    host = pre.host_resize(tiles)
    assert host.dtype == torch.uint8 and tuple(host.shape) == (2, 224, 224, 3)
    np.testing.assert_array_equal(pre(host).numpy(), pre(tiles).numpy())


def test_encoder_device_path_resizes_in_the_batcher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA path (uint8 batches, preprocessed on the device), run on the CPU: the batcher hands over tiles
    already resized by Pillow, and the embeddings equal those of the exact transform."""
    model = load_backbone("keep", make_tiny_keep_folder(tmp_path / "keep"))
    monkeypatch.setattr(TileEncoder, "preprocess_on_device", property(lambda self: True))
    enc = TileEncoder(model, torch.device("cpu"), None, 8)
    tiles = _tiles(5, 48, 48)
    batch = enc.host_transform(tiles)
    assert batch.dtype == torch.uint8 and tuple(batch.shape) == (5, 32, 32, 3)
    ref = torch.stack([keep_transform(t, 32, 32) for t in tiles])
    with torch.inference_mode():
        np.testing.assert_array_equal(enc.encode(batch), model.encode_image(ref).numpy())


def test_unknown_resampler_is_refused() -> None:
    with pytest.raises(ValueError, match="resampler"):
        Preprocess(224, 224, resampler="cv2")
