"""Exporting a run's tile scores, written once for `pathpt export` and the GUI's Export Results.

`export_run(sources, opts)` is a job over score sources (a scores h5 or a PathPT/QuPath GeoJSON per slide): for
each slide it writes the files `opts.kinds` asks for (blended overlay PNG, heatmap figure with legend, QuPath
GeoJSON, scores h5), and optionally one predictions CSV at the end. Every name taken from the data is checked
(`export.guards.safe_child`) and non-finite scores are refused before anything of that slide is written.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..export import ExportError, OverlayStyle, read_geojson, read_scores_h5
from ..export.captions import Caption
from ..export.guards import require_finite, safe_child
from ..export.png import Region
from ..jobs import Job, Progress, check_cancel
from ..results import SlidePrediction, TileScores

# every kind export_run knows; DEFAULT_KINDS: what it writes when none are chosen (the four of earlier versions)
KINDS = ("overlay_png", "heatmap_png", "geojson", "scores_h5", "overlay_tiff", "regions_geojson", "figure_png",
         "figure_svg", "figure_pdf")
DEFAULT_KINDS = ("overlay_png", "heatmap_png", "geojson", "scores_h5")
# per-slide file names in a folder: <slide_id><suffix> (the GUI's Export Results layout)
SUFFIXES: Mapping[str, str] = {"overlay_png": "_overlay.png", "heatmap_png": "_heatmap.png", "geojson": ".geojson",
                               "scores_h5": "_scores.h5", "overlay_tiff": "_likelihood_map.tif",
                               "regions_geojson": "_regions.geojson", "figure_png": "_figure.png",
                               "figure_svg": "_figure.svg", "figure_pdf": "_figure.pdf"}
TIFF_VARIANTS = ("gray", "rgba")


@dataclass(frozen=True)
class ExportOptions:
    """What `export_run` writes and how.

    Attributes:
        out: output folder (files `<slide_id><suffix>`), or with `one_file` the single output file.
        kinds: per-slide files, from `KINDS` (may be empty: only the CSV); default `DEFAULT_KINDS`.
        style: overlay mode ("argmax" or a class name), colormap, opacity and class colours.
        downsample: level-0 pixels per PNG pixel of the blended overlay.
        region: level-0 (x, y, w, h) of the blended overlay instead of the whole slide.
        include_tiles: GeoJSON: one object per tile besides the whole-tissue annotation.
        suffixes: file-name suffix per kind (default `SUFFIXES`).
        one_file: `out` is the one file to write (one source and one kind).
        csv: also write the exported slides' predictions to this CSV (each needs a prediction).
        slide_ids: export only these slides (None: every source).
        mpp: output resolution in µm/px instead of `downsample` (needs the slide's pixel size).
        tiff_variant: TIFF overlay pixels: "gray" (uint8 class index + 1, or probability * 255 of the
            `style.mode` class; 0 = no tile) or "rgba" (the overlay colours).
        caption: run, method, backbone and research-use flag for the captions of every picture.
        dpi: resolution of PNG figures.
        legend_strip: overlay PNG: add a strip under the image with the legend and the caption.
        simplify: class regions: outline simplification tolerance in tiles (0 = the exact tile outline).
    """

    out: Path
    kinds: tuple[str, ...] = DEFAULT_KINDS
    style: OverlayStyle = field(default_factory=OverlayStyle)
    downsample: float = 8.0
    region: Region | None = None
    include_tiles: bool = True
    suffixes: Mapping[str, str] = field(default_factory=lambda: dict(SUFFIXES))
    one_file: bool = False
    csv: Path | None = None
    slide_ids: tuple[str, ...] | None = None
    mpp: float | None = None
    tiff_variant: str = "gray"
    caption: Caption = field(default_factory=Caption)
    dpi: int = 150
    legend_strip: bool = False
    simplify: float = 0.75

    def __post_init__(self) -> None:
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown export kind(s) {unknown}; known: {list(KINDS)}")
        if not self.downsample > 0:  # also refuses nan
            raise ValueError(f"--downsample must be > 0, got {self.downsample}")
        if self.mpp is not None and not self.mpp > 0:
            raise ValueError(f"--mpp must be > 0, got {self.mpp}")
        if not 0.0 <= self.simplify <= 10.0:  # also refuses nan
            raise ValueError(f"--simplify must be in 0..10 tiles, got {self.simplify}")
        if not 10 <= self.dpi <= 1200:
            raise ValueError(f"--dpi must be in 10..1200, got {self.dpi}")
        if self.tiff_variant not in TIFF_VARIANTS:
            raise ValueError(f"unknown TIFF overlay variant {self.tiff_variant!r}; known: {list(TIFF_VARIANTS)}")
        if self.one_file and len(self.kinds) != 1:
            raise ValueError("one output file holds one kind of export")


def load_scores(path: Path) -> tuple[TileScores, SlidePrediction | None]:
    """Scores (+ stored slide prediction) from a scores h5 or a PathPT/QuPath GeoJSON file."""
    if path.suffix.lower() in (".geojson", ".json"):
        got = read_geojson(path)
        if got.scores is None:
            raise ExportError(f"{path}: no tile objects with class measurements")
        return got.scores, got.prediction
    return read_scores_h5(path)


SlideFor = Callable[[str], Path | None]  # slide_id -> its slide file (None: no slide, no blended overlay)


def export_run(sources: Sequence[Path], opts: ExportOptions, slide_for: SlideFor = lambda _sid: None,
               predictions: Mapping[str, SlidePrediction] | None = None,
               cancel: threading.Event | None = None) -> Job[dict[str, list[Path]]]:
    """Job: export every source (one progress event per slide); returns kind -> written paths ("csv" too).

    Args:
        sources: scores h5 or GeoJSON files, one per slide.
        opts: what to write.
        slide_for: the slide file of a slide id (for `overlay_png`).
        predictions: slide calls for sources that store none (e.g. from a predictions CSV).
        cancel: checked before every slide.
    """
    written: dict[str, list[Path]] = {k: [] for k in opts.kinds}
    calls: list[SlidePrediction] = []
    class_names: list[str] = []
    yield Progress("export", 0, len(sources))
    for i, path in enumerate(sources):
        check_cancel(cancel)
        scores, stored = load_scores(path)
        if opts.slide_ids is not None and scores.slide_id not in opts.slide_ids:
            continue
        pred = stored or (predictions or {}).get(scores.slide_id)
        class_names.extend(c for c in scores.class_names if c not in class_names)
        if opts.csv is not None:
            if pred is None:
                raise ExportError(f"{path}: no slide prediction stored and none for {scores.slide_id!r} in "
                                  "the predictions CSV; pass --predictions")
            calls.append(pred)
        for kind, out in export_slide(scores, pred, opts, slide_for).items():
            written[kind].append(out)
        yield Progress("export", i + 1, len(sources), message=scores.slide_id)
    if opts.csv is not None:
        from ..export.tables import write_predictions_csv

        written["csv"] = [write_predictions_csv(opts.csv, calls, class_names)]
    return written


def export_slide(scores: TileScores, pred: SlidePrediction | None, opts: ExportOptions,
                 slide_for: SlideFor = lambda _sid: None) -> dict[str, Path]:
    """Write one slide's files (`opts.kinds`); names and values are checked before the first one is written."""
    sid = scores.slide_id
    paths = {k: opts.out if opts.one_file else safe_child(opts.out, sid, opts.suffixes[k]) for k in opts.kinds}
    if paths:
        require_finite(next(iter(paths.values())), scores, pred)
    return {kind: _write(kind, path, scores, pred, opts, slide_for) for kind, path in paths.items()}


def _write(kind: str, path: Path, scores: TileScores, pred: SlidePrediction | None, opts: ExportOptions,
           slide_for: SlideFor) -> Path:
    from ..export import export_heatmap_figure, write_geojson, write_scores_h5

    if kind == "geojson":
        return write_geojson(path, scores, pred, colors=dict(opts.style.colors), include_tiles=opts.include_tiles)
    if kind == "scores_h5":
        return write_scores_h5(path, scores, pred)
    if kind == "heatmap_png":
        return export_heatmap_figure(path, scores, opts.style, dpi=opts.dpi, caption=opts.caption)
    if kind == "regions_geojson":
        return _write_regions(path, scores, opts, slide_for)
    if kind.startswith("figure_"):
        return _write_figure(path, scores, opts, slide_for)
    slide = slide_for(scores.slide_id)
    if slide is None:
        what = "align the TIFF overlay with" if kind == "overlay_tiff" else "blend the overlay over"
        raise ExportError(f"{path}: no slide file for {scores.slide_id!r} to {what}")
    from ..slides import open_slide

    with open_slide(slide) as reader:
        slide_mpp = reader.mpp[0] if reader.mpp else None
        if kind == "overlay_tiff":
            from ..export.tiff_overlay import write_tiff_overlay

            d = max(1, math.floor(_downsample(opts, slide_mpp, path) + 1e-9))  # the TIFF needs an integer one
            return write_tiff_overlay(path, scores, reader.dimensions, slide_mpp, d, opts.style, opts.tiff_variant)
        from ..export.legend_strip import export_overlay_png_captioned

        return export_overlay_png_captioned(path, reader, scores, _downsample(opts, slide_mpp, path), opts.style,
                                            opts.region, opts.caption, opts.legend_strip)


def _downsample(opts: ExportOptions, slide_mpp: float | None, path: Path) -> float:
    """Level-0 pixels per output pixel: `opts.downsample`, or from `opts.mpp` and the slide's pixel size."""
    if opts.mpp is None:
        return opts.downsample
    if slide_mpp is None:
        raise ExportError(f"{path}: the slide records no pixel size, so --mpp cannot be used; give --downsample")
    return opts.mpp / slide_mpp


def _write_regions(path: Path, scores: TileScores, opts: ExportOptions, slide_for: SlideFor) -> Path:
    """Class regions as QuPath annotations; areas in µm² when the slide (and its pixel size) is known."""
    from ..export.class_regions import write_class_regions

    mpp = None
    slide = slide_for(scores.slide_id)
    if slide is not None:
        from ..slides import open_slide

        with open_slide(slide) as reader:
            mpp = reader.mpp[0] if reader.mpp else None
    return write_class_regions(path, scores, opts.style.colors, opts.style.normal_index, mpp,
                               opts.simplify * scores.tile_size_level0)


def _write_figure(path: Path, scores: TileScores, opts: ExportOptions, slide_for: SlideFor) -> Path:
    """The figure (format from the suffix): with the slide's thumbnail and a scale bar when the slide is known."""
    from ..export import export_heatmap_figure

    slide = slide_for(scores.slide_id)
    if slide is None:
        return export_heatmap_figure(path, scores, opts.style, dpi=opts.dpi, caption=opts.caption)
    from ..slides import open_slide

    with open_slide(slide) as reader:
        return export_heatmap_figure(path, scores, opts.style, dpi=opts.dpi, caption=opts.caption, reader=reader)
