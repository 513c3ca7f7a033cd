"""`pathpt synth`: write a synthetic H&E-like cohort (slides, ground-truth masks, labels.csv, cohort.json)."""

from __future__ import annotations

import argparse
import re

from ..errors import ConfigError
from ..synth.subtypes import DEFAULT_SUBTYPES, MAX_SUBTYPES


def register(sub: argparse._SubParsersAction) -> None:
    """Add `synth` to the `pathpt` subcommands."""
    p = sub.add_parser(
        "synth",
        help="write a synthetic cohort of H&E-like slides with tumour masks (for tests and demos)",
        description="Write SYNTHETIC H&E-like slides: normal tissue and K tumour subtypes, with ground-truth "
        "tumour masks, labels.csv (slide_id,label) and cohort.json. Deterministic from --seed.",
    )
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--subtypes", type=int, default=DEFAULT_SUBTYPES, metavar="K",
                   help=f"number of tumour subtypes, 1..{MAX_SUBTYPES} (default {DEFAULT_SUBTYPES})")
    p.add_argument("--slides-per-class", type=int, default=4, metavar="N", help="slides per subtype (default 4)")
    p.add_argument("--normal-slides", type=int, default=None, metavar="M",
                   help="normal slides (default: same as --slides-per-class)")
    p.add_argument("--size", default="realistic", metavar="WxH",
                   help="level-0 size in pixels, or 'realistic' (default): sizes drawn per slide for a median of "
                   "~450 tissue tiles of 112 um and every eighth slide a 2,000+ tile resection")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--format", choices=("tiff", "svs"), default="tiff", help="slide format (default tiff)")
    p.add_argument("--mpp", type=float, default=0.5, help="level-0 microns per pixel (default 0.5, a 20x scan)")
    p.add_argument("--renderer", choices=("world", "procedural"), default="world",
                   help="world (default): fragments, fat, stroma and mixed tumour regions composed from a texture "
                   "bank, fast; procedural: the older per-pixel renderer (slow)")
    p.add_argument("--jobs", type=int, default=1, metavar="N", help="slides written in parallel (default 1)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already holds a cohort")
    p.set_defaults(func=_run)


def parse_size(text: str) -> tuple[int, int] | None:
    """Parse a cohort's --size: "WxH" (e.g. "4096x3072") into (width, height), or "realistic" into None."""
    if text.strip().lower() == "realistic":
        return None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise ConfigError(f"--size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 4096x3072, or 'realistic'")
    return int(m.group(1)), int(m.group(2))


def _run(args: argparse.Namespace) -> int:
    from ..progress import run_with_bar
    from ..synth.cohort import CohortSpec, make_cohort

    size = parse_size(args.size)
    w, h = size or (4096, 3072)
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: must be >= 1")
    try:
        spec = CohortSpec(n_subtypes=args.subtypes, slides_per_class=args.slides_per_class,
                          normal_slides=args.normal_slides, width=w, height=h, seed=args.seed, fmt=args.format,
                          mpp=args.mpp, renderer=args.renderer, scale="fixed" if size else "realistic")
    except ValueError as exc:
        raise ConfigError(f"pathpt synth: {exc}") from exc
    slides = run_with_bar(make_cohort(args.out, spec, overwrite=args.overwrite, jobs=args.jobs), quiet=args.quiet)
    total = sum(s.seconds for s in slides)
    print(f"wrote {len(slides)} synthetic slides to {args.out} ({total:.1f} s); labels: {args.out}/labels.csv")
    return 0
