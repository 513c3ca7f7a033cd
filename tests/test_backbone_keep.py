"""KEEP native loader: tiny folders of the real format, exact round trips, strict errors."""

from __future__ import annotations

import json
import math
from functools import partial
from pathlib import Path

import pytest
import torch
from backbone_fixtures import copy_folder, edit_weights, tiny_backbone_fixtures
from safetensors.torch import load_file
from torch.nn import functional as F

from pathpt_engine.backbones import available_backbones, load_backbone, resolve_weights
from pathpt_engine.errors import BackboneError
from pathpt_engine.testing.backbone_checks import load_errors
from pathpt_engine.testing.backbones import make_tiny_keep_folder

torch.set_num_threads(1)


folder, model = tiny_backbone_fixtures(partial(make_tiny_keep_folder, extra_words=["carcinosarcoma"]),
                                       partial(load_backbone, "keep"), "keep", seed=0)


def _ref_vit(sd: dict[str, torch.Tensor], x: torch.Tensor, heads: int, patch: int, layers: int) -> torch.Tensor:
    """Independent reference: timm-style ViT forward written with explicit matmuls from the raw state dict."""
    def g(k: str) -> torch.Tensor:
        return sd["visual." + k]

    def ln(t: torch.Tensor, pre: str) -> torch.Tensor:
        return F.layer_norm(t, t.shape[-1:], g(pre + ".weight"), g(pre + ".bias"), eps=1e-6)

    t = F.conv2d(x, g("patch_embed.proj.weight"), g("patch_embed.proj.bias"), stride=patch)
    t = t.flatten(2).transpose(1, 2)
    t = torch.cat([g("cls_token").expand(len(x), -1, -1), t], 1) + g("pos_embed")
    b, n, d = t.shape
    hd = d // heads
    for i in range(layers):
        p = f"blocks.{i}."
        h = ln(t, p + "norm1")
        qkv = h @ g(p + "attn.qkv.weight").T + g(p + "attn.qkv.bias")
        q, k, v = qkv.split(d, dim=-1)
        q, k, v = (z.reshape(b, n, heads, hd).transpose(1, 2) for z in (q, k, v))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd), dim=-1) @ v
        a = a.transpose(1, 2).reshape(b, n, d) @ g(p + "attn.proj.weight").T + g(p + "attn.proj.bias")
        t = t + a * g(p + "ls1.weight")
        h = ln(t, p + "norm2")
        h = F.gelu(h @ g(p + "mlp.fc1.weight").T + g(p + "mlp.fc1.bias"))
        t = t + (h @ g(p + "mlp.fc2.weight").T + g(p + "mlp.fc2.bias")) * g(p + "ls2.weight")
    cls = ln(t, "norm")[:, 0]
    h = F.gelu(cls @ sd["visual_head.0.weight"].T + sd["visual_head.0.bias"])
    h = h @ sd["visual_head.2.weight"].T + sd["visual_head.2.bias"]
    return F.normalize(h, dim=-1)


def test_image_embedding_matches_reference_forward(folder: Path, model) -> None:
    sd = load_file(str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())["vision_config"]
    x = torch.randn(3, 3, 32, 32)
    ours = model.encode_image(x)
    ref = _ref_vit(sd, x, cfg["num_heads"], cfg["patch_size"], cfg["num_layers"])
    assert ours.shape == (3, model.embed_dim)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.norm(dim=-1), torch.ones(3))


def test_text_matches_plain_bert_with_same_weights(folder: Path, model) -> None:
    from transformers import BertConfig, BertModel

    cfg = json.loads((folder / "config.json").read_text())["text_config"]
    bert = BertModel(BertConfig(**cfg)).eval()
    sd = load_file(str(folder / "model.safetensors"))
    bert.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("text.")}, strict=True)
    texts = ["an image of carcinosarcoma.", "normal uterus tissue", "X X X X tumor."]
    tok = model.tokenize(texts)
    assert tok["input_ids"].shape == (3, model.max_text_len)
    assert (tok["input_ids"] != 1).all(), "no [UNK] expected: the vocab.txt must be honoured"
    with torch.no_grad():
        ref = F.normalize(bert(**tok).pooler_output, dim=-1)
    torch.testing.assert_close(model.encode_text(texts), ref, atol=1e-6, rtol=1e-6)


def test_inputs_embeds_path_equals_token_path(model) -> None:
    tok = model.tokenize(["X X X X carcinosarcoma.", "an H&E image of tumor."], max_length=24)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    with torch.no_grad():
        via_embeds = model.encode_text_embeds(model.token_embedding()(ids), mask, ids)
        via_ids = F.normalize(model.text(input_ids=ids, attention_mask=mask).pooler_output, dim=-1)
    torch.testing.assert_close(via_embeds, via_ids, atol=0, rtol=0)
    assert model.token_embedding().weight.shape[1] == model.ctx_dim


def test_metadata_and_preprocess(model) -> None:
    assert model.name == "keep" and model.embed_dim == 32 and model.ctx_dim == 32
    assert model.max_text_len == 64  # min(256, max_position_embeddings)
    assert len(model.weights_hash) == 16
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    tiles = torch.randint(0, 256, (2, 48, 48, 3), dtype=torch.uint8)
    x = model.preprocess(tiles)
    assert x.shape == (2, 3, 32, 32)
    assert model.describe()["weights_hash"] == model.weights_hash


def test_dynamic_image_size_interpolates_positions(model) -> None:
    out = model.encode_image(torch.randn(1, 3, 48, 40))
    assert out.shape == (1, 32) and torch.isfinite(out).all()


def test_gamma_spelling_and_bin_format_load_identically(tmp_path: Path) -> None:
    base = load_backbone("keep", make_tiny_keep_folder(tmp_path / "base"))
    a = make_tiny_keep_folder(tmp_path / "gamma", ls_key="gamma")
    b = make_tiny_keep_folder(tmp_path / "bin", fmt="bin")
    x = torch.randn(2, 3, 32, 32)
    ref = base.encode_image(x)
    for folder in (a, b):
        m = load_backbone("keep", folder)
        torch.testing.assert_close(m.encode_image(x), ref, atol=0, rtol=0)
    assert load_backbone("keep", b).weights_hash != base.weights_hash  # hash is of the file bytes


_copy = copy_folder


def _edit_weights(folder: Path, fn) -> None:
    edit_weights(folder / "model.safetensors", fn)


def test_errors_name_folder_and_problem(tmp_path: Path, folder: Path) -> None:
    with pytest.raises(BackboneError, match="not found"):
        load_backbone("keep", tmp_path / "nope")
    with pytest.raises(BackboneError, match="unknown backbone 'kep'.*keep"):
        load_backbone("kep", folder)

    cases = {
        "config.json": lambda d: (d / "config.json").unlink(),
        "weights file": lambda d: (d / "model.safetensors").unlink(),
        "vocab.txt": lambda d: (d / "vocab.txt").unlink(),
        "model_type is 'bert'": lambda d: (d / "config.json").write_text(
            json.dumps({**json.loads((d / "config.json").read_text()), "model_type": "bert"})),
        "miss key 'visual.norm.bias'": lambda d: _edit_weights(d, lambda sd: sd.pop("visual.norm.bias")),
        "unexpected key 'visual.extra'": lambda d: _edit_weights(
            d, lambda sd: sd.__setitem__("visual.extra", torch.zeros(1))),
        "'visual_head.0.weight' has shape": lambda d: _edit_weights(
            d, lambda sd: sd.__setitem__("visual_head.0.weight", torch.zeros(3, 3))),
        "not valid JSON": lambda d: (d / "config.json").write_text("{oops"),
    }
    for needle, (bad, message) in load_errors(partial(load_backbone, "keep"), folder, cases, tmp_path).items():
        assert needle in message, (needle, message)
        assert str(bad) in message


def test_registry_and_weight_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    names = [s.name for s in available_backbones()]
    assert {"keep", "clip", "plip", "demo"} <= set(names)
    monkeypatch.delenv("PATHPT_KEEP_WEIGHTS", raising=False)
    monkeypatch.setenv("PATHPT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    assert resolve_weights("keep") == tmp_path / "data" / "weights" / "keep"  # per user, not ./base_models
    monkeypatch.setenv("PATHPT_KEEP_WEIGHTS", str(tmp_path))
    assert resolve_weights("keep") == tmp_path
    assert resolve_weights("keep", tmp_path / "x") == tmp_path / "x"
    with pytest.raises(BackboneError, match="known backbones"):
        resolve_weights("nope")


# vocab.txt with the lines that used to shift ids: an empty line, a duplicate, U+2028 / U+2029 / U+0085 / a lone
# "\r" inside a line, a token with trailing spaces, a CRLF line; real words after them must keep their line number.
_ODD_LINES = ["", "zyzzyva", "a\u2028b", "\u2029", "x\ry", "\x85", "tail  ", "crlf\r", "", "zyzzyva"]


def _odd_vocab_folder(tmp_path: Path, src: Path) -> tuple[Path, list[str]]:
    folder = _copy(src, tmp_path / "odd")
    words = (src / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    lines = words[:5] + _ODD_LINES + words[5:]
    (folder / "vocab.txt").write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg["text_config"]["vocab_size"] = len(lines)
    (folder / "config.json").write_text(json.dumps(cfg))
    key = "text.embeddings.word_embeddings.weight"
    _edit_weights(folder, lambda sd: sd.__setitem__(key, torch.cat([sd[key], torch.randn(len(_ODD_LINES), 32)])))
    return folder, lines


def test_vocab_ids_are_line_numbers_as_transformers_assigns_them(tmp_path: Path, folder: Path) -> None:
    from transformers import BertTokenizer, BertTokenizerFast

    from pathpt_engine.backbones.keep import load_keep_tokenizer

    odd, lines = _odd_vocab_folder(tmp_path, folder)
    ours = load_keep_tokenizer(odd)
    texts = ["an image of carcinosarcoma.", "zyzzyva tail crlf xy", "normal 12 tissue, h&e"]
    for cls in (BertTokenizer, BertTokenizerFast):
        ref = cls.from_pretrained(str(odd), local_files_only=True)
        assert ours.get_vocab() == ref.get_vocab(), cls.__name__
        assert ours(texts)["input_ids"] == ref(texts)["input_ids"], cls.__name__
    vocab = ours.get_vocab()
    # every real word after the odd lines keeps its line number; the later "zyzzyva" owns the token
    for i, tok in enumerate(lines):
        if i >= 5 + len(_ODD_LINES):
            assert vocab[tok] == i, tok
    assert vocab["zyzzyva"] == 5 + len(_ODD_LINES) - 1
    assert vocab["carcinosarcoma"] == lines.index("carcinosarcoma")
    assert ours.vocab_rows == len(lines)


def test_odd_vocab_folder_loads_and_vocab_size_counts_lines(tmp_path: Path, folder: Path) -> None:
    odd, lines = _odd_vocab_folder(tmp_path, folder)
    model = load_backbone("keep", odd)
    ids = model.tokenize(["carcinosarcoma"], max_length=4)["input_ids"][0].tolist()
    assert ids[1] == lines.index("carcinosarcoma")
    cfg = json.loads((odd / "config.json").read_text())
    cfg["text_config"]["vocab_size"] = len(lines) - 1  # one row short of the last line's id
    (odd / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match=f"vocab.txt: {len(lines)} lines but text_config.vocab_size is"):
        load_backbone("keep", odd)


@pytest.mark.parametrize("ls_key", ["weight", "gamma"])
def test_missing_layerscale_key_is_named_as_the_file_spells_it(tmp_path: Path, ls_key: str) -> None:
    folder = make_tiny_keep_folder(tmp_path / ls_key, ls_key=ls_key)
    _edit_weights(folder, lambda sd: sd.pop(f"visual.blocks.0.ls2.{ls_key}"))
    with pytest.raises(BackboneError) as err:
        load_backbone("keep", folder)
    assert f"miss key 'visual.blocks.0.ls2.{ls_key}'" in str(err.value) and str(folder) in str(err.value)
    other = "gamma" if ls_key == "weight" else "weight"
    assert f"ls2.{other}" not in str(err.value)


def test_layerscale_shape_error_is_named_as_the_file_spells_it(tmp_path: Path) -> None:
    folder = make_tiny_keep_folder(tmp_path / "k")
    _edit_weights(folder, lambda sd: sd.__setitem__("visual.blocks.1.ls1.weight", torch.zeros(3)))
    with pytest.raises(BackboneError, match=r"key 'visual\.blocks\.1\.ls1\.weight' has shape \(3,\)"):
        load_backbone("keep", folder)


def test_preprocess_mean_and_std_need_three_values(tmp_path: Path, folder: Path) -> None:
    cfg = json.loads((folder / "config.json").read_text())
    for key, values in (("mean", [0.5, 0.5]), ("std", [0.2, 0.2, 0.2, 0.2])):
        bad = _copy(folder, tmp_path / key)
        (bad / "config.json").write_text(json.dumps({**cfg, "preprocess": {"resize": 32, "crop": 32, key: values}}))
        with pytest.raises(BackboneError, match=f"bad preprocess .*3 per-channel values, got {len(values)}"):
            load_backbone("keep", bad)
