"""MUSK adapter: strict loading of the published layout, the XLM-R SentencePiece tokenizer, text/image paths."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from backbone_fixtures import edit_weights, tiny_backbone_fixtures
from torch.nn import functional as F

from pathpt_engine.backbones.musk import CONFIG_FILE, MuskBackbone, MuskConfig, load_musk
from pathpt_engine.backbones.musk_tokenizer import MUSK_TOKENIZER_FILE, MuskTokenizer, parse_spm
from pathpt_engine.testing.backbone_checks import load_errors, text_path
from pathpt_engine.testing.musk import make_tiny_musk_folder, spm_bytes, tiny_spm_pieces

PROMPTS = [" ".join(["X"] * 32) + " Normal tissue.", "a histopathology image of tumor", "Zebra carcinoma?"]


folder, model = tiny_backbone_fixtures(make_tiny_musk_folder, load_musk, "musk", seed=5)


def reference_encoder(sd: dict, cfg: MuskConfig, x: torch.Tensor, pad: torch.Tensor | None, e: str) -> torch.Tensor:
    """BEiT-3 encoder written from the published key layout (backbones.md §4.2/4.3), one head at a time."""
    pos = sd[f"beit3.encoder.embed_positions.{e}.weight"]
    x = x + pos[torch.arange(2, x.shape[1] + 2)]
    if pad is not None:
        x = x * (1 - pad.float()).unsqueeze(-1)
    hd = cfg.width // cfg.heads

    def ln(t, key, eps=cfg.layernorm_eps):
        return F.layer_norm(t, (t.shape[-1],), sd[key + ".weight"], sd[key + ".bias"], eps)

    def lin(t, key):
        return F.linear(t, sd[key + ".weight"], sd[key + ".bias"])

    for i in range(cfg.layers):
        p = f"beit3.encoder.layers.{i}."
        h = ln(x, p + f"self_attn_layer_norm.{e}")
        q, k, v = (lin(h, p + f"self_attn.{n}_proj.{e}") for n in "qkv")
        heads = []
        for j in range(cfg.heads):
            sl = slice(j * hd, (j + 1) * hd)
            s = q[..., sl] @ k[..., sl].transpose(-1, -2) / hd**0.5
            if pad is not None:
                s = s.masked_fill(pad[:, None, :].bool(), float("-inf"))
            heads.append(s.softmax(-1) @ v[..., sl])
        att = ln(torch.cat(heads, dim=-1), p + f"self_attn.inner_attn_ln.{e}")
        x = x + lin(att, p + f"self_attn.out_proj.{e}")
        h = F.gelu(lin(ln(x, p + f"final_layer_norm.{e}"), p + f"ffn.{e}.fc1"))
        x = x + lin(ln(h, p + f"ffn.{e}.ffn_layernorm"), p + f"ffn.{e}.fc2")
    return ln(x, f"beit3.encoder.layer_norm.{e}")


def reference_text(model: MuskBackbone, ids: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    sd = model.state_dict()
    x = reference_encoder(sd, model.cfg, sd["beit3.text_embed.weight"][ids], pad, "B")
    return F.normalize(x[:, 0] @ sd["language_head.weight"].t(), dim=-1)


def reference_image(model: MuskBackbone, images: torch.Tensor) -> torch.Tensor:
    sd = model.state_dict()
    p = "beit3.vision_embed."
    x = F.conv2d(images, sd[p + "proj.weight"], sd[p + "proj.bias"], stride=model.cfg.patch_size)
    x = torch.cat([sd[p + "cls_token"].expand(len(images), 1, -1), x.flatten(2).transpose(1, 2)], dim=1)
    x = reference_encoder(sd, model.cfg, x, None, "A")
    return F.normalize(x[:, 0] @ sd["vision_head.weight"].t(), dim=-1)


def test_tokenizer_ids_offset_padding_and_mask(model):
    tok = model.tokenize(PROMPTS)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    assert ids.shape == (3, 100) and model.max_text_len == 100
    assert (ids[:, 0] == 0).all()
    pieces = [p for p, _, _ in tiny_spm_pieces()]
    x_id = pieces.index("▁X") + 1  # spm id + fairseq offset 1
    assert (ids[0, 1:33] == x_id).all()
    for row, m in zip(ids, mask, strict=True):
        n = int(m.sum())
        assert row[n - 1] == 2 and (row[n:] == 1).all() and (m[:n] == 1).all() and (m[n:] == 0).all()
    assert ids[1, 1:9].tolist() == [pieces.index(p) + 1 for p in
                                     ("▁a", "▁his", "to", "path", "ology", "▁image", "▁of", "▁tumor")]
    # cased: "Normal" and "normal" are different pieces; unknown characters map to <unk> = 3
    assert model.tokenizer.encode_pieces("Normal") != model.tokenizer.encode_pieces("normal")
    assert model.tokenizer.encode_pieces("☃") == [pieces.index("▁") + 1, 3]
    long = model.tokenize(["X " * 300])["input_ids"][0]
    assert long[0] == 0 and long[-1] == 2 and (long[1:-1] == x_id).all()


def test_spm_reader_round_trip():
    pieces = tiny_spm_pieces()
    m = parse_spm(spm_bytes(pieces))
    assert [(p, t) for p, _, t in m.pieces] == [(p, t) for p, _, t in pieces]
    assert [round(s, 4) for _, s, _ in m.pieces] == [round(s, 4) for _, s, _ in pieces]
    assert m.model_type == 1 and m.unk_id == 0 and m.normalizer_name == "nmt_nfkc"


def test_tokenizer_matches_sentencepiece(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    words = ["a", "histopathology", "image", "of", "Normal", "normal", "tissue", "carcinoma", "Tumor", "Ewing's",
             "low-grade", "10x", "café", "ﬁbrous", "ＡＢＣ", "sarcoma"]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 9)) for i in range(600)]
    (tmp_path / "c.txt").write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(input=str(tmp_path / "c.txt"), model_prefix=str(tmp_path / "m"),
                                   vocab_size=120, model_type="unigram", normalization_rule_name="nmt_nfkc",
                                   character_coverage=1.0, num_threads=1, minloglevel=2, hard_vocab_limit=False)
    sp = spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))
    ours = MuskTokenizer(tmp_path / "m.model")
    for text in lines[:50] + ["  two   spaces ", "café ﬁbrous ＡＢＣ", "unknown ☃ chars", "Normal", "normal"]:
        assert ours.encode_pieces(text) == [i + 1 if i else 3 for i in sp.encode(text)], text


def test_text_and_image_equal_independent_reference(model):
    tok = model.tokenize(PROMPTS)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want_t = reference_text(model, tok["input_ids"], 1 - tok["attention_mask"])
        want_i = reference_image(model, images)
        got_t, got_i = model.encode_text(PROMPTS), model.encode_image(images)
    assert torch.allclose(got_t, want_t, atol=1e-5)
    assert torch.allclose(got_i, want_i, atol=1e-5)
    assert got_t.shape == (3, 32) and got_i.shape == (2, 32)
    assert not torch.allclose(got_t[0], got_t[1])


def test_embeds_path_equals_token_path_and_trims_exactly(model):
    ids, mask, rows, full, n = text_path(model, PROMPTS)
    with torch.no_grad():
        assert torch.allclose(model.encode_text_embeds(rows, mask, ids), full, atol=1e-6)
        assert n == int(mask.sum(1).max())
        assert torch.allclose(model.encode_text_embeds(rows[:, :n], mask[:, :n], ids[:, :n]), full, atol=1e-5)
        # pad rows are invisible: changing them changes nothing
        bumped = rows.clone()
        bumped[:, n:] += torch.randn_like(bumped[:, n:])
        assert torch.allclose(model.encode_text_embeds(bumped, mask, ids), full, atol=1e-6)


def test_prompt_learner_on_musk_equals_token_path(model):
    from pathpt_engine.pathpt.prompt_learner import PromptLearner

    names = ["Normal tissue", "carcinoma", "sarcoma"]
    learner = PromptLearner(model, names, n_ctx=32, init="template", truncate=True)
    assert learner.length < 100 and learner.ctx.shape == (3, 32, 32)
    with torch.no_grad():
        learner.ctx.copy_(model.token_embedding()(learner.input_ids[:, 1:33]))
        got = learner.text_features(model)
        want = model.encode_text([" ".join(["X"] * 32) + f" {n}." for n in names])
    assert torch.allclose(got, want, atol=1e-5)


def test_gradients_reach_the_prompt_rows(model):
    tok = model.tokenize(PROMPTS[:1])
    rows = model.token_embedding()(tok["input_ids"]).detach().requires_grad_(True)
    model.encode_text_embeds(rows, tok["attention_mask"], tok["input_ids"]).sum().backward()
    assert rows.grad[0, 1:33].abs().sum() > 0 and rows.grad[0, 40:].abs().sum() == 0
    assert all(p.grad is None for p in model.parameters())


def test_round_trip_save_load_same_outputs(model, folder, tmp_path):
    other = tmp_path / "copy"
    other.mkdir()
    for name in (MUSK_TOKENIZER_FILE, "musk_config.json"):
        shutil.copy(folder / name, other / name)
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, other / "pytorch_model.bin")
    again = load_musk(other)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(again.encode_image(images), model.encode_image(images))
        assert torch.equal(again.encode_text(PROMPTS), model.encode_text(PROMPTS))


def test_fp16_file_and_missing_mask_token_load(model, tmp_path):
    half = load_musk(make_tiny_musk_folder(tmp_path / "h", seed=5, dtype="float16"))
    assert next(half.parameters()).dtype == torch.float32
    with torch.no_grad():
        assert torch.allclose(half.encode_text(PROMPTS), model.encode_text(PROMPTS), atol=1e-2)
    folder = make_tiny_musk_folder(tmp_path / "m", seed=5, fmt="bin")
    sd = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del sd["beit3.vision_embed.mask_token"]
    torch.save(sd, folder / "pytorch_model.bin")
    with torch.no_grad():
        assert torch.equal(load_musk(folder).encode_text(PROMPTS), model.encode_text(PROMPTS))


def test_image_size_is_checked(model):
    with pytest.raises(ValueError, match="32x32"):
        model.encode_image(torch.rand(1, 3, 48, 48))
    assert model.preprocess.mean == (0.5, 0.5, 0.5) and model.preprocess.crop == 32


@pytest.mark.slow  # the meta device imports sympy once (seconds)
def test_real_layout_counts():
    """backbones.md §4.2: 974 tensors, 675,188,737 parameters."""
    with torch.device("meta"):
        m = MuskBackbone(MuskConfig())
    sd = m.state_dict()
    assert len(sd) == 974
    assert sum(v.numel() for v in sd.values()) == 675_188_737
    shapes = {"beit3.text_embed.weight": (64010, 1024), "beit3.vision_embed.proj.weight": (1024, 3, 16, 16),
              "beit3.encoder.embed_positions.A.weight": (579, 1024),
              "beit3.encoder.embed_positions.B.weight": (1024, 1024),
              "beit3.encoder.layers.23.ffn.B.ffn_layernorm.weight": (4096,),
              "beit3.encoder.layers.0.self_attn.inner_attn_ln.A.weight": (1024,),
              "language_head.weight": (1024, 1024), "vision_head.weight": (1024, 1024), "logit_scale": ()}
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert m.max_text_len == 100 and m.ctx_dim == 1024 and m.embed_dim == 1024 and m.preprocess.crop == 384


def _edit(folder, fn):
    edit_weights(folder / "model.safetensors", fn)


def test_errors_name_folder_and_problem(tmp_path, folder):
    cfg = json.loads((folder / CONFIG_FILE).read_text())

    def config(**changes):
        return lambda d: (d / CONFIG_FILE).write_text(json.dumps({**cfg, **changes}))

    fc2, rel_pos = "beit3.encoder.layers.1.ffn.B.fc2.bias", "beit3.encoder.layers.0.self_attn.rel_pos.weight"
    cases = {
        f"miss key '{fc2}'": lambda d: _edit(d, lambda sd: sd.pop(fc2)),
        f"unexpected key '{rel_pos}'": lambda d: _edit(d, lambda sd: sd.__setitem__(rel_pos, torch.zeros(1))),
        "shape": config(ffn_dim=48),
        "unknown field 'xpos'": config(xpos=True),
        "token table has 8 rows": config(vocab_size=8),
        f"{MUSK_TOKENIZER_FILE}: not a readable SentencePiece model": lambda d: (d / MUSK_TOKENIZER_FILE).write_bytes(
            b"\xff\xff\xff"),
        "lilab-stanford/MUSK": lambda d: (d / MUSK_TOKENIZER_FILE).unlink(),
    }
    for needle, (bad, message) in load_errors(load_musk, folder, cases, tmp_path).items():
        assert needle in message and str(bad) in message, message


def test_registry_entry(tmp_path):
    from pathpt_engine.backbones import get_spec, load_backbone

    model = load_backbone("musk", make_tiny_musk_folder(tmp_path / "musk"))
    assert isinstance(model, MuskBackbone) and model.name == "musk"
    spec = get_spec("musk")
    assert "CC-BY-NC-ND" in spec.licence and "tokenizer.spm" in spec.download and "TCGA" in spec.description
