"""Annotations become supervision: per-tile overrides attached to a slide's tiles.

`annotate_slide` computes each tile's override (`coverage.tile_overrides`): tiles covered (>= 50%) by an `ignore`
region, or corrected to ignore, are removed from the slide, so they are neither trained on, predicted nor counted
in the vote; the remaining overrides travel in `slide.attrs[OVERRIDES_KEY]`, where
`pathpt.pseudo.slide_tile_labels` turns them into hard tile labels that replace the zero-shot pseudo-labels in the
loss (both recipes). A slide without annotations is returned as the very same object, so training without
annotations is unchanged bit for bit.

Sources: the project database (GUI) or a folder with one QuPath GeoJSON per slide id (`pathpt train
--annotations DIR`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..pathpt.pseudo import OVERRIDES_KEY
from ..prompts.classsets import ClassSet
from .coverage import IGNORE, NONE, tile_overrides
from .geometry import Geometry
from .qupath import read_qupath
from .regions import Region, class_index

log = logging.getLogger(__name__)

GEOJSON_SUFFIXES = (".geojson", ".json", ".geojson.gz", ".json.gz")


def overrides_for(slide: Any, classset: ClassSet, regions: Sequence[Region],
                  corrections: Mapping[tuple[int, int], str] | None = None) -> np.ndarray:
    """Per-tile override of one slide (int64 [N]; `NONE`, `IGNORE` or a model class)."""
    pairs: list[tuple[int, Geometry]] = [(class_index(classset, r.class_name), r.geometry) for r in regions]
    corr = {xy: class_index(classset, c) for xy, c in (corrections or {}).items()}
    return tile_overrides(slide.coords, float(slide.tile_size_level0), pairs, corr)


def annotate_slide(slide: Any, classset: ClassSet, regions: Sequence[Region],
                   corrections: Mapping[tuple[int, int], str] | None = None) -> Any:
    """The slide with its annotations applied (the same object when no tile is affected).

    Raises:
        ConfigError: every tile of the slide is ignored.
    """
    if not regions and not corrections:
        return slide
    ov = overrides_for(slide, classset, regions, corrections)
    if (ov == NONE).all():
        return slide
    keep = ov != IGNORE
    if not keep.any():
        raise ConfigError(f"slide {slide.slide_id}: every tile is covered by an 'ignore' region; nothing is left "
                          "to train on or predict")
    n_ign, n_lab = int((~keep).sum()), int((ov >= 0).sum())
    log.info("slide %s: %d tile(s) with an annotated class, %d ignored", slide.slide_id, n_lab, n_ign)
    attrs = {**slide.attrs, OVERRIDES_KEY: ov[keep]}
    return dataclasses.replace(slide, features=slide.features[keep], coords=slide.coords[keep], attrs=attrs)


def annotate_from_project(project: Any, classset: ClassSet, slides: Sequence[Any]) -> list[Any]:
    """Apply the project's stored regions and tile corrections to each slide (matched by slide id)."""
    store = project.annotations
    marked = set(store.slides())
    return [annotate_slide(s, classset, store.list(s.slide_id), store.tile_corrections(s.slide_id))
            if s.slide_id in marked else s for s in slides]


def geojson_for(folder: Path, slide_id: str) -> Path | None:
    """`<folder>/<slide_id>.geojson` (or .json, .geojson.gz, .json.gz), None when there is none."""
    for suffix in GEOJSON_SUFFIXES:
        p = folder / f"{slide_id}{suffix}"
        if p.is_file():
            return p
    return None


def annotate_from_folder(folder: str | os.PathLike[str], classset: ClassSet, slides: Sequence[Any],
                         mapping: Mapping[str, str] | None = None) -> list[Any]:
    """Apply `<folder>/<slide_id>.geojson` (QuPath annotations) to each slide that has one.

    Raises:
        ConfigError: the folder is missing, holds no GeoJSON for any of the slides, or a file is invalid.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ConfigError(f"{root}: annotations folder not found")
    out, used = [], 0
    for s in slides:
        path = geojson_for(root, s.slide_id)
        if path is None:
            out.append(s)
            continue
        report = read_qupath(path, s.slide_id, classset, mapping)
        log.info("%s: %s", path, report.summary())
        out.append(annotate_slide(s, classset, report.regions))
        used += 1
    if not used:
        raise ConfigError(f"{root}: no <slide_id>.geojson for any of the {len(slides)} slide(s), e.g. "
                          f"{slides[0].slide_id}.geojson" if slides else f"{root}: no slides to annotate")
    return out
