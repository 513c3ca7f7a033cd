"""Prompt embeddings are cached per process for content-identified weights (a retrain re-encodes nothing)."""

from __future__ import annotations

import dataclasses

import torch

from pathpt_engine.prompts import zeroshot
from pathpt_engine.prompts.classsets import synth_classset
from pathpt_engine.testing.cohorts import tiny_backbone


def test_second_encoding_is_served_from_the_cache(tmp_path, monkeypatch):
    bb = tiny_backbone(tmp_path / "keep")
    assert bb.weights_hash
    cs = synth_classset(2)
    zeroshot._PROMPT_CACHE.clear()
    first = zeroshot.encode_class_prompts(bb, cs)
    calls = []
    real = bb.encode_text
    monkeypatch.setattr(bb, "encode_text", lambda texts: (calls.append(len(texts)), real(texts))[1])
    again = zeroshot.encode_class_prompts(bb, cs)
    assert calls == [] and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    again[0].zero_()  # callers get copies: the cache is not changed through them
    assert torch.equal(zeroshot.encode_class_prompts(bb, cs)[0], first[0])
    other = dataclasses.replace(cs, templates=(*cs.templates, "an image of CLASSNAME."))
    zeroshot.encode_class_prompts(bb, other)  # other prompts: encoded
    assert calls
    calls.clear()
    monkeypatch.setattr(bb, "weights_hash", "")  # weights not identified: never cached
    zeroshot.encode_class_prompts(bb, cs)
    assert calls
    zeroshot._PROMPT_CACHE.clear()
