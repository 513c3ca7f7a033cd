"""The ready demo project behind `pathpt-gui --demo`: synthetic slides, the demo model, a few labels set.

`build_demo_project` is a job (reuses what exists: a second start opens at once). `run_headless` is what
`pathpt-gui --demo --headless-out DIR` does without a display: build, extract, train, predict, render window
screenshots offscreen and write every export, printing where they are.
"""

from __future__ import annotations

import csv
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
        size: level-0 slide size (0.25 µm/px).
        train_per_class: slides per subtype labelled for training; one more per subtype is held out.
        backbone: model choice (demo model by default).
        seed: cohort seed.
    """

    folder: Path
    n_subtypes: int = 3
    slides_per_class: int = 4
    size: tuple[int, int] = (4096, 3072)
    train_per_class: int = 1
    backbone: BackboneChoice = BackboneChoice()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.train_per_class < 1 or self.train_per_class + 1 > self.slides_per_class:
            raise ValueError("need 1 <= train_per_class < slides_per_class")


def default_demo_folder() -> Path:
    return Path.home() / ".cache" / "pathpt" / "demo-project"


def build_demo_project(cfg: DemoProjectConfig, cancel: threading.Event | None = None) -> Job[Path]:
    """Job: make (or reuse) the synthetic cohort and the labelled project; returns the project folder."""
    from pathpt_engine.prompts.classsets import synth_classset
    from pathpt_engine.synth.cohort import CohortSpec, make_cohort

    folder = Path(cfg.folder).expanduser().resolve()
    cohort, root = folder / "cohort", folder / "project"
    if not (cohort / "cohort.json").exists():
        spec = CohortSpec(n_subtypes=cfg.n_subtypes, slides_per_class=cfg.slides_per_class, normal_slides=0,
                          width=cfg.size[0], height=cfg.size[1], seed=cfg.seed)
        yield from make_cohort(cohort, spec, cancel=cancel)
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
        _label(proj, cohort / "labels.csv", cfg.train_per_class)
    tmp.rename(root)  # the finished project appears at once (a crash leaves only the temp folder)
    return root


def _label(proj: Project, labels_csv: Path, train_per_class: int) -> None:
    with labels_csv.open(newline="", encoding="utf-8") as fh:
        truth = {r["slide_id"]: r["label"] for r in csv.DictReader(fh)}
    by_class: dict[str, list[str]] = {}
    for sid in sorted(truth):
        by_class.setdefault(truth[sid], []).append(sid)
    train = {s: c for c, ids in by_class.items() for s in ids[:train_per_class]}
    held = {s: c for c, ids in by_class.items() for s in ids[train_per_class:train_per_class + 1]}
    proj.labels.set_many(train, "train", "demo: few-shot examples")
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
        for name, start in (("extract", ctrl.extract_features), ("zero-shot", ctrl.zero_shot),
                            ("train", lambda: ctrl.train(replace(wf.training.config(), epochs=epochs)))):
            _wait(ctrl, start, name)
        first = sorted(ctrl.predictions())[0] if ctrl.predictions() else ctrl.project.slides.ids()[0]
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
