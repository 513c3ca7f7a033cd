"""Heatmap overlay benchmark at real slide size: 50,000 scored tiles on a 40k x 30k synthetic slide.

Measures, offscreen with a 1600x1000 view (slide tiles already cached, so the figures are the overlay's):
first paint of the class map and of a class's probability heatmap, warm panning frames with the overlay on,
hover lookup (the tile under the cursor, as the Predictions panel does it), re-colouring after switching the
class or the colormap, and the memory the overlay takes. Prints one JSON object; figures only, no asserts.

    .venv/bin/python bench/overlay.py [--cache-dir /tmp/pathpt-bench] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from viewer import SLIDE, VIEW, _pump, make_big_slide, new_view, pct, rss_mb  # noqa: E402

N_TILES = 50_000
TILE_L0 = 128  # level-0 tile edge: 312 x 234 cells on the 40k x 30k slide, 50,000 of them scored
CLASSES = ("Normal", "solid_carcinoma", "papillary", "mucinous", "sarcomatoid")
TARGETS = {"first_paint_ms": 100, "pan_p95_ms": 16, "hover_ms": 1, "recolor_ms": 100, "memory_mb": 200}


def synthetic_scores(n: int = N_TILES, seed: int = 0):
    """`TileScores` for n tiles of a tissue-like blob (the cells nearest the slide centre), Dirichlet probs."""
    from pathpt_engine.results import TileScores

    cols, rows = SLIDE[0] // TILE_L0, SLIDE[1] // TILE_L0
    r, c = np.mgrid[0:rows, 0:cols]
    d = ((c - cols / 2) / cols) ** 2 + ((r - rows / 2) / rows) ** 2
    keep = np.argsort(d.ravel(), kind="stable")[:n]
    coords = np.stack([c.ravel()[keep], r.ravel()[keep]], axis=1).astype(np.int64) * TILE_L0
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(len(CLASSES), 0.6), size=n).astype(np.float32)
    return TileScores("bench_slide", coords, probs, TILE_L0, CLASSES)


def _timed(fn, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def _summary(ms: list[float], target: float) -> dict:
    return {"median_ms": round(statistics.median(ms), 2), "p95_ms": round(pct(ms, 95), 2),
            "max_ms": round(max(ms), 2), "target_ms": target, "meets": pct(ms, 95) <= target}


def first_paint(view, scores, reps: int) -> dict:
    """Data handed to the overlay -> the view repainted with it (grid build + colouring + QImage + draw)."""
    def classmap() -> None:
        view.overlay.clear()
        view.overlay.set_tile_scores(scores)
        view.repaint()

    def probability() -> None:
        view.overlay.clear()
        view.overlay.set_tile_scores(scores, channel=1)
        view.repaint()

    t = TARGETS["first_paint_ms"]
    return {"class_map": _summary(_timed(classmap, reps), t), "probability": _summary(_timed(probability, reps), t)}


def recolor(view, scores, reps: int) -> dict:
    """Switching the shown class (probability of another class) or the colormap, until repainted."""
    k = [0]

    def switch_class() -> None:
        k[0] = k[0] % (len(CLASSES) - 1) + 1
        view.overlay.set_tile_scores(scores, channel=k[0])
        view.repaint()

    cmaps = ["magma", "viridis", "coolwarm", "jet"]

    def switch_cmap() -> None:
        cmaps.append(cmaps.pop(0))
        view.overlay.colormap = cmaps[0]
        view.repaint()

    t = TARGETS["recolor_ms"]
    view.overlay.set_tile_scores(scores, channel=1)
    view.repaint()
    return {"class": _summary(_timed(switch_class, reps), t), "colormap": _summary(_timed(switch_cmap, reps), t)}


def pan(app, view, frames: int) -> dict:
    """Frame times (pan + synchronous repaint) over cached slide tiles with the class-map overlay shown."""
    cx, cy = SLIDE[0] / 2, SLIDE[1] / 2
    view.model.set_view(cx, cy, 0.25)
    half = VIEW[0] / 2 / 0.25
    for dx in range(-3, 4):
        view.model.set_center(cx + dx * half, cy)
        _pump(app, view.is_settled)
    view.model.set_center(cx - 2 * half, cy)
    _pump(app, view.is_settled)
    ms = []
    for _ in range(frames):
        t0 = time.perf_counter()
        view.model.pan_screen(-16, 0)
        view.repaint()
        ms.append((time.perf_counter() - t0) * 1000)
        app.processEvents()
    out = _summary(ms, TARGETS["pan_p95_ms"])
    out.update(frames=frames, scale=0.25)
    return out


def hover(scores, n: int) -> dict:
    """The tile under the cursor (`pathpt_gui.panels.predictions.tile_at`) at n random points of the slide."""
    from pathpt_gui.panels.predictions import tile_at

    rng = np.random.default_rng(3)
    pts = rng.uniform((0, 0), SLIDE, size=(n, 2))
    tile_at(scores, 1.0, 1.0)  # the first call may build an index; count it apart
    ms, hits = [], 0
    for x, y in pts:
        t0 = time.perf_counter()
        i = tile_at(scores, float(x), float(y))
        ms.append((time.perf_counter() - t0) * 1000)
        hits += i is not None
    out = _summary(ms, TARGETS["hover_ms"])
    out.update(lookups=n, hits=hits)
    return out


def memory(view, scores) -> dict:
    """RSS growth from showing the overlay (grid + colours + QImage), and the arrays the overlay holds."""
    view.overlay.clear()
    view.repaint()
    before = rss_mb()
    view.overlay.set_tile_scores(scores)
    view.repaint()
    view.overlay.set_tile_scores(scores, channel=1)
    view.repaint()
    g = view.overlay.grid
    held = sum(a.nbytes for a in (g.index, g.values, g.probs, g.rgba) if a is not None)
    img = view._overlay_painter.image()
    held += img.sizeInBytes() if img is not None else 0
    growth = rss_mb() - before
    return {"rss_growth_mb": round(growth, 1), "overlay_arrays_mb": round(held / 2**20, 1),
            "grid_shape": list(g.shape), "target_mb": TARGETS["memory_mb"],
            "meets": max(growth, held / 2**20) <= TARGETS["memory_mb"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default="/tmp/pathpt-bench")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from pathpt_gui._none_guard import protect_none

    protect_none()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    path = make_big_slide(Path(args.cache_dir) / "viewer_40000x30000.tif")
    scores = synthetic_scores()
    reps = 5 if args.quick else 20
    result: dict = {"slide_size": SLIDE, "viewport": VIEW, "tiles": len(scores.coords), "classes": len(CLASSES),
                    "cpu_count": os.cpu_count(), "loadavg_before": [round(v, 2) for v in os.getloadavg()]}
    view = new_view(path)
    view.model.set_view(SLIDE[0] / 2, SLIDE[1] / 2, 0.25)
    _pump(app, view.is_settled)
    result["memory"] = memory(view, scores)
    result["first_paint"] = first_paint(view, scores, reps)
    result["recolor"] = recolor(view, scores, reps)
    view.overlay.set_tile_scores(scores)
    result["pan"] = pan(app, view, 60 if args.quick else 200)
    view.overlay.visible = False  # the same pan without the overlay: what the slide tiles alone cost
    result["pan_without_overlay"] = pan(app, view, 60 if args.quick else 200)
    view.overlay.visible = True
    result["hover"] = hover(scores, 200 if args.quick else 2000)
    view.shutdown()
    result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
