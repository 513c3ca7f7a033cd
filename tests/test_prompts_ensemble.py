"""Prompt-ensemble selection (method.md §4.1): the paper recipe draws and ranks exactly as the reference.

The reference (`wsi_prompt_selector`) is re-written here independently with plain `random`, torch and numpy:
classifier r = `random.seed(r)` then one `random.choice` per class in class order, tile vote on raw cosines,
balanced accuracy as scikit-learn computes it, top 100 = `np.argsort(bacc)[::-1][:100]`, per-class mean, L2.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from pathpt_engine.prompts.zeroshot import select_prompt_ensemble

PROMPTS_PER_CLASS = (66, 44, 44)  # UCS: 3 Normal synonyms x 22 templates, 2 per subtype x 22
D = 16


def _reference_vote(logits: torch.Tensor) -> int:
    patch_pred = torch.argmax(logits, dim=1)
    counts = torch.bincount(patch_pred, minlength=logits.shape[1])
    all_normal = counts[1:].sum() == 0
    tied = (counts[1:] == counts[1:].max()).sum() > 1
    if all_normal or tied:
        counts = torch.bincount(torch.argmax(logits[:, 1:], dim=1), minlength=logits.shape[1] - 1)
        prob = counts / counts.sum()
    else:
        prob = counts[1:] / counts[1:].sum()
    return int(torch.argmax(prob).item())


def _sklearn_bacc(y: list[int], p: list[int]) -> float:
    """balanced_accuracy_score as scikit-learn computes it (classes absent from y_true dropped)."""
    y_a, p_a = np.asarray(y), np.asarray(p)
    labels = np.unique(np.concatenate([y_a, p_a]))
    cm = np.array([[np.sum((y_a == a) & (p_a == b)) for b in labels] for a in labels])
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class = np.diag(cm) / cm.sum(axis=1)
    return float(np.mean(per_class[~np.isnan(per_class)]))


def _reference_selector(text_features: list[torch.Tensor], slides: list[tuple[torch.Tensor, int]]):
    prompt_num, select_num = 200, 100
    cls_prompt_feats: list[list[torch.Tensor]] = [[] for _ in text_features]
    prompt_embeddings = torch.zeros(prompt_num, len(text_features), text_features[0].shape[1])
    state = random.getstate()
    try:
        for idx in range(prompt_num):
            random.seed(idx)
            feats = torch.stack([random.choice(cls_feats) for cls_feats in text_features])
            for c in range(len(text_features)):
                cls_prompt_feats[c].append(feats[c])
            prompt_embeddings[idx] = feats
    finally:
        random.setstate(state)
    gt, preds = [], [[] for _ in range(prompt_num)]
    for data, label in slides:
        gt.append(label)
        all_logits = torch.einsum("nk,mck->mnc", data, prompt_embeddings)
        for i in range(prompt_num):
            preds[i].append(_reference_vote(all_logits[i]))
    bacc = [_sklearn_bacc(gt, p) for p in preds]
    top = np.argsort(bacc)[::-1][: min(select_num, len(bacc))]
    w = torch.stack([torch.stack([cls_prompt_feats[c][j] for j in top]).mean(dim=0)
                     for c in range(len(cls_prompt_feats))])
    return w / w.norm(dim=-1, keepdim=True), prompt_embeddings, np.array(bacc), top


@pytest.fixture(scope="module")
def world():
    gen = torch.Generator().manual_seed(5)
    embs = [torch.nn.functional.normalize(torch.randn(n, D, generator=gen), dim=-1) for n in PROMPTS_PER_CLASS]
    slides = []
    for s, y in enumerate((0, 0, 1, 1, 0, 1)):
        f = torch.randn(40, D, generator=gen) + 0.8 * embs[y + 1].mean(0) * (s % 3)
        slides.append((torch.nn.functional.normalize(f, dim=-1), y))
    return embs, slides


def test_paper_recipe_draws_ranks_and_averages_as_the_reference(world):
    embs, slides = world
    w_ref, drawn, bacc, top = _reference_selector(embs, slides)
    res = select_prompt_ensemble(embs, [(f.numpy(), y) for f, y in slides], seed=3, recipe="paper")
    # the same prompt for every classifier and class
    for r in range(200):
        for c in range(3):
            assert torch.equal(embs[c][res.choices[r, c]], drawn[r, c]), (r, c)
    np.testing.assert_array_equal(res.scores, bacc)
    # ties straddle rank 100 here, so the tie order matters: the kept set is the reference's, in its order
    assert bacc[top[-1]] == np.max(np.delete(bacc, top))
    np.testing.assert_array_equal(res.kept, top)
    torch.testing.assert_close(res.classifier, w_ref, rtol=0, atol=1e-7)


def test_paper_recipe_tie_order_is_reversed_argsort_not_lower_r(world):
    """The stable lower-r-first order keeps a different set on this cohort: the test above can tell them apart."""
    embs, slides = world
    res = select_prompt_ensemble(embs, [(f.numpy(), y) for f, y in slides], recipe="paper")
    stable = np.argsort(-res.scores, kind="stable")[:100]
    assert set(stable) != set(res.kept)


def test_paper_draws_are_the_same_for_every_fold_and_clean_draws_are_seeded(world):
    embs, slides = world
    feats = [(f.numpy(), y) for f, y in slides]
    a = select_prompt_ensemble(embs, feats, n_random=20, n_keep=5, seed=0, recipe="paper")
    b = select_prompt_ensemble(embs, feats, n_random=20, n_keep=5, seed=7, recipe="paper")
    np.testing.assert_array_equal(a.choices, b.choices)
    torch.testing.assert_close(a.classifier, b.classifier, rtol=0, atol=0)
    c0 = select_prompt_ensemble(embs, feats, n_random=20, n_keep=5, seed=0, recipe="clean")
    c7 = select_prompt_ensemble(embs, feats, n_random=20, n_keep=5, seed=7, recipe="clean")
    assert not np.array_equal(c0.choices, c7.choices)
    expect = [[np.random.default_rng([7, r, c]).integers(n) for c, n in enumerate(PROMPTS_PER_CLASS)]
              for r in range(20)]
    np.testing.assert_array_equal(c7.choices, expect)
    # clean ties go to the lower r
    np.testing.assert_array_equal(c7.kept, np.argsort(-c7.scores, kind="stable")[:5])


def test_paper_draws_leave_the_global_random_state_alone(world):
    embs, slides = world
    random.seed(123)
    expected = random.random()
    random.seed(123)
    select_prompt_ensemble(embs, [(f.numpy(), y) for f, y in slides], n_random=5, n_keep=2)
    assert random.random() == expected


def test_unknown_recipe_is_refused(world):
    embs, slides = world
    with pytest.raises(ValueError, match="recipe"):
        select_prompt_ensemble(embs, [(f.numpy(), y) for f, y in slides], recipe="fast")
