"""`pathpt export`: turn predict outputs (per-slide scores h5 + predictions.csv) into PNG, GeoJSON, CSV or h5.

    pathpt export --scores preds/ --slide slides/ --format png --class LUAD --cmap magma --out exports/
    pathpt export --scores preds/s1.h5 --format geojson --out s1.geojson
    pathpt export --scores preds/ --format csv --out predictions.csv
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..colors import hex_to_rgb
from ..errors import ConfigError
from ..export import (
    ARGMAX,
    ExportError,
    OverlayStyle,
    export_heatmap_figure,
    export_overlay_png,
    read_geojson,
    read_predictions_csv,
    read_scores_h5,
    write_geojson,
    write_predictions_csv,
    write_scores_h5,
)
from ..export.guards import require_finite, safe_child
from ..jobs import Job, Progress, check_cancel
from ..progress import run_with_bar
from ..results import SlidePrediction, TileScores

FORMATS = ("png", "geojson", "csv", "h5")
_SUFFIX = {"png": ".png", "geojson": ".geojson", "h5": ".h5"}
_SLIDE_EXTS = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `export` to `sub`."""
    p = sub.add_parser("export", help="export predicted tile scores as PNG overlays, QuPath GeoJSON, CSV or h5")
    p.add_argument("--scores", type=Path, required=True, metavar="H5|DIR",
                   help="a scores h5 (or a PathPT GeoJSON), or a folder of <slide>.h5 files from `pathpt predict`")
    p.add_argument("--slide", type=Path, metavar="SLIDE|DIR",
                   help="the slide file, or a folder searched for <slide_id>.* (png: blend over the slide; "
                        "without it png writes the raw heatmap with a legend)")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("--out", type=Path, required=True,
                   help="output file (one slide, or csv) or folder (several slides: <slide_id>.<ext>)")
    p.add_argument("--downsample", type=float, default=32.0, help="png: level-0 pixels per output pixel (32)")
    p.add_argument("--class", dest="klass", default=ARGMAX, metavar="NAME|argmax",
                   help="png: colour one class's probability, or the argmax class map (default argmax)")
    p.add_argument("--cmap", default="viridis", help="png: matplotlib colormap for --class NAME (viridis)")
    p.add_argument("--alpha", type=float, default=0.5, help="png: overlay opacity 0..1 (0.5)")
    p.add_argument("--color", action="append", default=[], metavar="NAME=#rrggbb",
                   help="class colour (repeatable); others come from the default palette")
    p.add_argument("--region", metavar="X,Y,W,H", help="png: level-0 region instead of the whole slide")
    p.add_argument("--heatmap", action="store_true", help="png: write the raw heatmap figure even with --slide")
    p.add_argument("--predictions", type=Path, metavar="CSV",
                   help="slide predictions CSV (default: predictions.csv next to the scores, if present)")
    p.add_argument("--no-tiles", action="store_true", help="geojson: only the whole-tissue annotation")
    p.set_defaults(func=_export)


@dataclass(frozen=True)
class ExportRequest:
    """Everything one `pathpt export` call needs, validated."""

    inputs: tuple[Path, ...]
    fmt: str
    out: Path
    style: OverlayStyle
    downsample: float
    slide: Path | None
    region: tuple[int, int, int, int] | None
    heatmap: bool
    predictions: dict[str, SlidePrediction]
    include_tiles: bool

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        if self.downsample <= 0:
            raise ValueError(f"--downsample must be > 0, got {self.downsample}")


def score_inputs(scores: Path) -> tuple[Path, ...]:
    """The score files named by `--scores` (a file, or every *.h5 in a folder)."""
    if scores.is_dir():
        files = tuple(sorted(scores.glob("*.h5")))
        if not files:
            raise ExportError(f"{scores}: no <slide>.h5 score files in this folder")
        return files
    if not scores.is_file():
        raise ExportError(f"{scores}: scores file or folder not found")
    return (scores,)


def load_scores(path: Path) -> tuple[TileScores, SlidePrediction | None]:
    """Scores (+ stored slide prediction) from a scores h5 or a PathPT/QuPath GeoJSON file."""
    if path.suffix.lower() in (".geojson", ".json"):
        got = read_geojson(path)
        if got.scores is None:
            raise ExportError(f"{path}: no tile objects with class measurements")
        return got.scores, got.prediction
    return read_scores_h5(path)


def find_slide(slide: Path, slide_id: str) -> Path:
    """`slide` itself, or the file `<slide_id>.<slide ext>` found (recursively) in the folder `slide`."""
    if slide.is_file():
        return slide
    if not slide.is_dir():
        raise ExportError(f"{slide}: slide file or folder not found")
    safe_child(slide, slide_id)  # an id from the data must not search outside the slide folder
    hits = sorted(p for p in slide.rglob(f"{slide_id}.*") if p.suffix.lower() in _SLIDE_EXTS)
    if not hits:
        raise ExportError(f"{slide}: no slide file named {slide_id}.* (looked for {', '.join(_SLIDE_EXTS)})")
    return hits[0]


def _output(req: ExportRequest, slide_id: str) -> Path:
    single = len(req.inputs) == 1 and req.out.suffix != ""
    return req.out if single else safe_child(req.out, slide_id, _SUFFIX[req.fmt])


def run_export(req: ExportRequest, cancel: threading.Event | None = None) -> Job[list[Path]]:
    """Job: export every input; yields one progress event per slide and returns the written paths."""
    written: list[Path] = []
    preds: list[SlidePrediction] = []
    class_names: list[str] = []
    yield Progress("export", 0, len(req.inputs))
    for i, path in enumerate(req.inputs):
        check_cancel(cancel)
        scores, stored = load_scores(path)
        pred = stored or req.predictions.get(scores.slide_id)
        class_names.extend(c for c in scores.class_names if c not in class_names)
        if req.fmt == "csv":
            if pred is None:
                raise ExportError(f"{path}: no slide prediction stored and none for {scores.slide_id!r} in "
                                  "the predictions CSV; pass --predictions")
            preds.append(pred)
        else:
            written.append(_export_one(req, scores, pred))
        yield Progress("export", i + 1, len(req.inputs), message=scores.slide_id)
    if req.fmt == "csv":
        written.append(write_predictions_csv(req.out, preds, class_names))
    return written


def _export_one(req: ExportRequest, scores: TileScores, pred: SlidePrediction | None) -> Path:
    out = _output(req, scores.slide_id)
    require_finite(out, scores, pred)
    if req.fmt == "geojson":
        return write_geojson(out, scores, pred, colors=dict(req.style.colors), include_tiles=req.include_tiles)
    if req.fmt == "h5":
        return write_scores_h5(out, scores, pred)
    if req.slide is None or req.heatmap:
        return export_heatmap_figure(out, scores, req.style)
    from ..slides import open_slide

    with open_slide(find_slide(req.slide, scores.slide_id)) as reader:
        return export_overlay_png(out, reader, scores, req.downsample, req.style, req.region)


def _parse_colors(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, color = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError("no NAME=")
            hex_to_rgb(color)
        except ValueError:
            raise ConfigError(f"--color {item!r}: expected NAME=#rrggbb") from None
        out[name] = color
    return out


def _parse_region(text: str | None) -> tuple[int, int, int, int] | None:
    if text is None:
        return None
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--region {text!r}: expected X,Y,W,H in level-0 pixels") from None
    return x, y, w, h


def _predictions(args: argparse.Namespace, inputs: tuple[Path, ...]) -> dict[str, SlidePrediction]:
    path = args.predictions
    if path is None:
        guess = (args.scores if args.scores.is_dir() else args.scores.parent) / "predictions.csv"
        path = guess if guess.is_file() else None
    return {p.slide_id: p for p in read_predictions_csv(path)} if path else {}


def build_request(args: argparse.Namespace) -> ExportRequest:
    """Validate the parsed arguments into an `ExportRequest` (ConfigError on bad values)."""
    inputs = score_inputs(args.scores)
    if args.format == "csv" and args.out.suffix.lower() != ".csv":
        raise ConfigError(f"{args.out}: --format csv writes one file; give a .csv path")
    try:
        style = OverlayStyle(args.klass, args.cmap, args.alpha, _parse_colors(args.color))
        return ExportRequest(inputs, args.format, args.out, style, args.downsample, args.slide,
                             _parse_region(args.region), args.heatmap, _predictions(args, inputs),
                             not args.no_tiles)
    except ValueError as exc:
        raise ConfigError(f"pathpt export: {exc}") from exc


def _export(args: argparse.Namespace) -> int:
    req = build_request(args)
    written = run_with_bar(run_export(req), quiet=args.quiet)
    for path in _summarise(written):
        print(path)
    return 0


def _summarise(paths: list[Path]) -> Iterator[str]:
    if len(paths) <= 20:
        yield from (str(p) for p in paths)
    else:
        yield f"{len(paths)} files written to {paths[0].parent}"
