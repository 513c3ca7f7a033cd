"""Viewer benchmark: cold fill, warm pan frames, reader throughput vs DeepZoom, event-loop latency, memory.

Runs offscreen on a 40k x 30k synthetic slide (generated once into --cache-dir) with a 1600x1000 viewport and
prints one JSON object. Not a test: figures only, no asserts.

    .venv/bin/python bench/viewer.py [--cache-dir /tmp/pathpt-bench] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import tifffile  # noqa: E402

VIEW = (1600, 1000)
SLIDE = (40000, 30000)
TILE = 256


def _tile_bank(n: int = 48) -> list[np.ndarray]:
    """Textured H&E-like tiles (plus some near-white background) to tile the big slide with."""
    from pathpt_engine.synth.patch import render_patch

    bank = [render_patch(i % 4, TILE, rng=i, stain="default", mpp=0.25) for i in range(n - 8)]
    rng = np.random.default_rng(1)
    bank += [np.clip(240 + rng.normal(0, 3, (TILE, TILE, 3)), 0, 255).astype(np.uint8) for _ in range(8)]
    return bank


def _level_tiles(bank: list[np.ndarray], w: int, h: int, level: int):
    for r in range(-(-h // TILE)):
        for c in range(-(-w // TILE)):
            yield bank[(r * 7919 + c * 104729 + level * 31) % len(bank)]


def make_big_slide(path: Path) -> Path:
    """A generic pyramidal TIFF (JPEG tiles, like pathpt_engine.synth.writer) streamed tile by tile."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    bank = _tile_bank()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    w, h, level, mpp = SLIDE[0], SLIDE[1], 0, 0.25
    with tifffile.TiffWriter(tmp, bigtiff=True) as tw:
        while True:
            ds = SLIDE[0] / w
            tw.write(_level_tiles(bank, w, h, level), shape=(h, w, 3), dtype=np.uint8, photometric="rgb",
                     tile=(TILE, TILE), compression="jpeg", compressionargs={"level": 85},
                     subfiletype=1 if level else 0, resolution=(1e4 / mpp / ds, 1e4 / mpp / ds),
                     resolutionunit="CENTIMETER", metadata=None)
            if max(w, h) <= 512:
                break
            w, h, level = w // 2, h // 2, level + 1
    os.replace(tmp, path)
    return path


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _pump(app, until, timeout: float = 30.0) -> float:
    t0 = time.perf_counter()
    while not until():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("viewer did not settle")
        app.processEvents()
        time.sleep(0.0005)
    return time.perf_counter() - t0


def new_view(path: Path, cache_mb: int = 512, threads: int = 4):
    from pathpt_engine.slides import open_slide
    from pathpt_gui.viewer.view import SlideView

    view = SlideView(open_slide(path), cache_bytes=cache_mb * 2**20, threads=threads)
    view.resize(*VIEW)
    view.show()
    return view


def cold_fill(app, path: Path, rng: np.random.Generator, reps: int) -> dict:
    """Time from a jump to an unseen place until every visible target-level tile is cached and painted."""
    out = {}
    for level, scale in ((0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)):
        view = new_view(path)
        _pump(app, view.is_settled)
        times = []
        for _ in range(reps):
            x, y = rng.uniform(2000, SLIDE[0] - 2000), rng.uniform(2000, SLIDE[1] - 2000)
            t0 = time.perf_counter()
            view.model.set_view(x, y, scale)
            _pump(app, view.is_settled)
            view.repaint()
            times.append((time.perf_counter() - t0) * 1000)
            assert view.target_level() == level
        out[f"level{level}"] = {"median_ms": round(statistics.median(times), 1), "min_ms": round(min(times), 1),
                                "max_ms": round(max(times), 1),
                                "tiles_in_view": len(view.layout.visible_tiles(view.model.state))}
        view.shutdown()
    return out


def warm_pan(app, path: Path, scale: float) -> dict:
    """Frame times (model change + synchronous repaint) while panning over already cached tiles."""
    view = new_view(path)
    view.model.set_view(20000, 15000, scale)
    half = VIEW[0] / 2 / scale
    for dx in range(-3, 4):  # warm a strip several views wide
        view.model.set_center(20000 + dx * half, 15000)
        _pump(app, view.is_settled)
    view.model.set_center(20000 - 2 * half, 15000)
    _pump(app, view.is_settled)
    frames, reads0 = [], view.loader.stats.reads
    for _ in range(200):
        t0 = time.perf_counter()
        view.model.pan_screen(-16, 0)
        view.repaint()
        frames.append((time.perf_counter() - t0) * 1000)
        app.processEvents()
    view.shutdown()
    return {"scale": scale, "level": view.target_level(), "frames": len(frames), "min_ms": round(min(frames), 2), "p50_ms": round(pct(frames, 50), 2), "p95_ms": round(pct(frames, 95), 2),
            "max_ms": round(max(frames), 2), "reads_during_pan": view.loader.stats.reads - reads0}


def throughput(app, path: Path, n_side: int, threads: int) -> dict:
    """Viewer reader path (threads + native tiles + QImage) vs a plain single-threaded DeepZoom loop."""
    import openslide
    from openslide.deepzoom import DeepZoomGenerator

    from pathpt_engine.slides import open_slide
    from pathpt_gui.viewer.loader import TileLoader
    from pathpt_gui.viewer.tiles import TileKey, TileLayout

    keys = [TileKey(0, 40 + c, 30 + r) for r in range(n_side) for c in range(n_side)]
    osr = openslide.OpenSlide(str(path))
    dz = DeepZoomGenerator(osr, tile_size=TILE, overlap=0, limit_bounds=False)
    t0 = time.perf_counter()
    for k in keys:
        dz.get_tile(dz.level_count - 1, (k.col, k.row))
    plain = len(keys) / (time.perf_counter() - t0)
    osr.close()
    reader = open_slide(path)
    loader = TileLoader(reader, TileLayout.from_reader(reader), threads=threads)
    got = []
    loader.loaded.connect(got.append)
    t0 = time.perf_counter()
    loader.request(tuple(keys))
    _pump(app, lambda: len(got) == len(keys), timeout=120)
    viewer = len(keys) / (time.perf_counter() - t0)
    loader.close()
    reader.close()
    return {"tiles": len(keys), "threads": threads, "viewer_tiles_per_s": round(viewer, 1),
            "deepzoom_tiles_per_s": round(plain, 1), "speedup": round(viewer / plain, 2),
            "errors": sum(r.image is None for r in got)}


def loop_latency(app, path: Path, rng: np.random.Generator, seconds: float) -> dict:
    """Lateness of a 5 ms QTimer while the view jumps to new places every 150 ms (tiles streaming in)."""
    from PySide6.QtCore import QTimer

    view = new_view(path)
    _pump(app, view.is_settled)
    lat, last = [], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        lat.append(max(0.0, (now - last[0]) * 1000 - 5.0))
        last[0] = now

    def jump() -> None:
        view.model.set_view(rng.uniform(2000, 38000), rng.uniform(2000, 28000), rng.choice([1.0, 0.5, 0.25]))

    probe, mover = QTimer(interval=5), QTimer(interval=150)
    probe.timeout.connect(tick)
    mover.timeout.connect(jump)
    probe.start()
    mover.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        app.processEvents()
        time.sleep(0.0005)
    probe.stop()
    mover.stop()
    reads = view.loader.stats.reads
    view.shutdown()
    return {"samples": len(lat), "p50_ms": round(pct(lat, 50), 2), "p95_ms": round(pct(lat, 95), 2),
            "max_ms": round(max(lat), 1), "tiles_read": reads}


def memory(app, path: Path, cache_mb: int, stride: int) -> dict:
    """RSS after panning the whole slide at full resolution (every `stride`-th view position).

    `rss_before_mb` is the process with Qt, numpy and the engine loaded, before the slide opens; the target is
    rss_after <= rss_before + cache budget + 300 MB.
    """
    import pathpt_engine.slides  # noqa: F401  (count the libraries in the baseline, not in the growth)
    import pathpt_gui.viewer.view  # noqa: F401

    base = rss_mb()
    view = new_view(path, cache_mb=cache_mb)
    t0 = time.perf_counter()
    positions = 0
    for i, y in enumerate(range(VIEW[1] // 2, SLIDE[1], VIEW[1])):
        if i % stride:
            continue
        xs = range(VIEW[0] // 2, SLIDE[0], VIEW[0])
        for x in (xs if i % 2 == 0 else reversed(xs)):
            view.model.set_view(x, y, 1.0)
            _pump(app, view.is_settled)
            positions += 1
    rss = rss_mb()
    out = {"positions": positions, "tiles_read": view.loader.stats.reads, "seconds": round(time.perf_counter() - t0, 1),
           "rss_before_mb": round(base), "rss_after_mb": round(rss), "cache_budget_mb": cache_mb,
           "cache_bytes_mb": round(view.cache.nbytes / 2**20), "growth_over_budget_mb": round(rss - base - cache_mb),
           "scaled_tile_cache_mb": round(view._scaled_tiles.nbytes / 2**20)}
    view.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache-dir", default="/tmp/pathpt-bench")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, every 4th row in the memory pass")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from pathpt_gui._none_guard import protect_none

    protect_none()

    app = QApplication.instance() or QApplication(sys.argv[:1])
    path = Path(args.cache_dir) / "viewer_40000x30000.tif"
    if args.memory_only:  # a fresh process, so RSS is not inflated by the earlier stages
        print(json.dumps(memory(app, path, cache_mb=512, stride=4 if args.quick else 1)))
        return
    t0 = time.perf_counter()
    path = make_big_slide(path)
    made = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    result = {"slide": str(path), "slide_size": SLIDE, "viewport": VIEW, "cpu_count": os.cpu_count(),
              "slide_prepare_s": round(made, 1), "loadavg_before": [round(v, 2) for v in os.getloadavg()]}
    result["cold_fill"] = cold_fill(app, path, rng, reps=3 if args.quick else 6)
    result["warm_pan"] = [warm_pan(app, path, s) for s in (1.0, 0.7, 1.6)]
    result["throughput"] = throughput(app, path, n_side=12 if args.quick else 20, threads=args.threads)
    result["event_loop_latency"] = loop_latency(app, path, rng, seconds=3.0 if args.quick else 6.0)
    cmd = [sys.executable, __file__, "--memory-only", "--cache-dir", args.cache_dir] + ["--quick"] * args.quick
    result["memory"] = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    result["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
