"""Annotations as supervision: annotated tiles replace pseudo-labels in the loss (both recipes), ignored tiles
vanish from training, prediction and the vote, and no annotations leave everything unchanged."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from pathpt_engine.annotations import IGNORE_CLASS, Region, rectangle
from pathpt_engine.annotations.apply import annotate_slide
from pathpt_engine.errors import ConfigError
from pathpt_engine.jobs import run_job
from pathpt_engine.ops.vote import tile_vote
from pathpt_engine.pathpt.losses import LabelPlan
from pathpt_engine.pathpt.model import PathPTConfig
from pathpt_engine.pathpt.predictor import predict_slide, scores_from_probs
from pathpt_engine.pathpt.pseudo import OVERRIDES_KEY, slide_tile_labels, tile_labels
from pathpt_engine.pathpt.trainer import _prepare, train_pathpt
from pathpt_engine.prompts.zeroshot import encode_class_prompts, mean_classifier, zeroshot_tile_probs
from pathpt_engine.testing.cohorts import labelled_cohort, tiny_backbone

FAST = dict(n_prompts_random=20, n_prompts_keep=10)
T = 224  # tile size of the fake cohort; 6 x 6 grid of 36 tiles


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return labelled_cohort(tmp_path_factory.mktemp("cohort"), n_tiles=36)


def _row(y, x0=0, x1=6):
    """A rectangle over tiles (x0..x1-1, y) of the 6 x 6 grid, a little inside the tile edges."""
    return rectangle(x0 * T + 10, y * T + 10, x1 * T - 10, (y + 1) * T - 10)


def test_no_annotations_is_the_same_slide_and_the_same_labels(setup):
    bb, cs, slides = setup
    s = slides[0]
    assert annotate_slide(s, cs, []) is s
    assert annotate_slide(s, cs, [Region(s.slide_id, "normal", rectangle(99999, 99999, 99999 + 5, 99999 + 5))]) is s
    w = mean_classifier(encode_class_prompts(bb, cs))
    a, b = slide_tile_labels(s, w), tile_labels(torch.as_tensor(s.features), w, s.label)
    assert torch.equal(a, b)


def test_annotated_tiles_override_pseudo_labels_in_the_trainer(setup):
    bb, cs, slides = setup
    s = slides[0]  # subtype 0 -> model class 1
    other = cs.subtype_names[1]  # model class 2: never a pseudo-label on this slide
    regions = [Region(s.slide_id, "normal", _row(0)), Region(s.slide_id, other, _row(1, 0, 3))]
    corrections = {(5 * T, 5 * T): cs.subtype_names[2]}  # model class 3
    annotated = annotate_slide(s, cs, regions, corrections)
    assert len(annotated.features) == 36 and annotated is not s
    for recipe in ("paper", "clean"):
        cfg = PathPTConfig(recipe=recipe, epochs=1, **FAST)
        _, plain = _prepare(bb, cs, [s], cfg, 0)
        _, labs = _prepare(bb, cs, [annotated], cfg, 0)
        lab, base = labs[0].numpy(), plain[0].numpy()
        assert (lab[:6] == 0).all() and (lab[6:9] == 2).all() and lab[35] == 3
        untouched = np.r_[9:35]
        np.testing.assert_array_equal(lab[untouched], base[untouched])
        assert set(np.unique(base[6:9])) <= {0, 1, -1}  # zero-shot could not have said class 2
        plan = LabelPlan.build(labs[0])  # hard labels enter the confident (balanced CE) term
        known = dict(zip(plan.known_idx.tolist(), plan.known_labels.tolist(), strict=True))
        assert all(known[i] == 2 for i in (6, 7, 8)) and known[35] == 3


def test_training_with_annotations_runs_in_both_recipes_and_changes_the_model(setup):
    bb, cs, slides = setup
    marked = [annotate_slide(s, cs, [Region(s.slide_id, "normal", _row(y)) for y in (0, 1)]) for s in slides]
    for recipe in ("paper", "clean"):
        cfg = PathPTConfig(recipe=recipe, epochs=2, **FAST)
        base = run_job(train_pathpt(bb, cs, slides, cfg)).model.state_dict()
        ann = run_job(train_pathpt(bb, cs, marked, cfg)).model.state_dict()
        assert any(not torch.equal(base[k], ann[k]) for k in base)


def test_ignored_tiles_vanish_from_training_prediction_and_the_vote(setup):
    bb, cs, slides = setup
    s = slides[0]
    w = mean_classifier(encode_class_prompts(bb, cs))
    probs = zeroshot_tile_probs(s.features, w)
    winner, _ = tile_vote(probs)
    voters = np.flatnonzero(probs.argmax(1) == winner + 1)
    assert len(voters)
    # ignore every tile that voted for the winner, with one region per tile
    regions = [Region(s.slide_id, IGNORE_CLASS, rectangle(x + 1, y + 1, x + T - 1, y + T - 1))
               for x, y in s.coords[voters]]
    kept = annotate_slide(s, cs, regions)
    assert len(kept.features) == 36 - len(voters)
    gone = {tuple(c) for c in s.coords[voters]}
    assert not gone & {tuple(c) for c in kept.coords}
    assert (kept.attrs[OVERRIDES_KEY] == -1).all()
    pred, scores = scores_from_probs(cs, kept, zeroshot_tile_probs(kept.features, w))
    assert len(scores.coords) == 36 - len(voters) and pred.n_tiles == 36 - len(voters)
    assert pred.predicted != cs.subtype_names[winner]  # the winner's votes are gone
    model = run_job(train_pathpt(bb, cs, [kept, *slides[1:]], PathPTConfig(epochs=1, **FAST))).model
    pred2, scores2 = predict_slide(model, cs, kept)
    assert scores2.probs.shape[0] == 36 - len(voters)
    with pytest.raises(ConfigError, match="every tile is covered by an 'ignore' region"):
        annotate_slide(s, cs, [Region(s.slide_id, IGNORE_CLASS, rectangle(-5, -5, 6 * T + 5, 6 * T + 5))])


def test_override_length_mismatch_is_caught(setup):
    bb, cs, slides = setup
    bad = dataclasses.replace(slides[0], attrs={OVERRIDES_KEY: np.zeros(3, dtype=np.int64)})
    with pytest.raises(ValueError, match="3 tile overrides for 36 tiles"):
        slide_tile_labels(bad, mean_classifier(encode_class_prompts(bb, cs)))


def test_project_regions_reach_the_slides(setup, tmp_path):
    """What the GUI's train/predict jobs do: the project's stored regions and corrections applied by slide id."""
    from slide_fixtures import make_slide

    from pathpt_engine.annotations.apply import annotate_from_project
    from pathpt_engine.project import Project

    bb, cs, slides = setup
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(cs)
        p.slides.add(make_slide(tmp_path / "s.tif", 512, 512))
        sid = p.slides.list()[0].slide_id
        s = dataclasses.replace(slides[0], slide_id=sid)
        assert annotate_from_project(p, cs, [s])[0] is s  # nothing stored: the same slide
        p.annotations.add(Region(sid, IGNORE_CLASS, _row(0)))
        p.annotations.set_tile(sid, 0, T, cs.subtype_names[1])
        (out,) = annotate_from_project(p, cs, [s])
        assert len(out.features) == 30 and (out.coords[:, 1] > 0).all()
        assert out.attrs[OVERRIDES_KEY][0] == 2 and (out.attrs[OVERRIDES_KEY][1:] == -1).all()


def test_gui_jobs_drop_ignored_tiles_and_train_on_regions(setup, tmp_path):
    """The project's zero-shot and train jobs (what the GUI runs): 'ignore' tiles get no score and no vote."""
    from slide_fixtures import make_slide

    from pathpt_engine.export.scores import read_scores_h5
    from pathpt_engine.features.store import write_features
    from pathpt_engine.project import Project
    from pathpt_gui import project_jobs as pj

    bb, cs, slides = setup
    keep = tmp_path / "keep"
    tiny_backbone(keep)
    choice = pj.BackboneChoice("keep", str(keep), "cpu")
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(cs)
        for i, s in enumerate(slides[:3]):
            p.slides.add(make_slide(tmp_path / f"s{i}.tif", 512, 512, seed=i))
            sid = p.slides.list()[-1].slide_id
            write_features(pj.features_folder(p, choice) / f"s{i}.h5", s.coords,
                           np.asarray(s.features, dtype=np.float32), coords_attrs={"patch_size_level0": T})
            p.labels.set(sid, cs.subtype_names[s.label], "train")
        ids = [r.slide_id for r in p.slides.list()]
        p.annotations.add(Region(ids[0], IGNORE_CLASS, _row(0)))
        p.annotations.add(Region(ids[1], "normal", _row(5)))
        for job in (pj.zeroshot_job(p, choice), pj.train_job(p, choice, PathPTConfig(epochs=1, **FAST))):
            run_id = run_job(job)
            sc = read_scores_h5(pj.scores_path(p, run_id, ids[0]))[0]
            assert len(sc.coords) == 30 and (np.asarray(sc.coords)[:, 1] > 0).all()
            assert len(read_scores_h5(pj.scores_path(p, run_id, ids[1]))[0].coords) == 36
