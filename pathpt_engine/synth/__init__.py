"""Synthetic H&E-like tissue: patches, whole slides and labelled cohorts with ground-truth tumour masks.

Everything is SYNTHETIC and deterministic from a seed. Classes (normal + tumour subtypes, with names, display
names, synonyms and colours) live in one table, `pathpt_engine.synth.subtypes.SUBTYPES` (index 0 = "normal").

Patch generator (for training the demo vision-language model)::

    from pathpt_engine.synth import render_patch
    tile = render_patch(kind, size=224, rng=seed_or_generator, stain="random", mpp=0.5)
    # kind: "normal" | subtype name | index; returns uint8 (size, size, 3) RGB, all tissue.
    # stain: "random" (slide-to-slide stain/scanner variation drawn from rng) | "default" | a Stain.
    # mpp 0.5 um/px: a 224 px tile covers 112 um, the same scale as a 0.25 um/px slide downsampled 2x
    # (slides are rendered at 0.25 um/px level 0 by the same code, so slide tiles and patches match).
    # About 12-20 ms CPU per 224 px patch on one core.

Slides and cohorts::

    from pathpt_engine.synth import CohortSpec, SlideSpec, make_cohort, write_synthetic_slide
    write_synthetic_slide(path, masks_dir, "s1", SlideSpec(4096, 3072, kind=1, seed=3), fmt="svs")  # procedural
    slides = run_job(make_cohort(out_dir, CohortSpec(n_subtypes=3, slides_per_class=4, seed=0)))
    # realistic scale, as `pathpt synth` does by default (world renderer, 20x, two worker processes):
    slides = run_job(make_cohort(out_dir, CohortSpec(mpp=0.5, scale="realistic"), jobs=2))

Cohorts use the "world" renderer by default: tissue fragments, fat, stroma, normal parenchyma and tumour regions
(irregular borders, intratumoural stroma, minor second patterns) composed from a cached bank of textures rendered
by `render` (`world`, `bank`, `compose`, `world_slide`), at tens of megapixels per second per core.

Module map: `subtypes` (class table + morphology), `noise` (seamless hashed noise), `structure` (glands, nests,
sheets, fibres), `nuclei` (placement + sprites), `render` (stain model measured on real H&E, Beer-Lambert),
`patch`, `slide` (procedural layout, strips), `world` (realistic layout, fine material map, texture pieces),
`bank` (texture bank + disk cache), `compose` (strips + exact ground truth), `world_slide`, `writer` (pyramidal
TIFF/SVS), `cohort` (job, plan, realistic sizes, worker processes, masks, labels.csv, cohort.json).
"""

from __future__ import annotations

from .cohort import CohortSpec, SynthSlide, make_cohort, write_synthetic_slide
from .patch import PATCH_MPP, render_patch
from .render import Stain
from .slide import SlideSpec
from .subtypes import DEFAULT_SUBTYPES, MAX_SUBTYPES, SUBTYPES, Subtype, cohort_classes, kind_index

__all__ = [
    "DEFAULT_SUBTYPES",
    "MAX_SUBTYPES",
    "PATCH_MPP",
    "SUBTYPES",
    "CohortSpec",
    "SlideSpec",
    "Stain",
    "Subtype",
    "SynthSlide",
    "cohort_classes",
    "kind_index",
    "make_cohort",
    "render_patch",
    "write_synthetic_slide",
]
