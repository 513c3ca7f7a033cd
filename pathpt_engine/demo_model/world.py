"""Training and evaluation tiles for the demo model, cut from realistic synthetic slides (`synth.world`).

Small slides of every subtype (tumour regions inside normal tissue, fat, stroma, glass) are rendered in memory
and cut into the same 112 um tiles (224 px at 0.5 um/px) that extraction reads. A tile's class comes from the
exact ground truth: the slide's subtype when more than half of the tile lies inside the tumour outline and the
subtype's own pattern is the main tumour pattern in it; normal when it holds at least half tissue and under 10%
tumour outline. Tiles are resized to the model's input size exactly as the backbone's preprocessing does.

Seeds: slide i of a pool drawn with seed s uses world seed hash(s, 5113, i). The model is trained on pool seed
`cfg.seed` (design), its tile evaluation uses `cfg.seed + 1000` and its slide evaluation cohort `cfg.seed + 2000`
(held out: never used for design, training or tests).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..backbones.base import Preprocess

log = logging.getLogger(__name__)
SLIDE_PX = (3584, 2688)  # 16 x 12 tiles of 224 px


def _slide_tiles(kind: int, seed: int, n_subtypes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tiles uint8 [n, 224, 224, 3], class [n] (-1 = unusable), tissue share [n]) of one in-memory slide."""
    from ..synth.bank import SlideBank
    from ..synth.compose import Truth, iter_world_strips, tile_px
    from ..synth.world import WorldSpec, make_world
    from ..synth.world_slide import slide_stain

    spec = WorldSpec(*SLIDE_PX, kind=kind, seed=seed, mpp=0.5, tumour_fraction=0.55, n_subtypes=n_subtypes)
    world = make_world(spec)
    truth = Truth(spec.width, spec.height, 16, tile_px(0.5))
    img = np.concatenate([s.copy() for s in iter_world_strips(world, SlideBank(world.materials,
                                                                              slide_stain(seed), 0.5), truth)])
    t = truth.tile_table()
    n_r, n_c = spec.height // 224, spec.width // 224
    tiles = img[: n_r * 224, : n_c * 224].reshape(n_r, 224, n_c, 224, 3).swapaxes(1, 2).reshape(-1, 224, 224, 3)
    keep = (t["y"] < n_r * 224) & (t["x"] < n_c * 224)
    tissue, outline, classes = t["tissue"][keep], t["tumour"][keep], t["classes"][keep]
    label = np.full(len(tissue), -1, np.int64)
    label[(tissue >= 0.5) & (outline < 0.1)] = 0
    if kind:
        own = classes[:, kind] >= np.delete(classes[:, 1:], kind - 1, axis=1).max(axis=1, initial=0.0)
        label[(outline > 0.5) & own] = kind
    return tiles, label, tissue


def render_world_pool(n_per_class: int, seed: int, out_size: int, kinds: list[int] | None = None,
                      ) -> tuple[np.ndarray, np.ndarray]:
    """`n_per_class` tiles per class (normal + subtypes) cut from realistic synthetic slides, resized to
    `out_size` like the backbone's preprocessing; uint8 [N, out, out, 3] and labels [N]."""
    from ..synth import SUBTYPES, noise

    kinds = list(range(len(SUBTYPES))) if kinds is None else list(kinds)
    subtypes = [k for k in kinds if k]
    n_sub = max(subtypes, default=1)
    rng = np.random.default_rng([seed, 5113])
    pools: dict[int, list[np.ndarray]] = {k: [] for k in kinds}
    counts = dict.fromkeys(kinds, 0)
    i = 0
    while min(counts.values()) < n_per_class:
        for k in subtypes or [0]:
            if counts[k] >= n_per_class and counts[0] >= n_per_class:
                continue
            s = int(noise.hash_u64(seed, 5113, i) % np.uint64(2**31))
            i += 1
            tiles, label, _ = _slide_tiles(k, s, n_sub)
            for c in {0, k} & set(kinds):
                sel = tiles[label == c]
                pools[c].append(sel)
                counts[c] += len(sel)
        if i > 40 * (len(subtypes) + 1) * max(1, n_per_class // 20):
            raise RuntimeError("render_world_pool: synthetic slides yield too few tiles of some class")
    resize = Preprocess(resize=out_size, crop=out_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = np.empty((n_per_class * len(kinds), out_size, out_size, 3), np.uint8)
    labels = np.repeat(np.asarray(kinds, np.int64)[None, :], n_per_class, axis=0).reshape(-1)
    chosen = {k: np.concatenate(pools[k])[rng.choice(counts[k], n_per_class, replace=False)] for k in kinds}
    for j in range(n_per_class):
        for c, k in enumerate(kinds):
            x = resize(chosen[k][j])[0].permute(1, 2, 0).mul(255.0).round().clamp(0, 255)
            out[j * len(kinds) + c] = x.to(torch.uint8).numpy()
    log.info("world pool: %d tiles per class from %d synthetic slides", n_per_class, i)
    return out, labels
