"""Protocol splits (drawn and reference files) and the data layer."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pathpt_engine.errors import ConfigError
from pathpt_engine.pathpt.data import raster_order, read_labels_csv, tile_size_level0
from pathpt_engine.pathpt.splits import draw_folds, make_division, read_reference_folds
from pathpt_engine.prompts.classsets import load_classset


def test_division_and_draws():
    labels = {f"a{i}": 0 for i in range(20)} | {f"b{i}": 1 for i in range(8)}
    pool, test = make_division(labels, 2, test_fraction=0.25, pool_per_class=15)
    assert sum(1 for y in test.values() if y == 0) == 5 and sum(1 for y in test.values() if y == 1) == 2
    assert sum(1 for y in pool.values() if y == 0) == 15 and not set(pool) & set(test)
    folds = draw_folds(pool, test, shots=5, folds=3)
    for f in folds:
        assert sum(1 for y in f.train.values() if y == 1) == 5
        assert set(f.train) | set(f.val) == set(pool) and not set(f.train) & set(f.val)
        assert f.test == test
    assert folds[0].train != folds[1].train
    assert draw_folds(pool, test, 5, 3)[2] == folds[2]  # deterministic
    with pytest.raises(ConfigError):
        make_division({"x": 0, "y": 1}, 2)


def test_reference_split_files(tmp_path):
    cs = load_classset("ucs")
    het, hom = cs.subtype_names
    division = {"UCS": {"train_IDs": {"1": ["h1", "h2", "h3"], "2": ["o1", "o2"]},
                        "test_IDs": {"1": ["t1"], "2": ["t2"]},
                        "name2label": {hom: 2, het: 1}}}
    (tmp_path / "dataset_division.json").write_text(json.dumps(division))
    fold_dir = tmp_path / "dataset_csv_1shot" / "TCGA" / "UCS"
    fold_dir.mkdir(parents=True)
    for i, (a, b) in enumerate([("h1", "o2"), ("h3", "o1")]):
        (fold_dir / f"fold{i}.csv").write_text(
            "train,train_label,val,val_label,test,test_label\n"
            f"{a},0.0,t1,0,t1,0\n{b},1.0,t2,1,t2,1\n")
    folds = read_reference_folds(tmp_path, "UCS", 1, cs)
    assert [f.index for f in folds] == [0, 1]
    assert folds[0].train == {"h1": 0, "o2": 1} and folds[0].test == {"t1": 0, "t2": 1}
    assert folds[0].val == {"h2": 0, "h3": 0, "o1": 1}  # pool minus train, never the test set
    with pytest.raises(ConfigError, match="fold CSVs"):
        read_reference_folds(tmp_path, "UCS", 5, cs)
    with pytest.raises(ConfigError, match="BRCA"):
        read_reference_folds(tmp_path, "BRCA", 1, cs)


def test_reference_names_must_match_class_set(tmp_path):
    (tmp_path / "dataset_division.json").write_text(json.dumps({"X": {"name2label": {"Foo": 1}}}))
    with pytest.raises(ConfigError, match="class names"):
        read_reference_folds(tmp_path, "X", 1, load_classset("ucs"))


def test_labels_csv(tmp_path):
    cs = load_classset("synthetic")
    p = tmp_path / "l.csv"
    p.write_text("slide_id,label\ns1,solid_carcinoma\ns2,2\ns3,Nested carcinoma (synthetic)\n\n")
    assert read_labels_csv(p, cs) == {"s1": 0, "s2": 2, "s3": 2}
    p.write_text("id,label\ns1,0\n")
    with pytest.raises(ConfigError, match="header"):
        read_labels_csv(p, cs)
    p.write_text("slide_id,label\ns1,normal\ns2,0\n")
    assert read_labels_csv(p, cs) == {"s2": 0}  # Normal slides are not subtyping examples
    with pytest.raises(ConfigError, match="l.csv:2"):
        read_labels_csv(p, cs, skip_normal=False)
    p.write_text("slide_id,label\ns1,adenoma\n")
    with pytest.raises(ConfigError, match="l.csv:2"):
        read_labels_csv(p, cs)


def test_raster_order_and_tile_size():
    coords = np.array([[448, 0], [0, 448], [0, 0], [448, 448]])
    assert raster_order(coords).tolist() == [2, 0, 1, 3]
    assert tile_size_level0({}, coords) == 448
    assert tile_size_level0({"patch_size": 256, "downsample": [2.0, 2.0]}, coords) == 512
    assert tile_size_level0({"patch_size_level0": 224}, coords) == 224


def test_grounding_against_masks(tmp_path):
    from pathpt_engine.evaluate import find_mask, grounding
    from pathpt_engine.pathpt.trainer import SlideData
    from pathpt_engine.testing.cohorts import _write_mask

    idx = np.arange(16)
    coords = np.stack([(idx % 4) * 224, (idx // 4) * 224], 1)
    tumour = np.zeros(16, bool)
    tumour[5:9] = True
    _write_mask(tmp_path / "s1_tumour_ds32.png", coords[tumour], 224, 4)
    assert find_mask(tmp_path, "s1") == (tmp_path / "s1_tumour_ds32.png", 32.0)
    assert find_mask(tmp_path, "s") is None
    slide = SlideData("s1", np.zeros((16, 4), np.float32), coords, 0, 224)
    g = grounding([slide], [tumour.astype(float)], tmp_path)
    assert g["auroc"] == 1.0 and g["dice"] == 1.0 and g["n_tiles"] == 16
    noisy = tumour.astype(float)
    noisy[0] = 0.5  # one normal tile scored between -> still separable
    assert grounding([slide], [noisy], tmp_path)["auroc"] == 1.0
    assert grounding([slide], [1 - tumour.astype(float)], tmp_path)["auroc"] == 0.0
    assert grounding([slide], [tumour.astype(float)], None) is None
    # per-slide AUROC ranks within each slide only: a map scaled per slide (softmax attention ~ 1/N) pools badly
    _write_mask(tmp_path / "s2_tumour_ds32.png", coords[tumour], 224, 4)
    s2 = SlideData("s2", np.zeros((16, 4), np.float32), coords, 0, 224)
    small, big = 0.01 * (tumour + 1.0), 0.5 * (tumour + 1.0)  # right order inside each slide, not across them
    g2 = grounding([slide, s2], [small, big], tmp_path)
    assert g2["auroc_per_slide"] == 1.0 and g2["n_slides_per_slide_auroc"] == 2
    assert g2["auroc"] < 0.8
    no_tumour = SlideData("s3", np.zeros((16, 4), np.float32), coords, 0, 224)
    _write_mask(tmp_path / "s3_tumour_ds32.png", coords[:0], 224, 4)
    g3 = grounding([slide, no_tumour], [tumour.astype(float), np.zeros(16)], tmp_path)
    assert g3["n_slides_per_slide_auroc"] == 1 and g3["auroc_per_slide"] == 1.0
