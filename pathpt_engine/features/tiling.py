"""The tiling job: for each slide, tissue mask + tile grid, written as `<slide_name>.h5` coords files.

A slide's file is reused when it already holds the same slide (OpenSlide quickhash) and tiling parameters.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, SlideError
from ..jobs import Job, Progress, check_cancel
from ..slides.grid import MAX_SILENT_UPSAMPLE, GridParams, make_grid
from ..slides.reader import open_slide
from ..slides.tissue import TissueParams, tissue_mask
from .store import is_valid, read_coords, write_coords

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlideTiling:
    """What tiling did for one slide (JSON-friendly)."""

    slide_name: str
    path: str
    slide_id: str
    output: str
    n_tiles: int
    level: int
    read_size: int
    size_level0: int
    slide_mpp: float
    mpp_source: str
    tissue_fraction: float
    tissue_s: float
    grid_s: float
    cached: bool = False
    message: str = ""


@dataclass(frozen=True)
class TilingSummary:
    """All slides of one tiling run and the parameters used."""

    slides: tuple[SlideTiling, ...]
    params: dict[str, Any] = field(default_factory=dict)
    failed: tuple[tuple[str, str], ...] = ()  # (path, error message) of slides skipped with skip_errors

    @property
    def total_tiles(self) -> int:
        return sum(s.n_tiles for s in self.slides)

    def to_dict(self) -> dict[str, Any]:
        return {"params": self.params, "total_tiles": self.total_tiles, "slides": [asdict(s) for s in self.slides],
                "failed": [{"path": p, "error": e} for p, e in self.failed]}


def tile_params_json(grid_params: GridParams, tissue_params: TissueParams) -> str:
    """Canonical JSON of the tiling parameters (stored in each file, compared to detect stale caches)."""
    return json.dumps({"grid": asdict(grid_params), "tissue": asdict(tissue_params)}, sort_keys=True)


def slide_name(path: Path) -> str:
    """The name a slide's outputs are filed under: its file name without the extension."""
    return path.stem


def tile_slide(path: Path, out_dir: Path, grid_params: GridParams = GridParams(),
               tissue_params: TissueParams = TissueParams(), reuse: bool = True) -> SlideTiling:
    """Tissue mask + grid for one slide, written to `out_dir/<slide_name>.h5` (reused if still valid)."""
    name = slide_name(path)
    out = out_dir / f"{name}.h5"
    with open_slide(path) as reader:
        attrs = {"slide_id": reader.quickhash, "slide_name": name,
                 "tile_params": tile_params_json(grid_params, tissue_params)}
        if reuse and is_valid(out, attrs, need_features=False):
            return _from_file(path, out, grid_params)
        t0 = time.perf_counter()
        mask = tissue_mask(reader, tissue_params)
        t1 = time.perf_counter()
        grid = make_grid(reader, mask, grid_params)
        t2 = time.perf_counter()
    write_coords(out, grid, {**attrs, "slide_path": str(path), "tissue_fraction": mask.fraction})
    return SlideTiling(slide_name=name, path=str(path), slide_id=attrs["slide_id"], output=str(out),
                       n_tiles=len(grid), level=grid.level, read_size=grid.read_size, size_level0=grid.size_level0,
                       slide_mpp=grid.slide_mpp, mpp_source=grid.mpp_source, tissue_fraction=mask.fraction,
                       tissue_s=t1 - t0, grid_s=t2 - t1,
                       message=_join(_message(len(grid), grid_params, mask.fraction), grid.upsample_note()))


def _from_file(path: Path, out: Path, grid_params: GridParams) -> SlideTiling:
    c = read_coords(out)
    a, fraction = c.coords_attrs, float(c.attrs.get("tissue_fraction", 0.0))
    return SlideTiling(slide_name=str(c.attrs["slide_name"]), path=str(path), slide_id=str(c.attrs["slide_id"]),
                       output=str(out), n_tiles=len(c.coords), level=int(a["patch_level"]),
                       read_size=int(a["patch_size"]), size_level0=int(a["patch_size_level0"]),
                       slide_mpp=float(a["slide_mpp"]), mpp_source=str(a["mpp_source"]), tissue_fraction=fraction,
                       tissue_s=0.0, grid_s=0.0, cached=True,
                       message=_join(_message(len(c.coords), grid_params, fraction),
                                     _upsample_note(int(a["patch_size"]), grid_params.tile_size)))


def _upsample_note(read_size: int, tile_size: int) -> str:
    factor = tile_size / read_size
    if factor <= MAX_SILENT_UPSAMPLE:
        return ""
    return f"tiles upsampled {factor:.1f}x ({read_size}px -> {tile_size}px)"


def _join(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


def _message(n_tiles: int, grid_params: GridParams, fraction: float) -> str:
    if n_tiles:
        return ""
    return (f"no tissue found: 0 tiles with >= {grid_params.min_tissue:.0%} tissue "
            f"(tissue covers {fraction:.1%} of the slide)")


def tile_slides(
    paths: Sequence[str | Path],
    out_dir: str | Path,
    grid_params: GridParams = GridParams(),
    tissue_params: TissueParams = TissueParams(),
    cancel: threading.Event | None = None,
    reuse: bool = True,
    skip_errors: bool = False,
) -> Job[TilingSummary]:
    """Job: tile every slide into `out_dir`, yielding Progress("tile", i, n) per slide.

    Args:
        reuse: keep an existing `<slide_name>.h5` that holds the same slide and parameters.
        skip_errors: record a slide that fails (SlideError) in `TilingSummary.failed` and go on.

    Raises:
        ConfigError: two slides share a name (their outputs would collide).
        SlideError: a slide cannot be opened or read (unless `skip_errors`).
        JobCancelled: `cancel` was set (checked between slides).
    """
    slides = [Path(p) for p in paths]
    _check_unique(slides)
    out = Path(out_dir)
    done: list[SlideTiling] = []
    failed: list[tuple[str, str]] = []
    yield Progress("tile", 0, len(slides))
    for i, path in enumerate(slides):
        check_cancel(cancel)
        try:
            done.append(tile_slide(path, out, grid_params, tissue_params, reuse))
        except SlideError as exc:
            if not skip_errors:
                raise
            logger.warning("skipping %s", exc)
            failed.append((str(path), str(exc)))
        yield Progress("tile", i + 1, len(slides), message=slide_name(path),
                       metrics={"tiles": float(sum(s.n_tiles for s in done))})
    params = json.loads(tile_params_json(grid_params, tissue_params))
    return TilingSummary(tuple(done), params, tuple(failed))


def _check_unique(slides: list[Path]) -> None:
    seen: dict[str, Path] = {}
    for path in slides:
        other = seen.setdefault(slide_name(path), path)
        if other != path:
            raise ConfigError(f"{path}: same slide name {slide_name(path)!r} as {other}; outputs would collide")
