"""Synthetic cohorts: slides of normal tissue and K tumour subtypes, ground-truth masks, labels.csv, cohort.json.

Layout of a cohort folder::

    slides/<slide_id>.tiff|.svs              pyramidal slide (level 0 at `mpp`, 4x downsampled levels)
    masks/<slide_id>_tumour_ds<D>.png        ground-truth tumour mask, one pixel per D x D level-0 pixels
    masks/<slide_id>_tissue_ds<D>.png        tissue mask at the same downsample
    masks/<slide_id>_tiles.npz               per 112 um tile: tissue, tumour and class-pattern shares (world renderer)
    masks/<slide_id>.json                    sidecar: label, kind, sizes, mpp, downsample, tumour fraction, stain
    labels.csv                               slide_id,label   (label = subtype name, or "normal")
    cohort.json                              seed, classes (names, synonyms, colours), sizes, mpp, slides

Two renderers: "world" (default; `world_slide`: tissue fragments, fat, stroma, normal parenchyma, tumour regions
with irregular borders and mixed patterns, composed from a texture bank at tens of megapixels per second) and
"procedural" (`slide`: every pixel rendered from noise; slower, kept for comparison and for its tests).
`scale="realistic"` draws each slide's size so that it holds a realistic amount of tissue (a median of ~450
tissue tiles of 112 um, and every eighth slide a resection of 2,000-2,800 tiles) instead of width x height.
`make_cohort(..., jobs=N)` writes N slides at a time in worker processes.

Every file is written atomically; everything is deterministic from the seed (independent of `jobs`).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from ..atomic import write_bytes_atomic
from ..errors import ConfigError
from ..jobs import Job, Progress, check_cancel
from . import noise
from .slide import SlideSpec, iter_strips, make_layout
from .subtypes import DEFAULT_SUBTYPES, MAX_SUBTYPES, SUBTYPES, cohort_classes
from .world import WorldSpec
from .writer import FORMATS, write_slide_streamed

log = logging.getLogger(__name__)

EXTENSIONS = {"tiff": ".tiff", "svs": ".svs"}
RENDERERS = ("world", "procedural")
SCALES = ("fixed", "realistic")
TISSUE_COVER = 0.38  # measured share of a world slide's area that is tissue (sizes for the realistic scale)


@dataclass(frozen=True)
class CohortSpec:
    """What cohort to generate (validated on construction)."""

    n_subtypes: int = DEFAULT_SUBTYPES
    slides_per_class: int = 4
    normal_slides: int | None = None  # None: same as slides_per_class
    width: int = 4096
    height: int = 3072
    seed: int = 0
    fmt: str = "tiff"
    mpp: float = 0.25
    mask_downsample: int = 16
    tumour_fraction: tuple[float, float] = (0.15, 0.5)
    renderer: str = "world"
    scale: str = "fixed"

    def __post_init__(self) -> None:
        if not 1 <= self.n_subtypes <= MAX_SUBTYPES:
            raise ValueError(f"number of subtypes must be 1..{MAX_SUBTYPES}, got {self.n_subtypes}")
        if self.slides_per_class < 1:
            raise ValueError(f"slides per class must be >= 1, got {self.slides_per_class}")
        if self.normal_slides is not None and self.normal_slides < 0:
            raise ValueError(f"normal slides must be >= 0, got {self.normal_slides}")
        if self.fmt not in FORMATS:
            raise ValueError(f"slide format must be one of {FORMATS}, got {self.fmt!r}")
        lo, hi = self.tumour_fraction
        if not 0.02 <= lo <= hi <= 0.9:
            raise ValueError(f"tumour_fraction range must satisfy 0.02 <= lo <= hi <= 0.9, got {self.tumour_fraction}")
        if self.renderer not in RENDERERS or self.scale not in SCALES:
            raise ValueError(f"renderer must be one of {RENDERERS} and scale one of {SCALES}")
        if self.scale == "realistic" and self.renderer != "world":
            raise ValueError("the realistic scale needs the world renderer")
        # size, mpp, seed and downsample are checked by SlideSpec
        SlideSpec(self.width, self.height, 0, self.seed, self.mpp, lo, self.mask_downsample)

    @property
    def n_normal(self) -> int:
        return self.slides_per_class if self.normal_slides is None else self.normal_slides


@dataclass(frozen=True)
class SynthSlide:
    """One generated slide and its ground truth."""

    slide_id: str
    label: str
    kind: int
    path: Path
    tumour_mask: Path
    tissue_mask: Path
    sidecar: Path
    tumour_fraction: float
    seconds: float


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temp file in the same folder and a rename."""
    write_bytes_atomic(path, data)


def _png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def label_image(slide_id: str, seed: int, size: int = 320) -> np.ndarray:
    """A slide label: text lines and a fake 2-D barcode (deterministic), RGB uint8."""
    img = Image.new("RGB", (size, size), (246, 244, 236))
    draw = ImageDraw.Draw(img)
    draw.text((12, 12), "PathPT SYNTHETIC", fill=(20, 20, 20))
    draw.text((12, 32), slide_id, fill=(20, 20, 20))
    draw.text((12, 52), f"seed {seed}", fill=(20, 20, 20))
    cells = noise.hash_uniform(seed, 77, np.arange(16)[:, None], np.arange(16)[None, :]) < 0.5
    cell = (size - 40) // 2 // 16
    x0, y0 = 12, size - 12 - 16 * cell
    for (r, c) in zip(*np.nonzero(cells), strict=True):
        draw.rectangle([x0 + c * cell, y0 + r * cell, x0 + (c + 1) * cell - 1, y0 + (r + 1) * cell - 1], fill=0)
    return np.asarray(img)


def macro_image(tissue_mask: np.ndarray, tumour_mask: np.ndarray, label: np.ndarray,
                height: int = 400) -> np.ndarray:
    """A low-magnification photo of the glass slide: label on the left, tissue drawn from the (coarse) masks."""
    tissue = tissue_mask.astype(np.float32)
    tumour = tumour_mask.astype(np.float32)
    gh, gw = tissue.shape
    tw_ = max(1, int(round(gw * (height - 40) / gh)))
    t = np.asarray(Image.fromarray((tissue * 255).astype(np.uint8)).resize((tw_, height - 40), Image.Resampling.BILINEAR))
    u = np.asarray(Image.fromarray((tumour * 255).astype(np.uint8)).resize((tw_, height - 40), Image.Resampling.BILINEAR))
    t, u = t[..., None] / 255.0, u[..., None] / 255.0
    pink, purple, glass = np.array([226, 150, 190]), np.array([170, 110, 175]), np.array([236, 238, 240])
    area = glass * (1 - t) + t * (pink * (1 - u) + purple * u)
    lab = np.asarray(Image.fromarray(label).resize((height - 40, height - 40)))
    out = np.full((height, lab.shape[1] + tw_ + 60, 3), 236, np.uint8)
    out[20:-20, 20 : 20 + lab.shape[1]] = lab
    out[20:-20, 40 + lab.shape[1] : 40 + lab.shape[1] + tw_] = area.astype(np.uint8)
    return out


class MaskFiles(NamedTuple):
    """A slide's ground-truth mask files and the tumour share of its tissue."""

    tumour: Path
    tissue: Path
    tumour_fraction: float


def write_masks(masks_dir: Path, slide_id: str, ds: int, tissue: np.ndarray, tumour: np.ndarray) -> MaskFiles:
    """Write the tumour and tissue masks (bool, one pixel per `ds` x `ds` level-0 pixels) as PNG."""
    tum_path = masks_dir / f"{slide_id}_tumour_ds{ds}.png"
    tis_path = masks_dir / f"{slide_id}_tissue_ds{ds}.png"
    atomic_write_bytes(tum_path, _png_bytes(tumour.astype(np.uint8) * 255))
    atomic_write_bytes(tis_path, _png_bytes(tissue.astype(np.uint8) * 255))
    n_tissue = int(tissue.sum())
    return MaskFiles(tum_path, tis_path, float(tumour.sum() / n_tissue) if n_tissue else 0.0)


def write_sidecar(masks_dir: Path, slide_id: str, spec: SlideSpec | WorldSpec, path: Path, masks: MaskFiles,
                  fields: dict[str, object], t0: float) -> SynthSlide:
    """Write `<slide_id>.json` (the fields every renderer writes, then `fields`) and describe the slide."""
    sub = SUBTYPES[spec.kind]
    side = {"slide_id": slide_id, "label": sub.name, "kind": spec.kind, "display": sub.display,
            "file": path.name, "width": spec.width, "height": spec.height, "mpp": spec.mpp,
            "mask_downsample": spec.mask_downsample, "tumour_mask": masks.tumour.name,
            "tissue_mask": masks.tissue.name, **fields}
    side_path = masks_dir / f"{slide_id}.json"
    atomic_write_bytes(side_path, json.dumps(side, indent=1).encode())
    return SynthSlide(slide_id, sub.name, spec.kind, path, masks.tumour, masks.tissue, side_path,
                      masks.tumour_fraction, time.perf_counter() - t0)


def write_synthetic_slide(path: Path, masks_dir: Path, slide_id: str, spec: SlideSpec, fmt: str = "tiff",
                          cancel: threading.Event | None = None) -> SynthSlide:
    """Render and write one slide (streamed strips), its masks and its JSON sidecar."""
    t0 = time.perf_counter()
    layout = make_layout(spec)
    label = label_image(slide_id, spec.seed)
    macro = macro_image(layout.tissue_mask, layout.tumour_mask, label) if fmt == "svs" else None
    write_slide_streamed(path, spec.width, spec.height, iter_strips(layout, cancel=cancel), mpp=spec.mpp,
                         fmt=fmt, label=label if fmt == "svs" else None, macro=macro)
    masks = write_masks(masks_dir, slide_id, spec.mask_downsample, layout.tissue_mask, layout.tumour_mask)
    fields = {"tumour_fraction": round(masks.tumour_fraction, 4), "seed": spec.seed, "stain": asdict(layout.stain),
              "synthetic": True}
    return write_sidecar(masks_dir, slide_id, spec, path, masks, fields, t0)


def realistic_size(rng: np.random.Generator, i: int, mpp: float) -> tuple[int, int]:
    """(width, height) of slide i at the realistic scale: every eighth a resection of 2,000-2,800 tissue tiles,
    the others a median of ~450 (lognormal, 180..1,400); 4:3, multiples of 64 px."""
    tiles = rng.uniform(2000, 2800) if i % 8 == 3 else float(np.clip(rng.lognormal(np.log(450), 0.45), 180, 1400))
    tile = 112.0 / mpp
    area = tiles * tile * tile / TISSUE_COVER
    w = int(np.sqrt(area * 4 / 3)) // 64 * 64
    return w, int(area / w) // 64 * 64


def plan(spec: CohortSpec) -> list[tuple[str, SlideSpec | WorldSpec]]:
    """(slide_id, spec) for every slide of the cohort, classes interleaved in a seeded order."""
    kinds = [0] * spec.n_normal + [k for k in range(1, spec.n_subtypes + 1) for _ in range(spec.slides_per_class)]
    rng = np.random.default_rng([spec.seed, 104729])
    order = rng.permutation(len(kinds))
    lo, hi = spec.tumour_fraction
    size_rng = np.random.default_rng([spec.seed, 15485863])
    out: list[tuple[str, SlideSpec | WorldSpec]] = []
    for i, j in enumerate(order):
        slide_seed = int(noise.hash_u64(spec.seed, 31337, i) % np.uint64(2**31))
        frac = float(rng.uniform(lo, hi))
        w, h = realistic_size(size_rng, i, spec.mpp) if spec.scale == "realistic" else (spec.width, spec.height)
        if spec.renderer == "world":
            s: SlideSpec | WorldSpec = WorldSpec(w, h, kinds[j], slide_seed, spec.mpp, frac, spec.mask_downsample,
                                                 spec.n_subtypes)
        else:
            s = SlideSpec(w, h, kinds[j], slide_seed, spec.mpp, frac, spec.mask_downsample)
        out.append((f"synth{spec.seed}_{i:03d}", s))
    return out


def _write_one(path: Path, masks_dir: Path, sid: str, s: SlideSpec | WorldSpec, fmt: str,
               cancel: threading.Event | None = None) -> SynthSlide:
    if isinstance(s, WorldSpec):
        from .world_slide import write_world_slide

        return write_world_slide(path, masks_dir, sid, s, fmt, cancel)
    return write_synthetic_slide(path, masks_dir, sid, s, fmt, cancel)


def make_cohort(out_dir: str | os.PathLike[str], spec: CohortSpec, overwrite: bool = False,
                cancel: threading.Event | None = None, jobs: int = 1) -> Job[list[SynthSlide]]:
    """Job: write a synthetic cohort into `out_dir` (see module docstring). Yields one Progress per slide.

    `jobs` > 1 writes that many slides at a time in worker processes (same files as `jobs=1`).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder; choose another --out")
    if (out / "cohort.json").exists() and not overwrite:
        raise ConfigError(f"{out}: already holds a cohort (cohort.json); choose another folder or pass --overwrite")
    if jobs < 1:
        raise ConfigError(f"jobs must be >= 1, got {jobs}")
    slides_dir, masks_dir = out / "slides", out / "masks"
    slides_dir.mkdir(parents=True, exist_ok=True)
    masks_dir.mkdir(parents=True, exist_ok=True)
    items = [(slides_dir / f"{sid}{EXTENSIONS[spec.fmt]}", masks_dir, sid, s, spec.fmt) for sid, s in plan(spec)]
    yield Progress("synth", 0, len(items), message=str(out))
    if jobs == 1 or len(items) < 2:
        done = []
        for i, item in enumerate(items):
            check_cancel(cancel)
            done.append(_write_one(*item, cancel))
            log.debug("wrote %s (%s) in %.2f s", done[-1].path.name, done[-1].label, done[-1].seconds)
            yield Progress("synth", i + 1, len(items), message=item[2], metrics={"seconds": done[-1].seconds})
    else:
        done = yield from _parallel(items, spec, jobs, cancel)
    _write_index(out, spec, done)
    return done


def _parallel(items: list[tuple], spec: CohortSpec, jobs: int, cancel: threading.Event | None,
              ) -> Job[list[SynthSlide]]:
    """Write slides in `jobs` spawned worker processes; results in plan order. The texture bank is rendered (and
    cached on disk) here first so that workers load it instead of each rendering it."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    if spec.renderer == "world":
        from .bank import material_textures
        from .world import make_world

        mats = sorted({m for _, _, _, s, _ in items for m in make_world(s).materials})
        for m in mats:
            check_cancel(cancel)
            material_textures(m, spec.mpp)
    results: dict[int, SynthSlide] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        pending = {pool.submit(_write_one, *item): i for i, item in enumerate(items)}
        try:
            while pending:
                ready, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                check_cancel(cancel)
                for f in ready:
                    i = pending.pop(f)
                    results[i] = f.result()
                    yield Progress("synth", len(results), len(items), message=items[i][2],
                                   metrics={"seconds": results[i].seconds})
        except BaseException:
            for f in pending:
                f.cancel()
            raise
    return [results[i] for i in range(len(items))]


def _size_of(s: SynthSlide) -> dict:
    side = json.loads(s.sidecar.read_text())
    keys = ("width", "height", "tissue_tiles", "tumour_tiles", "second_pattern")
    return {k: side[k] for k in keys if k in side}


def _write_index(out: Path, spec: CohortSpec, slides: list[SynthSlide]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["slide_id", "label"])
    for s in slides:
        w.writerow([s.slide_id, s.label])
    atomic_write_bytes(out / "labels.csv", buf.getvalue().encode())
    classes = [{"index": c.index, "name": c.name, "display": c.display, "synonyms": list(c.synonyms),
                "color": list(c.color)} for c in cohort_classes(spec.n_subtypes)]
    meta = {
        "generator": "pathpt_engine.synth", "synthetic": True, "seed": spec.seed, "n_subtypes": spec.n_subtypes,
        "slides_per_class": spec.slides_per_class, "normal_slides": spec.n_normal,
        "size": [spec.width, spec.height], "mpp": spec.mpp, "format": spec.fmt,
        "mask_downsample": spec.mask_downsample, "tumour_fraction_range": list(spec.tumour_fraction),
        "renderer": spec.renderer, "scale": spec.scale,
        "classes": classes,
        "slides": [{"slide_id": s.slide_id, "label": s.label, "kind": s.kind, "file": f"slides/{s.path.name}",
                    **_size_of(s),
                    "tumour_mask": f"masks/{s.tumour_mask.name}", "tissue_mask": f"masks/{s.tissue_mask.name}",
                    "tumour_fraction": round(s.tumour_fraction, 4)} for s in slides],
    }
    atomic_write_bytes(out / "cohort.json", json.dumps(meta, indent=1).encode())
