"""GUI responsiveness while a training job runs: event-loop latency measured with a QTimer probe.

Builds (once, into --cache-dir) a small synthetic cohort and a project with features, opens it in the full main
window with the workflow panels (offscreen), starts PathPT training in the job worker and, while it runs, fires
a 10 ms QTimer: the delay of each tick beyond its schedule is the event-loop latency a user would feel. Prints
one JSON object (p50/p95/max latency in ms, ticks, training steps seen). Not a test: figures only.

    .venv/bin/python bench/workflow_responsiveness.py [--cache-dir /tmp/pathpt-bench-wf] [--seconds 20]
        [--backbone keep --weights DIR]   # default: a tiny random KEEP model made in the cache dir
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def _prepare(cache: Path, backbone: str, weights: str | None) -> tuple[Path, Path, dict[str, str], str]:
    from pathpt_engine.jobs import collect
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_engine.synth.cohort import CohortSpec, make_cohort
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    cohort = cache / "cohort"
    if not (cohort / "cohort.json").exists():
        collect(make_cohort(cohort, CohortSpec(n_subtypes=2, slides_per_class=3, normal_slides=0, width=3072,
                                               height=3072)))
    if weights is None:
        words = [w for c in synth_classset(2).classes for s in c.synonyms for w in s.lower().split()]
        weights = str(make_tiny_keep_folder(cache / "keep", extra_words=words))
    with (cohort / "labels.csv").open() as fh:
        truth = {r["slide_id"]: r["label"] for r in csv.DictReader(fh)}
    return cohort / "slides", Path(weights), truth, backbone


def _wait_job(app: object, ctrl: object) -> None:
    while ctrl.busy:  # type: ignore[attr-defined]
        app.processEvents()  # type: ignore[attr-defined]
        time.sleep(0.005)
    app.processEvents()  # type: ignore[attr-defined]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cache-dir", default="/tmp/pathpt-bench-wf")
    p.add_argument("--seconds", type=float, default=20.0, help="probe duration while training")
    p.add_argument("--backbone", default="keep")
    p.add_argument("--weights", default=None)
    args = p.parse_args()
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    slides, weights, truth, backbone = _prepare(cache, args.backbone, args.weights)

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from pathpt_gui._none_guard import protect_none

    protect_none()
    app = QApplication([])
    from pathpt_engine.pathpt.model import PathPTConfig
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_gui.main_window import MainWindow
    from pathpt_gui.panels.workflow import install_workflow
    from pathpt_gui.project_jobs import BackboneChoice
    from pathpt_gui.settings import AppSettings
    from pathpt_gui.style import apply_style

    apply_style(app)
    win = MainWindow(AppSettings())
    win.resize(1600, 1000)
    win.show()
    wf = install_workflow(win, dialogs=False)
    ctrl = wf.ctrl
    proj_dir = cache / "project"
    shutil.rmtree(proj_dir, ignore_errors=True)
    ctrl.create_project(proj_dir)
    ctrl.set_classset(synth_classset(2))
    ctrl.set_backbone(BackboneChoice(backbone, str(weights), "cpu"), validate=False)
    ctrl.add_slides(sorted(slides.glob("*.tif*")))
    ctrl.extract_features()
    _wait_job(app, ctrl)
    for sid, lab in list(truth.items())[::2]:
        ctrl.set_label([sid], lab)
    wf.open_slide(sorted(truth)[0])

    lat: list[float] = []
    steps: list[int] = []
    ctrl.job_progress.connect(lambda e, f, eta: steps.append(e.done) if e.stage == "train" else None)
    clock, interval = QElapsedTimer(), 10
    last = [0.0]

    def tick() -> None:
        now = clock.nsecsElapsed() / 1e6
        lat.append(max(0.0, now - last[0] - interval))
        last[0] = now
    probe = QTimer(interval=interval)
    probe.setTimerType(probe.timerType().PreciseTimer)
    probe.timeout.connect(tick)
    ctrl.train(PathPTConfig(recipe="clean", epochs=100000, n_prompts_random=16, n_prompts_keep=8))
    clock.start()
    probe.start()
    QTimer.singleShot(int(args.seconds * 1000), app.quit)
    ctrl.job_failed.connect(lambda n, msg: (print(json.dumps({"error": msg})), app.quit()))
    app.exec()  # the real event loop, as the user has it
    probe.stop()
    ctrl.cancel_job()
    _wait_job(app, ctrl)
    win.close()
    arr = np.asarray(lat[1:] or [0.0])
    print(json.dumps({
        "bench": "workflow_responsiveness", "while": "PathPT training in the JobWorker (full main window)",
        "backbone": backbone, "probe_interval_ms": interval, "ticks": int(arr.size),
        "latency_p50_ms": round(float(np.percentile(arr, 50)), 2),
        "latency_p95_ms": round(float(np.percentile(arr, 95)), 2),
        "latency_max_ms": round(float(arr.max()), 2), "train_steps_seen": max(steps) if steps else 0,
        "seconds": args.seconds, "cpu_count": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2),
    }))


if __name__ == "__main__":
    main()
