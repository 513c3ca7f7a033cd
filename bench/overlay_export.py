"""Benchmark (issue 16 §3): writing a 50,000-tile slide's aligned TIFF overlay (target <= 10 s).

A synthetic slide of 250 x 200 tiles of 256 level-0 px (64,000 x 51,200 px, 0.25 µm/px) with random class
probabilities; `write_tiff_overlay` (the engine function behind `pathpt export --format tiff`) writes the gray
(probability of one class) and RGBA (class map colours) variants at each downsample. Only the slide's size and
pixel size are needed, so no slide file is written.

    python bench/overlay_export.py [--tiles 50000] [--downsample 8 16] [--out /tmp/overlay_export]

Prints JSON: {"n_tiles", "slide_size", "rows": [{variant, downsample, level0, levels, seconds, mb}], "load"}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiles", type=int, default=50_000)
    ap.add_argument("--downsample", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    from pathpt_engine.export import OverlayStyle
    from pathpt_engine.export.tiff_overlay import write_tiff_overlay
    from pathpt_engine.results import TileScores

    t = 256
    cols = 250
    rows = math.ceil(args.tiles / cols)
    yy, xx = np.divmod(np.arange(args.tiles), cols)
    coords = np.stack([xx * t, yy * t], axis=1).astype(np.int64)
    probs = np.random.default_rng(0).dirichlet((1.0, 1.0, 1.0), size=args.tiles).astype(np.float32)
    scores = TileScores("bench", coords, probs, t, ("Normal", "A", "B"))
    size = (cols * t, rows * t)
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="overlay_export_"))
    out_rows = []
    for d in args.downsample:
        for variant, style in (("gray", OverlayStyle("A")), ("rgba", OverlayStyle("argmax", alpha=0.6))):
            path = out_dir / f"bench_{variant}_{d}.tif"
            t0 = time.perf_counter()
            write_tiff_overlay(path, scores, size, 0.25, d, style, variant)
            sec = time.perf_counter() - t0
            import openslide

            with openslide.OpenSlide(path) as s:
                levels = s.level_count
                level0 = s.dimensions
            out_rows.append({"variant": variant, "downsample": d, "level0": list(level0), "levels": levels,
                             "seconds": round(sec, 3), "mb": round(path.stat().st_size / 2**20, 2)})
            path.unlink()
    print(json.dumps({"n_tiles": args.tiles, "slide_size": list(size), "rows": out_rows,
                      "load": [round(v, 2) for v in os.getloadavg()], "cpus": os.cpu_count()}, indent=1))


if __name__ == "__main__":
    main()
