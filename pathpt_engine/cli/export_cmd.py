"""`pathpt export`: turn predict outputs (per-slide scores h5 + predictions.csv) into PNG, GeoJSON, CSV or h5.

    pathpt export --scores preds/ --slide slides/ --format png --class LUAD --cmap magma --out exports/
    pathpt export --scores preds/s1.h5 --format geojson --out s1.geojson
    pathpt export --scores preds/ --format csv --out predictions.csv
    pathpt export --scores preds/ --slide slides/ --format tiff --class LUAD --mpp 4 --out overlays/
    pathpt export --scores preds/ --slide slides/ --format geojson --regions --out regions/
    pathpt export --scores preds/ --slide slides/ --format figure --figure-format png svg pdf --dpi 300 \
        --run lung-5shot --method PathPT --backbone KEEP --out figures/
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from ..colors import hex_to_rgb
from ..errors import ConfigError
from ..export import ARGMAX, ExportError, OverlayStyle, read_predictions_csv
from ..export.captions import Caption
from ..export.guards import safe_child
from ..progress import run_with_bar
from ..results import SlidePrediction
from ..workflow.export import ExportOptions, export_run

FORMATS = ("png", "geojson", "csv", "h5", "tiff", "figure")
# file name per kind: <slide_id><suffix> in a folder
_SUFFIX = {"overlay_png": ".png", "heatmap_png": ".png", "geojson": ".geojson", "regions_geojson": ".geojson",
           "scores_h5": ".h5", "overlay_tiff": "_likelihood_map.tif", "figure_png": "_figure.png",
           "figure_svg": "_figure.svg", "figure_pdf": "_figure.pdf"}
_SLIDE_EXTS = (".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `export` to `sub`."""
    p = sub.add_parser("export", help="export predicted tile scores as PNG overlays, QuPath GeoJSON, CSV or h5")
    p.add_argument("--scores", type=Path, required=True, metavar="H5|DIR",
                   help="a scores h5 (or a PathPT GeoJSON), or a folder of <slide>.h5 files from `pathpt predict`")
    p.add_argument("--slide", type=Path, metavar="SLIDE|DIR",
                   help="the slide file, or a folder searched for <slide_id>.* (png: blend over the slide; "
                        "without it png writes the raw heatmap with a legend)")
    p.add_argument("--format", choices=FORMATS, nargs="+", required=True,
                   help="one or more of png, figure, tiff, geojson, h5 (a folder --out holds them all); csv alone")
    p.add_argument("--out", type=Path, required=True,
                   help="output file (one slide, or csv) or folder (several slides: <slide_id>.<ext>)")
    p.add_argument("--downsample", type=float, default=32.0,
                   help="png, tiff: level-0 pixels per output pixel (32; the TIFF floors it to an integer)")
    p.add_argument("--mpp", type=float, metavar="UM_PER_PX",
                   help="png, tiff: output resolution in µm/px instead of --downsample (needs the slide's pixel size)")
    p.add_argument("--tiff-variant", choices=("gray", "rgba"), default="gray",
                   help="tiff: one uint8 channel (class index + 1, or P(--class) * 255; 0 = no tile) or RGBA colours")
    p.add_argument("--class", dest="klass", default=ARGMAX, metavar="NAME|argmax",
                   help="layer (png, tiff): colour one class's probability, or the argmax class map (default argmax)")
    p.add_argument("--cmap", default="viridis", help="png: matplotlib colormap for --class NAME (viridis)")
    p.add_argument("--alpha", type=float, default=0.5, help="png: overlay opacity 0..1 (0.5)")
    p.add_argument("--classes", metavar="NAME|JSON",
                   help="class set (shipped name or JSON file) whose colours to use, as the GUI and `pathpt demo` "
                        "do; --color overrides a class")
    p.add_argument("--color", action="append", default=[], metavar="NAME=#rrggbb",
                   help="class colour (repeatable); others come from --classes, else the default palette")
    p.add_argument("--region", metavar="X,Y,W,H", help="png: level-0 region instead of the whole slide")
    p.add_argument("--heatmap", action="store_true", help="png: write the raw heatmap figure even with --slide")
    p.add_argument("--predictions", type=Path, metavar="CSV",
                   help="slide predictions CSV (default: predictions.csv next to the scores, if present)")
    p.add_argument("--no-tiles", action="store_true", help="geojson: only the whole-tissue annotation")
    p.add_argument("--simplify", type=float, default=0.75, metavar="TILES",
                   help="geojson --regions: outline simplification tolerance in tiles (0.75; 0 = exact tile outline)")
    p.add_argument("--figure-format", nargs="+", choices=("png", "svg", "pdf"), default=["png"],
                   help="figure: file formats (png)")
    p.add_argument("--dpi", type=int, default=150, help="figure, png heatmap: resolution (150)")
    p.add_argument("--legend", action="store_true",
                   help="png over a slide: add a strip with the legend and the caption under the image")
    p.add_argument("--run", dest="run_name", default="", help="caption: the run's name")
    p.add_argument("--method", default="", help="caption: the method (e.g. PathPT, zero-shot)")
    p.add_argument("--backbone", default="", help="caption: the vision-language model")
    p.add_argument("--research-only", action="store_true",
                   help="caption: add 'research use, not for diagnosis' (automatic for synthetic/demo models)")
    p.add_argument("--regions", action="store_true",
                   help="geojson: merge the tiles of each class into QuPath annotation polygons (with holes, "
                        "areas in µm² when the slide is given) instead of tile objects")
    p.set_defaults(func=_export)


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


def find_slide(slide: Path, slide_id: str) -> Path:
    """`slide` itself when it is that slide's file (its name is the slide id), or the file `<slide_id>.<slide ext>`
    found (recursively) in the folder `slide`. A slide file is never used for another slide's scores."""
    if slide.is_file():
        if slide.stem != slide_id:
            raise ExportError(f"{slide}: this slide file is not slide {slide_id!r} (the scores hold several slides or "
                              "another one; give the folder of slides with --slide)")
        return slide
    if not slide.is_dir():
        raise ExportError(f"{slide}: slide file or folder not found")
    safe_child(slide, slide_id)  # an id from the data must not search outside the slide folder
    hits = sorted(p for p in slide.rglob(f"{slide_id}.*") if p.suffix.lower() in _SLIDE_EXTS)
    if not hits:
        raise ExportError(f"{slide}: no slide file named {slide_id}.* (looked for {', '.join(_SLIDE_EXTS)})")
    return hits[0]


def _classset_colors(name: str | None) -> dict[str, str]:
    """Class name -> colour from a class set (the colours the GUI shows), {} without one."""
    if name is None:
        return {}
    from ..prompts.classsets import load_classset

    return {c.name: c.color for c in load_classset(name).classes}


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


def _kinds(args: argparse.Namespace) -> tuple[str, ...]:
    kinds: list[str] = []
    for fmt in args.format:
        if fmt == "figure":
            kinds += [f"figure_{f}" for f in args.figure_format]
        else:
            kinds.append(_kind(args, fmt))
    return tuple(dict.fromkeys(kinds))


def _kind(args: argparse.Namespace, fmt: str) -> str:
    if fmt == "png":
        return "heatmap_png" if args.slide is None or args.heatmap else "overlay_png"
    if fmt == "geojson" and args.regions:
        return "regions_geojson"
    return {"geojson": "geojson", "h5": "scores_h5", "tiff": "overlay_tiff"}[fmt]


def build_request(args: argparse.Namespace) -> tuple[tuple[Path, ...], ExportOptions, dict[str, SlidePrediction]]:
    """Validate the parsed arguments: (score files, `ExportOptions`, predictions from the CSV); ConfigError on
    bad values."""
    inputs = score_inputs(args.scores)
    formats = list(dict.fromkeys(args.format))
    if "csv" in formats and len(formats) > 1:
        raise ConfigError("pathpt export: --format csv writes one file; export it on its own")
    if formats == ["csv"] and args.out.suffix.lower() != ".csv":
        raise ConfigError(f"{args.out}: --format csv writes one file; give a .csv path")
    if "tiff" in formats and args.slide is None:
        raise ConfigError("pathpt export: --format tiff needs --slide (the overlay is aligned with the slide)")
    try:
        style = OverlayStyle(args.klass, args.cmap, args.alpha, {**_classset_colors(args.classes),
                                                                 **_parse_colors(args.color)})
        if formats == ["csv"]:
            return inputs, ExportOptions(args.out, (), style, args.downsample, csv=args.out), _predictions(args, inputs)
        kinds = _kinds(args)
        opts = ExportOptions(args.out, kinds, style, args.downsample, _parse_region(args.region), not args.no_tiles,
                             {k: _SUFFIX[k] for k in kinds},
                             one_file=len(inputs) == 1 and len(kinds) == 1 and args.out.suffix != "",
                             mpp=args.mpp, tiff_variant=args.tiff_variant,
                             caption=Caption(args.run_name, args.method, args.backbone, args.research_only),
                             dpi=args.dpi, legend_strip=args.legend, simplify=args.simplify)
        return inputs, opts, _predictions(args, inputs)
    except ValueError as exc:
        raise ConfigError(f"pathpt export: {exc}") from exc


def _export(args: argparse.Namespace) -> int:
    inputs, opts, predictions = build_request(args)
    slides = args.slide

    def slide_for(slide_id: str) -> Path | None:
        return None if slides is None else find_slide(slides, slide_id)

    written = run_with_bar(export_run(inputs, opts, slide_for, predictions), quiet=args.quiet)
    for path in _summarise([p for paths in written.values() for p in paths]):
        print(path)
    return 0


def _summarise(paths: list[Path]) -> Iterator[str]:
    if len(paths) <= 20:
        yield from (str(p) for p in paths)
    else:
        yield f"{len(paths)} files written to {paths[0].parent}"
