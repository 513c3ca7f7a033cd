"""The ready demo project behind `pathpt-gui --demo`: synthetic slides, the demo model, a few labels set.

`build_demo_project` is a job (reuses what exists: a second start opens at once). `run_headless` is what
`pathpt-gui --demo --headless-out DIR` does without a display: build, extract, train, predict, render window
screenshots offscreen and write every export, printing where they are.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pathpt_engine.jobs import Job, Progress, run_job
from pathpt_engine.project import Project

from .project_jobs import BackboneChoice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoProjectConfig:
    """Where and what: `folder/cohort` holds the synthetic slides, `folder/project` the project.

    Attributes:
        folder: demo folder.
        n_subtypes: synthetic subtypes.
        slides_per_class: slides per subtype.
        size: level-0 slide size, or None (default) for the realistic scale (`pathpt synth --size realistic`:
            a median of ~450 tissue tiles per slide, a 2,000+ tile resection among every eight slides).
        mpp: level-0 microns per pixel of the synthetic slides (0.5: a 20x scan).
        train_per_class: slides per subtype labelled for training.
        heldout_per_class: slides per subtype labelled "held-out" (0 by default: the clean recipe selects its epoch
            on held-out slides, and with one per subtype that choice is noise; on the demo cohort it picked epoch 1
            of 20, whose model had not yet fitted its own training slides).
        backbone: model choice (demo model by default).
        seed: cohort seed.
        jobs: slides synthesised in parallel.
    """

    folder: Path
    n_subtypes: int = 3
    slides_per_class: int = 4
    size: tuple[int, int] | None = None
    mpp: float = 0.5
    train_per_class: int = 1
    heldout_per_class: int = 0
    backbone: BackboneChoice = BackboneChoice()
    seed: int = 0
    jobs: int = 2

    def __post_init__(self) -> None:
        if self.train_per_class < 1 or self.heldout_per_class < 0 or \
                self.train_per_class + self.heldout_per_class > self.slides_per_class:
            raise ValueError("need 1 <= train_per_class, 0 <= heldout_per_class and "
                             "train_per_class + heldout_per_class <= slides_per_class")


def default_demo_folder() -> Path:
    return Path.home() / ".cache" / "pathpt" / "demo-project"


def build_demo_project(cfg: DemoProjectConfig, cancel: threading.Event | None = None) -> Job[Path]:
    """Job: make (or reuse) the synthetic cohort and the labelled project; returns the project folder."""
    from pathpt_engine.demo import demo_cohort_spec
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_engine.synth.cohort import make_cohort

    folder = Path(cfg.folder).expanduser().resolve()
    cohort, root = folder / "cohort", folder / "project"
    if not (cohort / "cohort.json").exists():
        spec = demo_cohort_spec(cfg.n_subtypes, cfg.slides_per_class, cfg.size, cfg.mpp, cfg.seed)
        yield from make_cohort(cohort, spec, cancel=cancel, overwrite=True, jobs=cfg.jobs)
    if (root / "project.sqlite").exists():
        yield Progress("project", 1, 1, message="reusing the demo project")
        return root
    tmp = folder / ".project-building"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    with Project.create(tmp) as proj:
        proj.classes.set(synth_classset(cfg.n_subtypes))
        cfg.backbone.save(proj)
        slides = sorted(p for p in (cohort / "slides").iterdir() if p.suffix in (".tif", ".tiff", ".svs"))
        for i, p in enumerate(slides):
            proj.slides.add(p)
            yield Progress("project", i + 1, len(slides), message=p.name)
        _label(proj, cohort / "labels.csv", cfg.train_per_class, cfg.heldout_per_class)
    tmp.rename(root)  # the finished project appears at once (a crash leaves only the temp folder)
    return root


def _label(proj: Project, labels_csv: Path, train_per_class: int, heldout_per_class: int) -> None:
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        truth = {r["slide_id"]: r["label"] for r in csv.DictReader(fh)}
    by_class: dict[str, list[str]] = {}
    for sid in sorted(truth):
        by_class.setdefault(truth[sid], []).append(sid)
    train = {s: c for c, ids in by_class.items() for s in ids[:train_per_class]}
    held = {s: c for c, ids in by_class.items() for s in ids[train_per_class:train_per_class + heldout_per_class]}
    proj.labels.set_many(train, "train", "demo: few-shot examples")
    if held:
        proj.labels.set_many(held, "heldout", "demo: held-out examples")


def start_demo(ctrl: Any, cfg: DemoProjectConfig) -> None:
    """Interactive `--demo`: build (or reuse) the demo project in the worker, open it, and extract its features
    if they are missing, so Train is the next click."""
    def opened(root: Path) -> None:
        ctrl.open_project(root)
        if not ctrl.has_features():
            ctrl.extract_features()
    ctrl.run_job("Build demo project", lambda c: build_demo_project(cfg, c), opened)


def run_headless(cfg: DemoProjectConfig, out: Path, epochs: int = 20) -> dict[str, Any]:
    """Build the demo project, extract, train, predict, screenshot offscreen and export; returns what was written.

    Must run with a QApplication on the offscreen platform.
    """
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow
    from .panels.workflow import install_workflow
    from .screenshot import render
    from .settings import AppSettings

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    root = run_job(build_demo_project(cfg), _log_progress)
    win = MainWindow(AppSettings())
    win.resize(1600, 1000)
    win.show()
    wf = install_workflow(win, dialogs=False)
    written: dict[str, Any] = {"project": str(root)}
    try:
        ctrl = wf.ctrl
        ctrl.open_project(root)
        runs = {}
        for name, start in (("extract", ctrl.extract_features), ("zero-shot", ctrl.zero_shot),
                            ("train", lambda: ctrl.train(replace(wf.training.config(), epochs=epochs)))):
            _wait(ctrl, start, name)
            runs[name] = ctrl.current_run
        written["ground_truth"] = ground_truth_report(ctrl, Path(cfg.folder).expanduser().resolve() / "cohort",
                                                      {"zero-shot": runs["zero-shot"], "pathpt": runs["train"]})
        from pathpt_engine.atomic import write_text_atomic

        write_text_atomic(out / "demo_summary.json", json.dumps(written["ground_truth"], indent=1))
        first = _showcase_slide(ctrl, written["ground_truth"]["pathpt"])
        wf.slides.select(first)
        view = wf.open_slide(first)
        QApplication.processEvents()
        shots = []
        for dock in ("training", "predictions"):
            wf.docks[dock].raise_()
            QApplication.processEvents()
            shots.append(str(render(win, [view] if view else [], out / f"window_{dock}.png", 30)))
        written["screenshots"] = shots
        opts = wf.export_options(out / "exports")
        _wait(ctrl, lambda: ctrl.export(opts), "export")
        written["exports"] = str(out / "exports")
    finally:
        win.close()
    return written


def ground_truth_report(ctrl: Any, cohort: Path, runs: dict[str, str]) -> dict[str, Any]:
    """Each run's tile AUROC / Dice against the cohort's tumour masks and its slide calls (see
    `pathpt_engine.demo.score_against_masks`), keyed by the names in `runs`."""
    from pathpt_engine.demo import score_against_masks

    with (cohort / "labels.csv").open(newline="", encoding="utf-8") as fh:
        truth = {r["slide_id"]: r["label"] for r in csv.DictReader(fh)}
    train = [sid for sid, lab in ctrl.project.labels.all().items() if lab.split == "train"]
    out: dict[str, Any] = {}
    for name, rid in runs.items():
        preds = ctrl.predictions(rid)
        scores = {sid: ctrl.tile_scores(sid, rid) for sid in preds}
        out[name] = score_against_masks(cohort / "masks", {k: v for k, v in scores.items() if v is not None},
                                        {sid: p.predicted for sid, p in preds.items()}, truth, train)
        out[name]["run_id"] = rid
    return out


def _showcase_slide(ctrl: Any, report: dict[str, Any]) -> str:
    """The slide shown in the screenshots: the held-out or unlabelled slide with the most tiles."""
    slides = report.get("slides") or {}
    pool = [sid for sid, s in slides.items() if not s["train"]] or sorted(slides) or ctrl.project.slides.ids()
    return max(pool, key=lambda sid: slides.get(sid, {}).get("n_tiles", 0))


def format_report(report: dict[str, Any]) -> list[str]:
    """Lines for the console: each run's grounding and slide calls against the ground truth."""
    lines = []
    for name, r in report.items():
        auroc = "n/a" if r["tile_auroc"] is None else f"{r['tile_auroc']:.3f}"
        dice = "n/a" if r["tile_dice"] is None else f"{r['tile_dice']:.3f}"
        lines.append(f"{name}: tile AUROC tumour vs normal {auroc}, Dice {dice} ({r['n_tiles']} tiles, "
                     f"{r['n_tumour_tiles']} tumour); slides correct {r['slides_correct']}/{r['n_slides']}, "
                     f"training slides {r['train_slides_correct']}/{r['n_train_slides']}")
    return lines


def _log_progress(event: Progress) -> None:
    if event.total and (event.done == event.total or event.done % 5 == 0):
        log.info("%s %d/%d %s", event.stage, event.done, event.total, event.message)


def _wait(ctrl: Any, start: Any, name: str) -> None:
    """Start a controller job and spin the event loop until it ends; raises on failure."""
    from PySide6.QtCore import QEventLoop, QObject

    loop, outcome = QEventLoop(), {}

    def end(kind: str, detail: str = "") -> None:
        outcome[kind] = detail
        loop.quit()
    conns = [ctrl.job_finished.connect(lambda _n, _r: end("ok")),
             ctrl.job_failed.connect(lambda _n, msg: end("failed", msg)),
             ctrl.job_cancelled.connect(lambda _n: end("cancelled"))]
    if not start():
        raise RuntimeError(f"{name}: could not start")
    loop.exec()
    for c in conns:
        QObject.disconnect(c)
    if "ok" not in outcome:
        from pathpt_engine.errors import PathPTError

        raise PathPTError(f"{name}: {outcome.get('failed') or 'cancelled'}")
