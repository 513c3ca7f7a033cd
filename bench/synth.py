"""Synthetic-slide throughput: megapixels per second per core, end to end (layout, rendering, masks, JPEG pyramid).

    .venv/bin/python bench/synth.py [--slides 4] [--jobs 2] [--baseline-size 4096x3072]

Ours: `make_cohort` with the world renderer at the realistic scale (0.5 um/px), one slide at a time, timed by the
process's CPU time (per core) and wall clock; then the same cohort with `--jobs` workers (wall clock). The texture
bank is timed separately, cold (rendered, no disk cache) and warm (loaded). Baseline, in the same run: the older
per-pixel renderer (`renderer="procedural"`) on one slide of `--baseline-size` at 0.25 um/px (the size quoted in
issue 12: 16384x12288 took 36 s, 5.6 Mpx/s). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _cohort(out: Path, spec, jobs: int) -> tuple[float, float, float]:
    from pathpt_engine.jobs import run_job
    from pathpt_engine.synth.cohort import make_cohort

    c0, t0 = time.process_time(), time.perf_counter()
    slides = run_job(make_cohort(out, spec, jobs=jobs))
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    mpx = sum(json.loads(s.sidecar.read_text())["width"] * json.loads(s.sidecar.read_text())["height"]
              for s in slides) / 1e6
    return mpx, cpu, wall


def _bank(mpp: float) -> dict[str, float]:
    from pathpt_engine.synth import bank

    with tempfile.TemporaryDirectory() as cache:
        os.environ["PATHPT_SYNTH_CACHE"] = cache
        bank.material_textures.cache_clear()
        t0 = time.process_time()
        for m in range(len(bank.MATERIAL_NAMES)):
            bank.material_textures(m, mpp)
        cold = time.process_time() - t0
        bank.material_textures.cache_clear()
        t0 = time.process_time()
        for m in range(len(bank.MATERIAL_NAMES)):
            bank.material_textures(m, mpp)
        warm = time.process_time() - t0
    os.environ.pop("PATHPT_SYNTH_CACHE")
    bank.material_textures.cache_clear()
    return {"bank_all_materials_cold_cpu_s": round(cold, 2), "bank_all_materials_warm_cpu_s": round(warm, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slides", type=int, default=4, help="slides per class (3 subtypes, no normal slides)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--baseline-size", default="4096x3072")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from pathpt_engine.synth.cohort import CohortSpec

    out: dict = {"load_avg_start": os.getloadavg()[0]}
    out.update(_bank(0.5))
    spec = CohortSpec(n_subtypes=3, slides_per_class=a.slides, normal_slides=0, seed=a.seed, mpp=0.5,
                      scale="realistic")
    with tempfile.TemporaryDirectory() as tmp:
        _cohort(Path(tmp) / "warm", CohortSpec(n_subtypes=3, slides_per_class=1, normal_slides=0, width=2048,
                                               height=2048, mpp=0.5), 1)  # bank into the cache
        mpx, cpu, wall = _cohort(Path(tmp) / "one", spec, 1)
        out["ours"] = {"slides": 3 * a.slides, "megapixels": round(mpx, 1), "cpu_s": round(cpu, 2),
                       "wall_s": round(wall, 2), "mpx_per_s_per_core": round(mpx / cpu, 1),
                       "mpx_per_s_wall": round(mpx / wall, 1)}
        _, _, wall_j = _cohort(Path(tmp) / "jobs", spec, a.jobs)
        out["ours_jobs"] = {"jobs": a.jobs, "wall_s": round(wall_j, 2), "mpx_per_s_wall": round(mpx / wall_j, 1)}
        bw, bh = (int(v) for v in a.baseline_size.lower().split("x"))
        base = CohortSpec(n_subtypes=1, slides_per_class=1, normal_slides=0, width=bw, height=bh, mpp=0.25,
                          renderer="procedural")
        bmpx, bcpu, bwall = _cohort(Path(tmp) / "base", base, 1)
        out["baseline_procedural"] = {"size": [bw, bh], "megapixels": round(bmpx, 1), "cpu_s": round(bcpu, 2),
                                      "mpx_per_s_per_core": round(bmpx / bcpu, 1)}
    out["speedup_per_core"] = round(out["ours"]["mpx_per_s_per_core"]
                                    / out["baseline_procedural"]["mpx_per_s_per_core"], 1)
    out["target_mpx_per_s_per_core"] = 40.0
    out["load_avg_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
