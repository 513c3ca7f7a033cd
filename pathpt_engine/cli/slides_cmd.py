"""CLI commands `pathpt info` (slide metadata) and `pathpt tile` (tissue + tile grid -> coords h5 files).

`pathpt tile` goes on past a slide it cannot read, lists it in `tiling.json` ("failed") and on stderr, and exits
with status 1 once the others are done; a re-run reuses the slides already tiled, so only the failed ones are
tried again.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..progress import run_with_bar
from ..slides import GridParams, TissueParams, open_slide
from ..slides.reader import MPP_PLAUSIBLE


def register(sub: argparse._SubParsersAction) -> None:
    """Add `info` and `tile` to `sub`."""
    info = sub.add_parser("info", help="show a slide's format, size, levels, resolution and associated images")
    info.add_argument("slide", type=Path)
    info.add_argument("--json", action="store_true", help="print JSON instead of text")
    info.set_defaults(func=_info)

    tile = sub.add_parser("tile", help="find tissue and write a tile grid (<slide>.h5 coords files) per slide")
    tile.add_argument("slides", nargs="+", type=Path, metavar="SLIDE")
    tile.add_argument("--out", type=Path, required=True, help="output folder for <slide>.h5 and tiling.json")
    tile.add_argument("--mpp", type=float, default=0.5, help="target µm/px of the tiles (default 0.5)")
    tile.add_argument("--tile-size", type=int, default=224, help="tile edge in pixels at --mpp (default 224)")
    tile.add_argument("--min-tissue", type=float, default=0.5,
                      help="keep tiles with at least this tissue fraction (default 0.5)")
    tile.add_argument("--assume-mpp", type=float, default=None,
                      help="level-0 µm/px for slides whose pixel size is missing or implausible (outside "
                           "0.05-20 µm/px, e.g. a 72-dpi default); e.g. 0.5 for 20x, 0.25 for 40x; without it "
                           "such slides fail")
    tile.add_argument("--thumb-size", type=int, default=TissueParams.thumb_size,
                      help=f"thumbnail size for the tissue mask (default {TissueParams.thumb_size})")
    tile.add_argument("--no-reuse", action="store_true", help="recompute even if a matching coords file exists")
    tile.add_argument("--skip-errors", action="store_true",
                      help="(the default now) slides that cannot be read are listed in the summary and on "
                           "stderr after the others are done; exit status 1")
    tile.set_defaults(func=_tile)


def slide_info(path: Path) -> dict[str, Any]:
    """JSON-friendly metadata of one slide."""
    with open_slide(path) as r:
        return {
            "path": str(path),
            "format": r.format,
            "dimensions": list(r.dimensions),
            "levels": [{"dimensions": list(d), "downsample": ds, "native_tile": r.native_tile_size(i)}
                       for i, (d, ds) in enumerate(zip(r.level_dimensions, r.level_downsamples, strict=True))],
            "mpp": None if r.mpp is None else list(r.mpp),
            "mpp_reported": None if (rep := getattr(r, "reported_mpp", None)) is None else list(rep),
            "objective_power": r.objective_power,
            "associated_images": list(r.associated_image_names),
            "quickhash": r.quickhash,
            "fast_path": r.has_fast_path,
        }


def _info(args: argparse.Namespace) -> int:
    info = slide_info(args.slide)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    mpp = "unknown" if info["mpp"] is None else "{:.4f} x {:.4f} µm/px".format(*info["mpp"])
    if info["mpp"] is None and info["mpp_reported"] is not None:
        mpp += " (the file states {:.4g} µm/px, outside the plausible {:g}-{:g}; pass --assume-mpp)".format(
            info["mpp_reported"][0], *MPP_PLAUSIBLE)
    w, h = info["dimensions"]
    print(f"{info['path']}\n  format:     {info['format']}\n  dimensions: {w} x {h}\n  mpp:        {mpp}")
    print(f"  objective:  {info['objective_power'] or 'unknown'}")
    print(f"  associated: {', '.join(info['associated_images']) or 'none'}")
    print(f"  levels:     {len(info['levels'])} (fast tile path: {'yes' if info['fast_path'] else 'no'})")
    for i, lv in enumerate(info["levels"]):
        tile = "" if lv["native_tile"] is None else f"  tiles {lv['native_tile'][0]}x{lv['native_tile'][1]}"
        print(f"    {i}: {lv['dimensions'][0]} x {lv['dimensions'][1]}  downsample {lv['downsample']:.3f}{tile}")
    return 0


def _params(args: argparse.Namespace) -> tuple[GridParams, TissueParams]:
    try:
        return (GridParams(target_mpp=args.mpp, tile_size=args.tile_size, min_tissue=args.min_tissue,
                           assume_mpp=args.assume_mpp), TissueParams(thumb_size=args.thumb_size))
    except ValueError as exc:
        raise ConfigError(f"pathpt tile: {exc}") from exc


def _tile(args: argparse.Namespace) -> int:
    from ..features.tiling import tile_slides

    grid_params, tissue_params = _params(args)
    job = tile_slides(args.slides, args.out, grid_params, tissue_params, reuse=not args.no_reuse,
                      skip_errors=True)
    summary = run_with_bar(job, quiet=args.quiet)
    out = Path(args.out) / "tiling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, json.dumps(summary.to_dict(), indent=2))
    for s in summary.slides:
        note = " (cached)" if s.cached else ""
        print(f"{s.slide_name}: {s.n_tiles} tiles at level {s.level} ({s.read_size}px -> {grid_params.tile_size}px, "
              f"{s.slide_mpp:.4f} µm/px {s.mpp_source}), tissue {s.tissue_fraction:.1%}{note}"
              + (f"  -- {s.message}" if s.message else ""))
    print(f"{summary.total_tiles} tiles from {len(summary.slides)} slides; summary: {out}")
    if summary.failed:
        print(f"pathpt: {len(summary.failed)} of {len(args.slides)} slides failed (listed in {out}); "
              "re-run to retry only those", file=sys.stderr)
    for _path, error in summary.failed:
        print(f"pathpt: error: {error}", file=sys.stderr)
    return 1 if summary.failed else 0
