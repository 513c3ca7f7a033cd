"""Synthetic H&E-like tissue: patches, whole slides and labelled cohorts with ground-truth tumour masks.

Everything is SYNTHETIC and deterministic from a seed. Classes (normal + tumour subtypes, with names, display
names, synonyms and colours) live in one table, `pathpt_engine.synth.subtypes.SUBTYPES` (index 0 = "normal").

Patch generator (for training the demo vision-language model)::

    from pathpt_engine.synth import render_patch
    tile = render_patch(kind, size=224, rng=seed_or_generator, stain="random", mpp=0.5)
    # kind: "normal" | subtype name | index; returns uint8 (size, size, 3) RGB, all tissue.
    # stain: "random" (slide-to-slide stain/scanner variation drawn from rng) | "default" | a Stain.
    # mpp 0.5 um/px: a 224 px tile covers 112 um, the same scale as level 1 of a synthetic slide
    # (slides are rendered at 0.25 um/px level 0 by the same code, so slide tiles and patches match).
"""

from __future__ import annotations

from .patch import PATCH_MPP, render_patch
from .render import Stain
from .subtypes import DEFAULT_SUBTYPES, MAX_SUBTYPES, SUBTYPES, Subtype, cohort_classes, kind_index

__all__ = [
    "DEFAULT_SUBTYPES",
    "MAX_SUBTYPES",
    "PATCH_MPP",
    "SUBTYPES",
    "Stain",
    "Subtype",
    "cohort_classes",
    "kind_index",
    "render_patch",
]
