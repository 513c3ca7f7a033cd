"""Prompt learner through the KEEP adapter (tiny random folder), zero-shot classifiers and ensemble selection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathpt_engine.backbones import load_backbone
from pathpt_engine.pathpt.prompt_learner import PromptLearner, repeat_words
from pathpt_engine.prompts.classsets import load_classset
from pathpt_engine.prompts.zeroshot import (
    encode_class_prompts,
    mean_classifier,
    select_prompt_ensemble,
    zeroshot_tile_probs,
)
from pathpt_engine.testing.backbones import make_tiny_keep_folder

NAMES = ["normal tissue", "solid carcinoma", "malignant sarcoma of the tissue"]


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    folder = make_tiny_keep_folder(tmp_path_factory.mktemp("keep"), max_positions=96)
    return load_backbone("keep", folder).freeze()


def test_placeholder_assembly_equals_encode_text(backbone):
    torch.manual_seed(0)
    pl = PromptLearner(backbone, NAMES, n_ctx=8, init="rand", truncate=False)
    x_id = pl.input_ids[0, 1]
    with torch.no_grad():
        pl.ctx.copy_(backbone.token_embedding()(x_id.expand(3, 8)))
        ours = pl.text_features(backbone)
    ref = backbone.encode_text([" ".join(["X"] * 8) + f" {n}." for n in NAMES])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_truncated_text_tower_is_bit_identical(backbone):
    torch.manual_seed(1)
    full = PromptLearner(backbone, NAMES, n_ctx=32, truncate=False)
    short = PromptLearner(backbone, NAMES, n_ctx=32, truncate=True)
    assert full.length == backbone.max_text_len and short.length < full.length
    assert short.length == int(full.attention_mask.sum(1).max())
    with torch.no_grad():
        a, b = full.text_features(backbone), short.text_features(backbone)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # sdpa kernels: equal up to float rounding
    impl = backbone.text.config._attn_implementation
    backbone.text.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            a, b = full.text_features(backbone), short.text_features(backbone)
        assert torch.equal(a, b)  # eager attention: bit-identical (method.md §9)
    finally:
        backbone.text.set_attn_implementation(impl)


def test_template_init_uses_word_pieces(backbone):
    pl = PromptLearner(backbone, NAMES, n_ctx=12)
    text = repeat_words("a histopathology image of", 12)
    assert text.split()[:5] == ["a", "histopathology", "image", "of", "a"]
    ids = backbone.tokenize([text])["input_ids"][0, 1:13]
    want = backbone.token_embedding()(ids)
    for c in range(3):
        torch.testing.assert_close(pl.ctx[c].detach(), want)


def test_gradients_reach_ctx_only(backbone):
    pl = PromptLearner(backbone, NAMES, n_ctx=4)
    t = pl.text_features(backbone)
    (t[:, 0].sum()).backward()
    assert pl.ctx.grad is not None and pl.ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())
    assert [n for n, _ in pl.named_parameters()] == ["ctx"]
    assert set(pl.state_dict()) == {"ctx"}


def test_zero_shot_classifiers(backbone):
    cs = load_classset("synthetic")
    embs = encode_class_prompts(backbone, cs)
    assert [len(e) for e in embs] == [len(cs.prompts(c)) for c in range(cs.n_classes)]
    w = mean_classifier(embs)
    assert w.shape == (4, backbone.embed_dim)
    torch.testing.assert_close(w.norm(dim=-1), torch.ones(4))
    p = zeroshot_tile_probs(np.random.default_rng(0).normal(size=(5, backbone.embed_dim)), w)
    assert p.shape == (5, 4) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_ensemble_selection_prefers_discriminative_prompts():
    """Class 1 has a 'good' prompt aligned with its slides and 'bad' ones; the top classifiers pick it."""
    d = 8
    e = torch.eye(d)
    normal = e[[0]]
    c1 = torch.stack([e[1], e[5], e[6]])  # prompt 0 good
    c2 = torch.stack([e[2]])
    rng = np.random.default_rng(0)
    slides = []
    for y, axis in ((0, 1), (1, 2), (0, 1), (1, 2)):
        f = rng.normal(scale=0.05, size=(20, d))
        f[:, axis] += 1.0
        slides.append((f.astype(np.float32), y))
    res = select_prompt_ensemble([normal, c1, c2], slides, n_random=30, n_keep=10, seed=3)
    good = res.choices[:, 1] == 0
    assert res.scores[good].min() == 1.0 and res.scores[~good].max() < 1.0
    assert set(res.kept[: good.sum()]) == set(np.flatnonzero(good)[: 10])
    assert res.classifier.shape == (3, d)
    # deterministic for a seed
    again = select_prompt_ensemble([normal, c1, c2], slides, n_random=30, n_keep=10, seed=3)
    assert np.array_equal(again.choices, res.choices)
