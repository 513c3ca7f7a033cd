"""QuiltNet-B-32: open_clip checkpoint -> HF CLIP implementation (key mapping, activation, strict errors)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from backbone_fixtures import edit_weights, tiny_backbone_fixtures
from torch import nn
from torch.nn import functional as F

from pathpt_engine.backbones.quiltnet import load_quiltnet
from pathpt_engine.errors import BackboneError
from pathpt_engine.testing.quiltnet import make_tiny_quiltnet_folder

PROMPTS = ["x x x x a histopathology image of carcinoma.", "normal tissue", "an h&e image of sarcoma"]


folder, model = tiny_backbone_fixtures(make_tiny_quiltnet_folder, load_quiltnet, "quilt", seed=2)


def _blocks(sd: dict, prefix: str, x: torch.Tensor, heads: int, act, mask: torch.Tensor | None) -> torch.Tensor:
    """open_clip ResidualAttentionBlocks (sequence-first nn.MultiheadAttention with packed in_proj)."""
    d = x.shape[-1]
    i = 0
    while f"{prefix}.resblocks.{i}.ln_1.weight" in sd:
        p = f"{prefix}.resblocks.{i}."
        mha = nn.MultiheadAttention(d, heads)
        mha.load_state_dict({k: sd[p + "attn." + k] for k in
                             ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")})
        h = F.layer_norm(x, (d,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"])
        x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
        h = F.layer_norm(x, (d,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"])
        h = act(F.linear(h, sd[p + "mlp.c_fc.weight"], sd[p + "mlp.c_fc.bias"]))
        x = x + F.linear(h, sd[p + "mlp.c_proj.weight"], sd[p + "mlp.c_proj.bias"])
        i += 1
    return x


def reference_openclip(folder, ids: torch.Tensor, images: torch.Tensor, quick: bool) -> tuple[torch.Tensor, ...]:
    """open_clip's CLIP encode_text / encode_image written out from the checkpoint's own keys."""
    sd = torch.load(folder / "open_clip_pytorch_model.bin", weights_only=True)
    cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]
    act = (lambda t: t * torch.sigmoid(1.702 * t)) if quick else F.gelu
    n = ids.shape[1]
    x = sd["token_embedding.weight"][ids] + sd["positional_embedding"][:n]
    causal = torch.full((n, n), float("-inf")).triu(1)
    x = _blocks(sd, "transformer", x.permute(1, 0, 2), cfg["text_cfg"]["heads"], act, causal).permute(1, 0, 2)
    x = F.layer_norm(x, (x.shape[-1],), sd["ln_final.weight"], sd["ln_final.bias"])
    text = x[torch.arange(len(ids)), ids.argmax(dim=-1)] @ sd["text_projection"]
    p = cfg["vision_cfg"]["patch_size"]
    v = F.conv2d(images, sd["visual.conv1.weight"], stride=p).flatten(2).transpose(1, 2)
    v = torch.cat([sd["visual.class_embedding"].expand(len(images), 1, -1), v], dim=1) + sd["visual.positional_embedding"]
    d = v.shape[-1]
    v = F.layer_norm(v, (d,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    heads = d // cfg["vision_cfg"]["head_width"]
    v = _blocks(sd, "visual.transformer", v.permute(1, 0, 2), heads, act, None).permute(1, 0, 2)
    img = F.layer_norm(v[:, 0], (d,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"]) @ sd["visual.proj"]
    return F.normalize(text, dim=-1), F.normalize(img, dim=-1)


def test_default_activation_follows_the_folder_config(model, folder):
    assert model.model.config.text_config.hidden_act == "gelu"
    assert model.model.config.vision_config.hidden_act == "gelu"
    ids = model.tokenize(PROMPTS)["input_ids"]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want_t, want_i = reference_openclip(folder, ids, images, quick=False)
        got_t, got_i = model.encode_text(PROMPTS), model.encode_image(images)
    assert torch.allclose(got_t, want_t, atol=1e-5)
    assert torch.allclose(got_i, want_i, atol=1e-5)
    assert got_t.shape == (3, 24) and got_i.shape == (2, 24)


def test_quick_gelu_from_config_or_override(tmp_path, folder, model):
    flagged = load_quiltnet(make_tiny_quiltnet_folder(tmp_path / "q", seed=2, quick_gelu=True))
    forced = load_quiltnet(folder, activation="quick_gelu")
    assert flagged.model.config.text_config.hidden_act == "quick_gelu"
    ids = model.tokenize(PROMPTS)["input_ids"]
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        want_t, want_i = reference_openclip(folder, ids, images, quick=True)
        for m in (flagged, forced):
            assert torch.allclose(m.encode_text(PROMPTS), want_t, atol=1e-5)
            assert torch.allclose(m.encode_image(images), want_i, atol=1e-5)
        assert not torch.allclose(model.encode_text(PROMPTS), want_t, atol=1e-4)
    with pytest.raises(BackboneError, match="activation"):
        load_quiltnet(folder, activation="relu")


def test_embeds_path_equals_token_path(model):
    tok = model.tokenize(PROMPTS)
    with torch.no_grad():
        rows = model.token_embedding()(tok["input_ids"])
        assert torch.allclose(model.encode_text_embeds(rows, tok["attention_mask"], tok["input_ids"]),
                              model.encode_text(PROMPTS), atol=1e-6)
    assert model.prompt_layout.ctx_start == 1 and model.max_text_len == 32 and model.ctx_dim == 32


def test_round_trip_through_an_hf_export(model, folder, tmp_path):
    """Save the converted model as an HF CLIP folder; the HF branch (the `clip` adapter) gives the same outputs."""
    from safetensors.torch import save_file

    out = tmp_path / "hf"
    out.mkdir()
    model.model.config.to_json_file(str(out / "config.json"))
    save_file({k: v.contiguous() for k, v in model.model.state_dict().items()}, str(out / "model.safetensors"))
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(folder / name, out / name)
    (out / "preprocessor_config.json").write_text(json.dumps({
        "size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "resample": 3,
        "image_mean": list(model.preprocess.mean), "image_std": list(model.preprocess.std)}))
    again = load_quiltnet(out)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again.encode_text(PROMPTS), model.encode_text(PROMPTS))
        assert torch.equal(again.encode_image(images), model.encode_image(images))
    assert again.preprocess == model.preprocess
    with pytest.raises(BackboneError, match="open_clip files"):
        load_quiltnet(out, activation="quick_gelu")


def _edit(folder, fn):
    edit_weights(folder / "open_clip_pytorch_model.bin", fn)


def test_unexpected_and_missing_keys(tmp_path):
    folder = make_tiny_quiltnet_folder(tmp_path / "a")
    _edit(folder, lambda sd: sd.__setitem__("visual.attnpool.weight", torch.zeros(1)))
    with pytest.raises(BackboneError, match=r"visual\.attnpool\.weight") as err:
        load_quiltnet(folder)
    assert str(folder.resolve()) in str(err.value)
    folder = make_tiny_quiltnet_folder(tmp_path / "b")
    _edit(folder, lambda sd: sd.pop("ln_final.bias"))
    with pytest.raises(BackboneError, match=r"final_layer_norm\.bias"):
        load_quiltnet(folder)


def test_config_shapes_are_checked_against_the_weights(tmp_path):
    """The QuiltNet-B-16 trap: a config whose patch size does not match the weights fails clearly."""
    folder = make_tiny_quiltnet_folder(tmp_path / "a")
    cfg = json.loads((folder / "open_clip_config.json").read_text())
    cfg["model_cfg"]["vision_cfg"]["patch_size"] = 16
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match="shape"):
        load_quiltnet(folder)
    cfg["model_cfg"]["vision_cfg"]["timm_model_name"] = "vit_base_patch32_224"
    (folder / "open_clip_config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match="timm_model_name"):
        load_quiltnet(folder)


def test_registry_entry(tmp_path):
    from pathpt_engine.backbones import get_spec, load_backbone

    model = load_backbone("quiltnet", make_tiny_quiltnet_folder(tmp_path / "q"))
    assert model.name == "quiltnet" and model.model.config.text_config.hidden_act == "gelu"
    assert "MIT" in get_spec("quiltnet").licence and "wisdomik/QuiltNet-B-32" in get_spec("quiltnet").download
