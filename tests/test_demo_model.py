"""The shipped demo model (resources/models/demo) and its training script."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pathpt_engine.backbones import load_backbone
from pathpt_engine.backbones.registry import demo_folder
from pathpt_engine.demo_model.data import build_vocab, captions_for, class_texts, evaluate_zero_shot

torch.set_num_threads(1)


def test_demo_folder_is_keep_format_small_and_labelled() -> None:
    folder = demo_folder()
    for name in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "README.md"):
        assert (folder / name).is_file(), name
    assert json.loads((folder / "config.json").read_text())["model_type"] == "keep"
    assert (folder / "model.safetensors").stat().st_size <= 20 * 2**20
    readme = (folder / "README.md").read_text()
    assert "never for diagnosis" in readme and "python -m pathpt_engine.demo_model.train" in readme


def test_demo_loads_through_the_keep_loader() -> None:
    model = load_backbone("demo")
    assert model.name == "demo" and model.tile_size == 224 and model.target_mpp == 0.5
    assert model.embed_dim == model.ctx_dim and len(model.weights_hash) == 16
    x = model.preprocess(np.full((2, 224, 224, 3), 200, np.uint8))
    assert x.shape[-1] == model.preprocess.crop
    tok = model.tokenize(["X X X X solid carcinoma."], max_length=40)
    assert (tok["input_ids"] != 1).all()  # no [UNK]: class names are in the vocabulary
    e = model.encode_text(["normal tissue", "solid carcinoma"])
    assert e.shape == (2, model.embed_dim)


@pytest.mark.slow
def test_demo_zero_shot_is_above_chance_on_fresh_tiles() -> None:
    """Tiles cut from fresh slides of the synthetic world the model was trained on (a test seed: neither the
    training pool's nor the model card's evaluation seeds)."""
    from pathpt_engine.demo_model.world import render_world_pool

    model = load_backbone("demo")
    tiles, labels = render_world_pool(6, seed=987654, out_size=model.preprocess.crop)
    res = evaluate_zero_shot(model, tiles, labels, kinds=sorted(set(labels.tolist())))
    assert res["n_tiles"] == 36
    assert res["balanced_accuracy"] > 0.4  # chance is 1/6


def test_world_pool_labels_follow_the_ground_truth() -> None:
    from pathpt_engine.demo_model.world import _slide_tiles

    tiles, label, tissue = _slide_tiles(2, seed=31, n_subtypes=3)
    assert tiles.shape[1:] == (224, 224, 3) and len(tiles) == len(label) == 16 * 12
    assert (label == 2).sum() >= 5 and (label == 0).sum() >= 5 and set(np.unique(label)) <= {-1, 0, 2}
    assert (tissue[label >= 0] >= 0.5).all()
    nuclei = [(tiles[label == k].astype(int).sum(axis=3) < 300).mean() for k in (0, 2)]
    assert nuclei[1] > 1.5 * nuclei[0]  # tumour tiles are the nucleus-rich ones


def test_vocab_covers_every_caption_without_unk() -> None:
    from transformers import BertTokenizer

    caps = [c for ct in class_texts() for c in captions_for(ct)]
    vocab = build_vocab(caps)
    assert len(vocab) == len(set(vocab)) and vocab[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    ids = tok(caps[::7] + ["Some Unseen Words: zyxq!"])["input_ids"]
    assert all(1 not in row for row in ids)


@pytest.mark.slow
def test_training_script_end_to_end_tiny(tmp_path: Path) -> None:
    from pathpt_engine.demo_model.train import main

    out = tmp_path / "demo"
    rc = main(["--out", str(out), "--n-per-class", "3", "--n-eval-per-class", "2", "--epochs", "2",
               "--batch-size", "12", "--img-size", "32", "--patch-size", "8", "--vision-width", "32",
               "--vision-layers", "1", "--vision-heads", "2", "--text-width", "32", "--text-layers", "1",
               "--no-slides"])
    assert rc == 0
    report = json.loads((out / "train_report.json").read_text())
    assert len(report["history"]) == 2 and np.isfinite(report["history"][-1]["loss"])
    assert set(report["zero_shot"]) >= {"all_classes", "default_cohort"}
    model = load_backbone("demo", out)
    assert model.embed_dim == 32 and "never for diagnosis" in (out / "README.md").read_text()


def test_tile_truth_from_mask() -> None:
    from pathpt_engine.demo_model.cohort_eval import tile_truth

    mask = np.zeros((10, 10), bool)
    mask[:, 5:] = True  # right half tumour, mask at downsample 16 -> level-0 160 x 160
    coords = np.array([[0, 0], [80, 0], [96, 0], [120, 48]])
    truth = tile_truth(mask, 16, coords, 32, kind=2)
    assert truth.tolist() == [0, 2, 2, 2]
    assert tile_truth(mask, 16, np.array([[64, 0]]), 32, kind=2).tolist() == [0]  # exactly half is not > 50%


def test_background_augmentation_paints_part_of_some_tiles() -> None:
    from pathpt_engine.demo_model.train import _add_background

    tiles = np.full((20, 32, 32, 3), 100, np.uint8)
    out = _add_background(tiles, 0.5, np.random.default_rng(0))
    white = (out >= 238).all(axis=-1).mean(axis=(1, 2))
    changed = white > 0
    assert 3 <= changed.sum() <= 17 and (tiles == 100).all()
    assert ((white[changed] > 0.05) & (white[changed] < 0.6)).all()
