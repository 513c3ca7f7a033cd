"""HF CLIP-family adapter: tiny CLIPModel folders, exact agreement with the library forward, strict errors."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import pytest
import torch
from backbone_fixtures import edit_weights, tiny_backbone_fixtures
from torch.nn import functional as F

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.clip import causal_padding_mask
from pathpt_engine.testing.backbone_checks import load_errors
from pathpt_engine.testing.backbones import make_tiny_clip_folder

torch.set_num_threads(1)


folder, model = tiny_backbone_fixtures(partial(make_tiny_clip_folder, extra_words=["carcinosarcoma"]),
                                       partial(load_backbone, "clip"), "clip", seed=0)


@pytest.fixture(scope="module")
def clip_pair(model, folder: Path):
    """Ours and the library's `CLIPModel` from the same folder."""
    from transformers import CLIPModel

    return model, CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()


def test_image_matches_library_forward(clip_pair) -> None:
    ours, ref = clip_pair
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        want = F.normalize(ref.get_image_features(pixel_values=x).pooler_output, dim=-1)
    got = ours.encode_image(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert got.shape == (3, ours.embed_dim)


@pytest.mark.parametrize("max_length", [None, 20])
def test_text_embeds_path_equals_library_token_path(clip_pair, max_length) -> None:
    ours, ref = clip_pair
    texts = ["X X X X carcinosarcoma.", "an image of normal tissue", "tumor"]
    tok = ours.tokenize(texts, max_length=max_length)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    assert ids.shape[1] == (max_length or ours.max_text_len) and (mask == 0).any()
    with torch.no_grad():
        want = F.normalize(ref.get_text_features(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
        got = ours.encode_text_embeds(ours.token_embedding()(ids), mask, ids)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.encode_text(texts[:1]), want[:1], atol=1e-6, rtol=1e-6)


def test_embeds_path_uses_the_given_embeddings(clip_pair) -> None:
    ours, _ = clip_pair
    tok = ours.tokenize(["X X X X tumor."], max_length=16)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    e = ours.token_embedding()(ids).clone()
    base = ours.encode_text_embeds(e, mask, ids)
    e[:, 1:5] += torch.randn_like(e[:, 1:5])
    assert not torch.allclose(ours.encode_text_embeds(e, mask, ids), base)


def test_legacy_eos_id_pools_at_argmax(tmp_path: Path) -> None:
    from transformers import CLIPModel

    folder = make_tiny_clip_folder(tmp_path / "legacy", eos_token_id=2)
    ours = load_backbone("plip", folder)
    ref = CLIPModel.from_pretrained(str(folder), local_files_only=True).eval()
    tok = ours.tokenize(["a photomicrograph of sarcoma."])
    with torch.no_grad():
        want = F.normalize(ref.get_text_features(**tok).pooler_output, dim=-1)
    torch.testing.assert_close(ours.encode_text(["a photomicrograph of sarcoma."]), want, atol=1e-6, rtol=1e-6)
    assert ours.name == "plip"


def test_metadata_and_preprocess(clip_pair) -> None:
    ours, _ = clip_pair
    assert (ours.embed_dim, ours.ctx_dim, ours.max_text_len) == (32, 32, 32)
    assert ours.preprocess.crop == 32 and ours.preprocess.mean[0] == pytest.approx(0.48145466)
    assert ours.preprocess(torch.randint(0, 255, (2, 64, 48, 3), dtype=torch.uint8)).shape == (2, 3, 32, 32)
    assert not any(p.requires_grad for p in ours.parameters())


def test_mask_is_causal_and_blocks_pad_keys() -> None:
    m = causal_padding_mask(torch.tensor([[1, 1, 0]]), torch.float32)[0, 0]
    assert m[0, 1] < -1e30 and m[1, 0] == 0 and m[1, 1] == 0 and m[2, 1] == 0 and m[1, 2] < -1e30


def _edit(folder: Path, fn) -> None:
    edit_weights(folder / "model.safetensors", fn)


def test_bin_format_loads_same(tmp_path: Path, folder: Path) -> None:
    a = load_backbone("clip", make_tiny_clip_folder(tmp_path / "a"))
    b = load_backbone("clip", make_tiny_clip_folder(tmp_path / "b", fmt="bin"))
    x = torch.randn(1, 3, 32, 32)
    torch.testing.assert_close(a.encode_image(x), b.encode_image(x), atol=0, rtol=0)


def test_errors_name_folder_and_problem(tmp_path: Path, folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    cases = {
        "model_type is 'keep'": lambda d: (d / "config.json").write_text(json.dumps({**cfg, "model_type": "keep"})),
        "missing tokenizer files": lambda d: (d / "merges.txt").unlink(),
        "preprocessor_config.json": lambda d: (d / "preprocessor_config.json").unlink(),
        "weights file": lambda d: (d / "model.safetensors").unlink(),
        "miss key 'text_projection.weight'": lambda d: _edit(d, lambda sd: sd.pop("text_projection.weight")),
        "unexpected key 'bogus'": lambda d: _edit(d, lambda sd: sd.__setitem__("bogus", torch.zeros(2))),
        "'visual_projection.weight' has shape": lambda d: _edit(
            d, lambda sd: sd.__setitem__("visual_projection.weight", torch.zeros(4, 4))),
    }
    for needle, (bad, message) in load_errors(partial(load_backbone, "clip"), folder, cases, tmp_path).items():
        assert needle in message and str(bad) in message, message
