"""CLI: `pathpt backbones` (the registry and where each model's weights are expected) and `pathpt extract`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..backbones.registry import available_backbones, resolve_weights
from ..cluster.cli import add_extract_args
from ..cluster.cli import run_extract as run_cluster_extract
from ..errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    """Add `backbones` and `extract` to `sub`."""
    p = sub.add_parser("backbones", help="list the vision-language backbones and where their weights are")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_backbones)

    w = sub.add_parser("weights", help="download a backbone's weights (only when asked): pathpt weights get NAME")
    wsub = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    g = wsub.add_parser("get", help="download NAME's weights from Hugging Face (progress bar; needs the network)")
    g.add_argument("name", help="keep, plip, conch, musk or quiltnet (gated: conch, musk need a log-in)")
    g.add_argument("--to", type=Path, default=None,
                   help="put the files in this folder (default: the Hugging Face cache, where they are found "
                        "by name)")
    g.set_defaults(func=_cmd_weights_get)

    e = sub.add_parser("extract", help="tile slides and write one feature h5 per slide")
    e.add_argument("slides", nargs="*", type=Path, help="slide files")
    e.add_argument("--backbone", default="demo", help="registry name (see `pathpt backbones`); default: demo")
    e.add_argument("--weights", type=Path, default=None,
                   help="weights folder, or hf:OWNER/NAME from the local Hugging Face cache (default: looked up "
                        "per backbone, see `pathpt backbones`)")
    e.add_argument("--out", type=Path, required=True, help="output folder")
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 on CUDA, fp32 on CPU")
    e.add_argument("--workers", type=int, default=2, help="tile reader threads")
    e.add_argument("--tile-size", type=int, default=None, help="tile edge in px (default: the backbone's)")
    e.add_argument("--mpp", type=float, default=None, help="tile microns per pixel (default: the backbone's)")
    e.add_argument("--min-tissue", type=float, default=0.5, help="minimum tissue fraction of a kept tile")
    e.add_argument("--assume-mpp", type=float, default=None,
                   help="level-0 um/px for slides that state none or an implausible one (outside 0.05-20, e.g. a "
                        "72-dpi default); without it such slides fail (recorded in the ledger) and the rest go on")
    e.add_argument("--force", action="store_true", help="redo slides that are already extracted")
    add_extract_args(e)  # --cluster local|auto, --status, --stage-dir (pathpt_engine.cluster)
    e.set_defaults(func=_cmd_extract)


def _cmd_backbones(args: argparse.Namespace) -> int:
    rows = []
    for spec in available_backbones():
        folder = resolve_weights(spec.name)
        rows.append({
            "name": spec.name, "adapter": spec.adapter, "demo": spec.demo, "description": spec.description,
            "weights": str(folder), "found": folder.is_dir(), "env": spec.env_var, "licence": spec.licence,
            "download": spec.download,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        tag = " [DEMO: synthetic slides only, never for diagnosis]" if r["demo"] else ""
        status = "found" if r["found"] else "NOT FOUND"
        print(f"{r['name']}{tag}\n  {r['description']}\n  weights: {r['weights']} ({status}; override with "
              f"--weights DIR or ${r['env']})\n  licence: {r['licence']}\n  get it: {r['download']}")
    return 0


def _cmd_weights_get(args: argparse.Namespace) -> int:
    from ..backbones.download import after_download_note, get_weights

    folder = get_weights(args.name, args.to)
    print(f"{args.name}: weights in {folder}")
    if note := after_download_note(args.name):
        print(f"{args.name}: {note}")
    return 0


def _cmd_extract(args: argparse.Namespace) -> int:
    from ..features.extract import ExtractOptions, extract_slides
    from ..progress import run_with_bar

    try:
        opts = ExtractOptions(
            backbone=args.backbone, weights=args.weights, device=args.device, batch_size=args.batch_size,
            precision=args.precision, workers=args.workers, tile_size=args.tile_size, target_mpp=args.mpp,
            min_tissue=args.min_tissue, assume_mpp=args.assume_mpp, force=args.force,
        )
    except ValueError as exc:
        raise ConfigError(f"pathpt extract: {exc}") from exc
    _refuse_same_ids(args.slides)
    if (code := run_cluster_extract(args, opts)) is not None:  # --status / --cluster; else single process
        return code
    summary = run_with_bar(extract_slides(args.slides, args.out, opts), quiet=args.quiet)
    print(f"device: {summary.device}")
    for s in summary.slides:
        state = "skipped (up to date)" if s.skipped else f"{s.n_tiles} tiles, {s.tiles_per_s:.1f} tiles/s"
        print(f"{s.slide_name}: {state} -> {s.output}")
    if summary.failed:
        from ..features.ledger import ledger_path

        print(f"pathpt: {len(summary.failed)} of {len(args.slides)} slides failed (recorded in "
              f"{ledger_path(args.out)}); re-run to retry only those", file=sys.stderr)
    for _path, error in summary.failed:
        print(f"pathpt: error: {error}", file=sys.stderr)
    return 1 if summary.failed else 0


def _refuse_same_ids(slides: list[Path]) -> None:
    """Two slides filed under one id (a/x.tiff, b/x.tiff) would overwrite each other's feature file."""
    from ..features.tiling import slide_name

    seen: dict[str, Path] = {}
    for path in slides:
        other = seen.setdefault(slide_name(path), path)
        if other != path:
            raise ConfigError(f"{path}: same slide id {slide_name(path)!r} as {other}; their feature files would "
                              "overwrite each other (rename one, or extract them into different --out folders)")
