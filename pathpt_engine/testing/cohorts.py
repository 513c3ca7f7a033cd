"""Fake feature cohorts for tests and benchmarks (no slides, no image tower needed).

Tile features live in the backbone's joint space: each class c has a direction u_c = normalise(t_c + mix · r_c),
where t_c is the class's mean prompt embedding and r_c a random unit vector, so zero-shot carries some signal
(more with a smaller `mix`) and a learned model can do better. A slide of subtype y has a fraction of tumour tiles
(around u_{y+1}) in a contiguous block of the raster order, the rest normal (around u_0).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..backbones.base import Backbone
from ..prompts.classsets import ClassSet, load_classset
from ..prompts.zeroshot import encode_class_prompts, mean_classifier

if TYPE_CHECKING:
    from ..pathpt.trainer import SlideData


def class_directions(backbone: Backbone, classset: ClassSet, mix: float, seed: int) -> np.ndarray:
    """[C, D] unit vectors u_c = normalise(t_c + mix · r_c)."""
    t = mean_classifier(encode_class_prompts(backbone, classset)).numpy()
    rng = np.random.default_rng(seed)
    r = rng.normal(size=t.shape)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    u = t + mix * r
    return (u / np.linalg.norm(u, axis=1, keepdims=True)).astype(np.float32)


def make_fake_cohort(folder: str | os.PathLike[str], backbone: Backbone, classset: ClassSet, per_class: int = 6,
                     n_tiles: int = 48, tumour_fraction: float = 0.6, mix: float = 1.0, noise: float = 0.6,
                     seed: int = 0, tile_size: int = 224, masks: bool = False) -> tuple[Path, Path]:
    """Write `<folder>/features/<slide>.h5` and `<folder>/labels.csv`; returns (features dir, labels CSV).

    With `masks`, also `<folder>/masks/<slide>_tumour_ds32.png` covering exactly the tumour tiles.
    """
    from ..features.store import write_features

    root = Path(folder)
    feat_dir = root / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)
    u = class_directions(backbone, classset, mix, seed)
    rng = np.random.default_rng(seed + 1)
    side = int(np.ceil(np.sqrt(n_tiles)))
    rows = []
    for c in range(classset.n_classes - 1):
        for j in range(per_class):
            sid = f"slide_{c}_{j:02d}"
            n_t = int(round(n_tiles * tumour_fraction))
            start = int(rng.integers(0, n_tiles - n_t + 1))
            kind = np.zeros(n_tiles, dtype=int)
            kind[start : start + n_t] = c + 1
            f = u[kind] + noise * rng.normal(size=(n_tiles, u.shape[1])) / np.sqrt(u.shape[1])
            f /= np.linalg.norm(f, axis=1, keepdims=True)
            idx = np.arange(n_tiles)
            coords = np.stack([(idx % side) * tile_size, (idx // side) * tile_size], axis=1).astype(np.int64)
            write_features(feat_dir / f"{sid}.h5", coords, f.astype(np.float32),
                           attrs={"backbone": backbone.name}, coords_attrs={"patch_size_level0": tile_size})
            if masks:
                _write_mask(root / "masks" / f"{sid}_tumour_ds32.png", coords[kind > 0], tile_size, side)
            rows.append((sid, classset.subtype_names[c]))
    labels = root / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["slide_id", "label"])
        w.writerows(rows)
    return feat_dir, labels


def _write_mask(path: Path, coords: np.ndarray, tile_size: int, side: int, ds: int = 32) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    size = -(-side * tile_size // ds)
    mask = np.zeros((size, size), dtype=np.uint8)
    t = tile_size // ds
    for x, y in coords // ds:
        mask[y : y + t, x : x + t] = 255
    Image.fromarray(mask).save(path)


def tiny_backbone(folder: str | os.PathLike[str], width: int = 32, seed: int = 0) -> Backbone:
    """A tiny random KEEP-format backbone (text width = embed dim = `width`) for tests."""
    from ..backbones import load_backbone
    from .backbones import make_tiny_keep_folder

    torch.manual_seed(seed)
    path = make_tiny_keep_folder(folder, seed=seed, text_width=width, max_positions=96)
    return load_backbone("keep", path).freeze()


def labelled_cohort(root: str | os.PathLike[str], n_tiles: int = 30, per_class: int = 2,
                    classset: str = "synthetic") -> tuple[Backbone, ClassSet, list[SlideData]]:
    """A tiny backbone, a class set and its labelled fake cohort under `root` (`keep/`, `c/`): the set-up of the
    training tests."""
    from ..pathpt.data import load_labelled, read_labels_csv

    bb = tiny_backbone(Path(root) / "keep")
    cs = load_classset(classset)
    feat_dir, labels_csv = make_fake_cohort(Path(root) / "c", bb, cs, per_class=per_class, n_tiles=n_tiles)
    return bb, cs, load_labelled(feat_dir, read_labels_csv(labels_csv, cs))
