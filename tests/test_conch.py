"""CONCH adapter: strict loading of the published layout, tokenizer, text/image paths, the cls-mask quirk."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from backbone_fixtures import edit_weights, tiny_backbone_fixtures
from torch import nn
from torch.nn import functional as F

from pathpt_engine.backbones.conch import CONFIG_FILE, ConchBackbone, ConchConfig, load_conch
from pathpt_engine.backbones.conch_tokenizer import CONCH_TOKENIZER_FILE
from pathpt_engine.errors import BackboneError
from pathpt_engine.testing.backbone_checks import load_errors, text_path
from pathpt_engine.testing.conch import make_tiny_conch_folder

PROMPTS = ["X X X X X X X X a histopathology image of carcinoma.", "normal tissue", "an H&E image of sarcoma cells."]


folder, model = tiny_backbone_fixtures(make_tiny_conch_folder, load_conch, "conch", seed=3)


def reference_text(model: ConchBackbone, ids128: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """open_clip CoCa's text forward written out independently: sequence-first nn.MultiheadAttention, causal mask
    plus `build_cls_mask` (pad of the non-pad mask), all 128 positions. Returns (L2 embedding, hidden [B,127,W])."""
    t, cfg = model.text, model.cfg
    text = ids128[:, :-1]
    b, n = text.shape
    x = torch.cat([t.token_embedding(text), t.cls_emb.expand(b, 1, -1)], dim=1) + t.positional_embedding[: n + 1]
    causal = torch.full((n + 1, n + 1), float("-inf")).triu(1)
    cls_open = F.pad((text != cfg.pad_id).float().unsqueeze(1), (1, 0, n, 0), value=1.0)  # [B, n+1, n+1]
    cls_add = torch.zeros_like(cls_open).masked_fill(cls_open == 0, float("-inf"))
    mask = causal[None] + cls_add.repeat_interleave(cfg.text_heads, 0)
    x = x.permute(1, 0, 2)
    for blk in t.transformer.resblocks:
        mha = nn.MultiheadAttention(cfg.text_width, cfg.text_heads)
        mha.load_state_dict(blk.attn.state_dict())
        h = blk.ln_1(x)
        x = x + mha(h, h, h, attn_mask=mask, need_weights=False)[0]
        x = x + blk.mlp(blk.ln_2(x))
    x = x.permute(1, 0, 2)
    return F.normalize(t.ln_final(x[:, -1]) @ t.text_projection, dim=-1), x[:, :-1]


def test_tokenizer_matches_reference_recipe(model):
    tok = model.tokenize(PROMPTS)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    assert ids.shape == (3, 127) and model.max_text_len == 127
    assert (ids[:, 0] == 1).all()
    assert torch.equal(mask, (ids != 0).long())
    for row, text in zip(ids, PROMPTS, strict=True):
        n = int((row != 0).sum())
        assert row[n - 1] == 2 and (row[n:] == 0).all()
        assert model.tokenizer._tok.encode(text).ids == row[:n].tolist()
    # "X" is one token (lower-cased "Ġx"), so 8 placeholders fill positions 1..8
    x_id = model.tokenizer._tok.token_to_id("Ġx")
    assert (ids[0, 1:9] == x_id).all()
    # truncation keeps SOT/EOT inside max_length, as the HF wrapper does
    short = model.tokenize(["x " * 200], max_length=10)["input_ids"][0]
    assert short[0] == 1 and short[-1] == 2 and (short[1:-1] == x_id).all()


def test_text_equals_independent_reference(model):
    ids = model.tokenize(PROMPTS)["input_ids"]
    ids128 = F.pad(ids, (0, 1), value=0)
    with torch.no_grad():
        want, hidden = reference_text(model, ids128)
        got = model.encode_text(PROMPTS)
        rows = model.paper_prompt_rows(ids)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(rows, hidden, atol=1e-5)
    assert torch.allclose(got.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_embeds_path_equals_token_path_and_trims_exactly(model):
    ids, mask, rows, full, n = text_path(model, PROMPTS)
    with torch.no_grad():
        assert torch.allclose(model.encode_text_embeds(rows, mask, ids), full, atol=1e-6)
        assert n == int((ids != 0).sum(1).max()) + 1 < 127
        cut = model.encode_text_embeds(rows[:, :n], mask[:, :n], ids[:, :n])
        assert torch.allclose(cut, full, atol=1e-5)
        # cut at the longest real prompt (the generic rule): the adapter appends the pad row the cls attends to
        cut = model.encode_text_embeds(rows[:, : n - 1], mask[:, : n - 1], ids[:, : n - 1])
        assert torch.allclose(cut, full, atol=1e-5)
        # without that row the longest prompt's embedding would change
        raw = model.text(rows[:, : n - 1], ids[:, : n - 1])
        longest = int((ids != 0).sum(1).argmax())
        assert not torch.allclose(raw[longest], full[longest], atol=1e-4)


def test_prompt_learner_on_conch_equals_token_path(model):
    """The shared prompt learner (truncating to the longest real prompt) reproduces encode_text of the placeholder
    prompts when its context holds the placeholder's own token rows."""
    from pathpt_engine.pathpt.prompt_learner import PromptLearner

    names = ["normal tissue", "carcinoma", "sarcoma cells"]
    learner = PromptLearner(model, names, n_ctx=8, init="rand", truncate=True)
    with torch.no_grad():
        learner.ctx.copy_(model.token_embedding()(learner.input_ids[:, 1:9]))
        got = learner.text_features(model)
        want = model.encode_text([" ".join(["X"] * 8) + f" {n}." for n in names])
    assert learner.length < 127
    assert torch.allclose(got, want, atol=1e-5)


def test_cls_sees_first_pad_but_not_later_pads(model):
    ids = model.tokenize(["normal tissue"])["input_ids"]
    eot = int((ids[0] == 2).nonzero()[0])
    rows = model.token_embedding()(ids).detach()
    mask = (ids != 0).long()
    noise = torch.randn(rows.shape[-1], generator=torch.Generator().manual_seed(0))  # not a constant shift: LN
    with torch.no_grad():
        base = model.encode_text_embeds(rows, mask, ids)
        bumped = rows.clone()
        bumped[0, eot + 1] += noise
        assert not torch.allclose(model.encode_text_embeds(bumped, mask, ids), base, atol=1e-4)
        bumped = rows.clone()
        bumped[0, eot + 2] += noise
        assert torch.equal(model.encode_text_embeds(bumped, mask, ids), base)


def test_gradients_reach_the_prompt_rows(model):
    ids = model.tokenize(PROMPTS[:1])["input_ids"]
    rows = model.token_embedding()(ids).detach().requires_grad_(True)
    model.encode_text_embeds(rows, (ids != 0).long(), ids).sum().backward()
    assert rows.grad is not None and rows.grad[0, 1:9].abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


def test_image_embedding_shape_norm_and_batch_independence(model):
    torch.manual_seed(0)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = model.encode_image(images)
        one = model.encode_image(images[1:2])
    assert out.shape == (3, model.embed_dim)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.allclose(out[1:2], one, atol=1e-5)
    assert model.describe()["image_variant"] == "proj_contrast+l2"
    assert model.preprocess.crop == 32 and model.preprocess.mean[0] == pytest.approx(0.48145466)


def test_round_trip_save_load_same_outputs(model, folder, tmp_path):
    from safetensors.torch import save_file

    other = tmp_path / "copy"
    other.mkdir()
    for name in (CONCH_TOKENIZER_FILE, "conch_config.json"):
        shutil.copy(folder / name, other / name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(other / "model.safetensors"))
    again = load_conch(other)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again.encode_image(images), model.encode_image(images))
        assert torch.equal(again.encode_text(PROMPTS), model.encode_text(PROMPTS))
    assert again.weights_hash != model.weights_hash


def test_weights_actually_loaded(folder, model):
    cfg = ConchConfig.from_folder(folder)
    torch.manual_seed(123)
    fresh = ConchBackbone(cfg).eval()
    fresh.tokenizer = model.tokenizer
    with torch.no_grad():
        assert not torch.allclose(fresh.encode_text(PROMPTS), model.encode_text(PROMPTS), atol=1e-3)


def test_wrapped_state_dict_and_safetensors_load(tmp_path):
    a = load_conch(make_tiny_conch_folder(tmp_path / "wrapped", seed=1, wrap="state_dict"))
    b = load_conch(make_tiny_conch_folder(tmp_path / "st", seed=1, fmt="safetensors", with_caption=False))
    with torch.no_grad():
        assert torch.equal(a.encode_text(PROMPTS), b.encode_text(PROMPTS))


@pytest.mark.slow  # the meta device imports sympy once (seconds)
def test_real_layout_counts():
    """The published CONCH layout (backbones.md §3.2): 326 tensors / 200,522,497 parameters with the caption pooler
    (11 tensors, 2,563,584 parameters), which our model drops as optional."""
    with torch.device("meta"):
        m = ConchBackbone(ConchConfig())
    sd = m.state_dict()
    assert len(sd) + 11 == 326
    assert sum(v.numel() for v in sd.values()) + 2_563_584 == 200_522_497
    shapes = {
        "visual.trunk.pos_embed": (1, 785, 768), "visual.trunk.blocks.11.attn.qkv.weight": (2304, 768),
        "visual.attn_pool_contrast.query": (1, 512), "visual.attn_pool_contrast.attn.k_proj_weight": (512, 768),
        "visual.attn_pool_contrast.attn.v_proj_weight": (512, 768), "visual.attn_pool_contrast.attn.in_proj_bias": (1536,),
        "visual.attn_pool_contrast.ln_k.weight": (768,), "visual.proj_contrast": (512, 512),
        "text.token_embedding.weight": (32007, 768), "text.positional_embedding": (128, 768), "text.cls_emb": (768,),
        "text.transformer.resblocks.0.attn.in_proj_weight": (2304, 768), "text.text_projection": (768, 512),
        "logit_scale": (),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert m.max_text_len == 127 and m.ctx_dim == 768 and m.embed_dim == 512 and m.preprocess.crop == 448


def _edit_bin(folder, fn):
    edit_weights(folder / "pytorch_model.bin", fn)


def _swap_pad_and_sot(folder):
    """Exchange <pad> and <start_of_text> in the folder's tokenizer JSON."""
    tok_path = folder / CONCH_TOKENIZER_FILE
    data = json.loads(tok_path.read_text())
    swap = {0: 1, 1: 0}
    for entry in data["added_tokens"]:
        entry["id"] = swap.get(entry["id"], entry["id"])
    vocab = data["model"]["vocab"]
    vocab["<pad>"], vocab["<start_of_text>"] = 1, 0
    tok_path.write_text(json.dumps(data))


def test_errors_name_folder_and_problem(tmp_path, folder):
    with pytest.raises(BackboneError, match="not found"):
        load_conch(tmp_path / "nope")
    cfg = json.loads((folder / CONFIG_FILE).read_text())
    cases = {
        "miss key 'text.cls_emb'": lambda d: _edit_bin(d, lambda sd: sd.pop("text.cls_emb")),
        "unexpected key 'visual.head.weight'": lambda d: _edit_bin(
            d, lambda sd: sd.__setitem__("visual.head.weight", torch.zeros(2))),
        "shape": lambda d: (d / CONFIG_FILE).write_text(json.dumps({**cfg, "embed_dim": 16})),
        "unknown field 'depth'": lambda d: (d / CONFIG_FILE).write_text(json.dumps({**cfg, "depth": 3})),
        "token table has 8 rows": lambda d: (d / CONFIG_FILE).write_text(json.dumps({**cfg, "vocab_size": 8})),
        "mahmoodlab/CONCH": lambda d: (d / CONCH_TOKENIZER_FILE).unlink(),
        "special token": _swap_pad_and_sot,
        "pytorch_model.bin": lambda d: (d / "pytorch_model.bin").unlink(),
    }
    for needle, (bad, message) in load_errors(load_conch, folder, cases, tmp_path).items():
        assert needle in message and str(bad) in message, message
