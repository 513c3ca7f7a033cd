"""The Qt model over an engine `Project`: the one object the workflow panels observe and call.

Every change goes straight to the project database (committed at once by the engine); the controller only emits
signals so panels refresh. Long work (feature extraction, zero-shot, training, prediction, export, adding a
folder, relinking) runs through the single `JobWorker`; its errors reach the user via `job_failed` (the window
shows a dialog) and `message` (the log panel).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, QTimer, Signal

from pathpt_engine.errors import PathPTError
from pathpt_engine.jobs import Progress
from pathpt_engine.project import Project

from . import project_jobs as pj
from .label_text import describe_label_change
from .project_lock import LockedProjectMixin, ProjectSession
from .workers import JobWorker

log = logging.getLogger(__name__)
LOCK_CHECK_MS = 3000  # how often an open project checks that no other instance took it over
RECENT_KEY = "projects/recent"
MAX_RECENT = 8


class ProjectController(LockedProjectMixin, QObject):
    """Holds the open project, the current run and the job worker."""

    project_changed = Signal(object)  # Project | None
    slides_changed = Signal()
    labels_changed = Signal()
    classes_changed = Signal()
    runs_changed = Signal()
    current_run_changed = Signal(str)  # run id, "" for none
    prediction_added = Signal(str, str)  # run id, slide id (while a job predicts)
    backbone_changed = Signal(object)  # BackboneChoice
    job_started = Signal(str)
    job_progress = Signal(object, object, object)  # Progress, fraction, eta
    job_finished = Signal(str, object)
    job_failed = Signal(str, str)
    job_cancelled = Signal(str)
    message = Signal(str, str)  # level ("info", "warning", "error"), text
    lock_changed = Signal(str)  # "" while this window may write the project, else who holds it (banner)
    pixel_size_needed = Signal(list)  # slide ids just added whose files state no plausible µm/px (asked once)

    def __init__(self, parent: QObject | None = None, settings: QSettings | None = None) -> None:
        super().__init__(parent)
        self._q = settings if settings is not None else QSettings("PathPT", "PathPT Studio")
        self.project: Project | None = None
        self.current_run = ""
        self.worker = JobWorker(self)
        self.worker.progress.connect(self._on_progress)
        self.worker.finished_ok.connect(self._on_finished)
        self.worker.errored.connect(self._on_errored)
        self.worker.cancelled.connect(lambda: self._on_cancelled())
        self._after: Callable[[Any], None] | None = None
        self._pending_run = ""  # created by the running job; becomes current when its predictions start
        self._scores: dict[tuple[str, str], Any] = {}
        self.session = ProjectSession()  # one writer per project; others open it read-only
        self._lock_timer = QTimer(self, interval=LOCK_CHECK_MS)
        self._lock_timer.timeout.connect(self.check_lock)

    # ---- project lifetime -------------------------------------------------------------------------------
    def create_project(self, folder: str | Path) -> Project:
        self.close_project()
        return self._locked(self.session.create(folder))

    def open_project(self, folder: str | Path, db_name: str | None = None) -> Project:
        """Open a project (`db_name`: another database file in it, e.g. a recovered copy); read-only, with the
        holder named in `lock_changed`, when another app instance has it open."""
        self.close_project()
        return self._locked(self.session.open(folder, db_name))

    def _set_project(self, project: Project) -> Project:
        self.close_project()
        self.project = project
        self._remember(project.root)
        runs = [r for r in project.runs.list() if r.status == "done"]
        self.current_run = runs[0].run_id if runs else ""
        self.info(f"opened project {project.root} ({len(project.slides.ids())} slides)")
        if project.interrupted_runs:
            self.message.emit("warning", f"{len(project.interrupted_runs)} run(s) did not finish last time (the "
                              f"app stopped while they ran); marked interrupted: {', '.join(project.interrupted_runs)}")
        if project.read_only:
            self.message.emit("warning", f"{project.db_path}: opened read-only (the file or its folder cannot be "
                                         "written); you can look, but changes cannot be saved")
        for line in project.missing_files:
            self.message.emit("warning", line)
        missing = project.slides.missing()
        if missing:
            self.message.emit("warning", f"{len(missing)} slide file(s) moved or missing, e.g. {missing[0].path}; "
                              "use Project › Relink Slides… to find them")
        self.project_changed.emit(project)
        self.current_run_changed.emit(self.current_run)
        return project

    def close_project(self) -> None:
        """Stop any job and close the database (everything is already saved)."""
        self.worker.shutdown()
        if self.project is not None:
            self._lock_timer.stop()
            self.session.release()
            self.project.close()
            self.project = None
            self.current_run = ""
            self._scores.clear()
            self.project_changed.emit(None)

    def shutdown(self) -> None:
        self.close_project()
        self.worker.shutdown()

    def recent_projects(self) -> list[str]:
        """Recent project folders that still hold a project, newest first."""
        value = self._q.value(RECENT_KEY, [])
        items = [value] if isinstance(value, str) else list(value or [])
        return [p for p in items if (Path(p) / "project.sqlite").exists()]

    def _remember(self, root: Path) -> None:
        items = [str(root)] + [p for p in self.recent_projects() if p != str(root)]
        self._q.setValue(RECENT_KEY, items[:MAX_RECENT])

    def require(self) -> Project:
        if self.project is None:
            raise PathPTError("no project is open; create or open one (Project menu)")
        return self.project

    # ---- logging ----------------------------------------------------------------------------------------
    def info(self, text: str) -> None:
        log.info("%s", text)
        self.message.emit("info", text)

    # ---- slides -----------------------------------------------------------------------------------------
    def add_slides(self, paths: Iterable[str | Path]) -> list[str]:
        """Add slide files now (a DICOM series once, however many of its files); files that fail or are not
        slides are reported, the rest added."""
        from pathpt_engine.slides.discover import expand_paths

        proj, added = self.require(), []
        found = expand_paths(paths)
        for path, why in found.skipped:
            self.message.emit("warning", f"{path}: skipped: {why}")
        for p in found.slides:
            try:
                added.append(proj.slides.add(p).slide_id)
            except PathPTError as exc:
                self.message.emit("error", str(exc))
        if added:
            self.info(f"added {len(added)} slide(s)")
            self.slides_changed.emit()
            self._ask_pixel_sizes(added)
        return added

    def _ask_pixel_sizes(self, slide_ids: list[str]) -> None:
        """Ask once, when slides join the project, for the pixel size of those whose files state none."""
        proj = self.project
        unknown = [sid for sid in slide_ids if proj is not None and proj.slides.get(sid).mpp is None]
        if unknown:
            self.message.emit("warning", f"{len(unknown)} slide(s) state no plausible pixel size (µm/px): "
                                         f"{', '.join(unknown)}; give it when asked, or later from the slide "
                                         "list (right-click › Pixel size…)")
            self.pixel_size_needed.emit(unknown)

    def set_slide_mpp(self, slide_id: str, mpp: float) -> None:
        """Store the user's level-0 µm/px for one slide (used by the scale bar and feature extraction)."""
        self.require().slides.set_mpp(slide_id, mpp)
        self.info(f"{slide_id}: pixel size {mpp:g} µm/px (given by you)")
        self.slides_changed.emit()

    def add_folder(self, folder: str | Path) -> None:
        proj = self.require()
        self.run_job("Add slides", lambda c: proj.slides.add_folder(folder, cancel=c), self._after_add)

    def _after_add(self, report: Any) -> None:
        self.info(f"added {len(report.added)} slide(s); {len(report.already)} already in the project")
        for path, why in report.failed:
            self.message.emit("error", f"{path}: {why}")
        for path, why in report.skipped:
            self.message.emit("warning", f"{path}: skipped: {why}")
        if report.skipped:
            self.info(f"skipped {len(report.skipped)} file(s) that are not slides (listed above)")
        self.slides_changed.emit()
        self._ask_pixel_sizes(list(report.added))

    def relink(self, folder: str | Path) -> None:
        proj = self.require()
        self.run_job("Relink slides", lambda c: proj.slides.relink(folder, cancel=c), self._after_relink)

    def _after_relink(self, report: Any) -> None:
        self.info(f"relinked {len(report.relinked)} slide(s); still missing: {report.still_missing or 'none'}")
        self.slides_changed.emit()

    # ---- labels -----------------------------------------------------------------------------------------
    def set_label(self, slide_ids: Iterable[str], label: str, split: str | None = None) -> None:
        proj, ids = self.require(), list(slide_ids)
        current = proj.labels.all()
        for sid in ids:
            keep = split or (current[sid].split if sid in current else "train")
            proj.labels.set(sid, label, keep)
        self.labels_changed.emit()

    def set_split(self, slide_ids: Iterable[str], split: str) -> None:
        proj = self.require()
        labelled = proj.labels.all()
        for sid in slide_ids:
            if sid in labelled:
                proj.labels.set_split(sid, split)
        self.labels_changed.emit()

    def clear_labels(self, slide_ids: Iterable[str]) -> None:
        self.require().labels.clear(list(slide_ids))
        self.labels_changed.emit()

    def undo(self) -> str | None:
        """Undo the latest label change; the log says what it did ("label of synth0_010 cleared")."""
        return self._undo_redo(self.require().labels.undo, "undone")

    def redo(self) -> str | None:
        return self._undo_redo(self.require().labels.redo, "redone")

    def _undo_redo(self, step: Any, done: str) -> str | None:
        labels = self.require().labels
        before = labels.all()
        what = step()
        if what is not None:
            self.info(f"{describe_label_change(before, labels.all())} ({what} {done})")
            self.labels_changed.emit()
        return what

    def import_labels(self, csv_path: str | Path) -> Any:
        report = self.require().labels.import_csv(csv_path)
        self.info(f"imported {report.applied} label(s) from {csv_path}")
        for line, sid in report.unknown_slides:
            self.message.emit("warning", f"{csv_path}:{line}: no slide {sid!r} in the project")
        for line, name in report.unknown_classes:
            self.message.emit("warning", f"{csv_path}:{line}: unknown class {name!r}")
        self.labels_changed.emit()
        return report

    # ---- classes and backbone ---------------------------------------------------------------------------
    def classset(self) -> Any:
        return self.project.classes.get() if self.project is not None else None

    def set_classset(self, classset: Any) -> None:
        self.require().classes.set(classset)
        self.info(f"class set: {', '.join(classset.class_names)}")
        self.classes_changed.emit()

    def backbone(self) -> pj.BackboneChoice:
        return pj.BackboneChoice.of(self.project) if self.project is not None else pj.BackboneChoice()

    def set_backbone(self, choice: pj.BackboneChoice, validate: bool = True) -> None:
        """Store the backbone choice; with a weights folder and `validate`, load it once in the worker first."""
        proj = self.require()
        if validate and choice.weights:
            def job(_cancel: Any) -> Any:
                yield Progress("validate", 0, 1, message=f"checking {choice.weights}")
                return pj.validate_backbone_folder(choice.name, choice.weights or "")

            def done(desc: Any) -> None:
                choice.save(proj)
                self.info(f"backbone OK: {desc}")
                self.backbone_changed.emit(choice)
            self.run_job("Check backbone", job, done)
            return
        choice.save(proj)
        self.backbone_changed.emit(choice)

    # ---- runs, predictions ------------------------------------------------------------------------------
    def set_current_run(self, run_id: str) -> None:
        if run_id != self.current_run:
            self.current_run = run_id
            self.current_run_changed.emit(run_id)

    def predictions(self, run_id: str | None = None) -> dict[str, Any]:
        rid = self.current_run if run_id is None else run_id
        if self.project is None or not rid:
            return {}
        return self.project.runs.predictions(rid)

    def tile_scores(self, slide_id: str, run_id: str | None = None) -> Any:
        """The run's TileScores for a slide (cached), or None if not predicted."""
        from pathpt_engine.export.scores import read_scores_h5

        rid = self.current_run if run_id is None else run_id
        if self.project is None or not rid:
            return None
        key = (rid, slide_id)
        if key not in self._scores:
            path = pj.scores_path(self.project, rid, slide_id)
            if not path.exists():
                return None
            self._scores[key] = read_scores_h5(path)[0]
        return self._scores[key]

    def suggest_next(self) -> str | None:
        if self.project is None or not self.current_run:
            return None
        return self.project.suggest_next_slide(self.current_run)

    def has_features(self) -> bool:
        return self.project is not None and bool(pj.slides_with_features(self.project, self.backbone()))

    # ---- jobs -------------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.worker.busy

    def run_job(self, name: str, factory: Callable[[Any], Any], after: Callable[[Any], None] | None = None) -> bool:
        if self.worker.busy:
            self.message.emit("warning", f"'{self.worker.name}' is still running; wait or cancel it first")
            return False
        self._after = after
        self.info(f"{name}: started")
        self.worker.start_job(name, factory)
        self.job_started.emit(name)
        return True

    def extract_features(self) -> bool:
        proj, choice = self.require(), self.backbone()
        return self.run_job("Extract features", lambda c: pj.extract_job(proj, choice, c), self._after_extract)

    def _after_extract(self, summary: Any) -> None:
        failed = getattr(summary, "failed", ())
        if failed:  # the other slides were extracted; these are marked red in the slide list
            self.message.emit("error", f"feature extraction failed for {len(failed)} slide(s), marked in red in "
                                       f"the slide list; the others are done. First: {failed[0][1]}")
        self.slides_changed.emit()

    def failed_slides(self) -> dict[str, str]:
        """slide_id -> reason of the slides whose last feature extraction failed (current backbone)."""
        if self.project is None:
            return {}
        return pj.failed_slides(self.project, self.backbone())

    def download_weights(self, name: str) -> bool:
        """Download `name`'s weights (the user asked: "Download weights…"); offline or gated: one line."""
        from pathpt_engine.backbones.download import after_download_note, download_job

        def after(folder: Any) -> None:
            self.info(f"{name}: weights in {folder}" + (f"; {after_download_note(name)}"
                                                       if after_download_note(name) else ""))
            self.backbone_changed.emit(self.backbone())  # the backbone list shows it found

        return self.run_job(f"Download {name} weights", lambda _c: download_job(name), after)

    def zero_shot(self) -> bool:
        proj, choice = self.require(), self.backbone()
        return self.run_job("Zero-shot", lambda c: pj.zeroshot_job(proj, choice, c), self._after_run)

    def train(self, config: Any) -> bool:
        proj, choice = self.require(), self.backbone()
        return self.run_job("Train PathPT", lambda c: pj.train_job(proj, choice, config, c), self._after_run)

    def predict(self, run_id: str | None = None) -> bool:
        proj, choice, rid = self.require(), self.backbone(), run_id or self.current_run
        if not rid:
            raise PathPTError("no run selected; train or run zero-shot first")
        self._live_run(rid)
        return self.run_job("Predict", lambda c: pj.predict_job(proj, rid, choice, c),
                            lambda _n: self._after_run(rid))

    def export(self, opts: pj.ExportOptions, run_id: str | None = None) -> bool:
        proj, rid = self.require(), run_id or self.current_run
        if not rid:
            raise PathPTError("no run selected; train or run zero-shot first")
        return self.run_job("Export", lambda c: pj.export_job(proj, rid, opts, c),
                            lambda w: self.info(f"exported to {w['folder'][0]}: " + ", ".join(
                                f"{len(v)} {k}" for k, v in w.items() if k != "folder")))

    def cancel_job(self) -> None:
        if self.worker.busy:
            self.info(f"{self.worker.name}: cancelling…")
            self.worker.cancel()

    def _after_run(self, run_id: str) -> None:
        self.runs_changed.emit()
        self.set_current_run(run_id)
        self.current_run_changed.emit(run_id)

    def _live_run(self, run_id: str) -> None:
        self._scores = {k: v for k, v in self._scores.items() if k[0] != run_id}
        self.runs_changed.emit()
        self.set_current_run(run_id)

    def _on_progress(self, event: Progress, fraction: Any, eta: Any) -> None:
        if event.stage == "run":
            self._pending_run = event.message
            self.runs_changed.emit()
        elif event.stage == "predict" and event.message:
            if self._pending_run:  # keep showing the previous run until this one has something to show
                self._live_run(self._pending_run)
                self._pending_run = ""
            self._scores.pop((self.current_run, event.message), None)
            self.prediction_added.emit(self.current_run, event.message)
        self.job_progress.emit(event, fraction, eta)

    def _on_finished(self, result: Any) -> None:
        name, after, self._after, self._pending_run = self.worker.name, self._after, None, ""
        self.info(f"{name}: done")
        try:
            if after is not None:
                after(result)
        finally:
            self.job_finished.emit(name, result)

    def _on_errored(self, text: str) -> None:
        name, self._after, self._pending_run = self.worker.name, None, ""
        self.message.emit("error", f"{name} failed: {text}")
        self.runs_changed.emit()
        self.job_failed.emit(name, text)

    def _on_cancelled(self) -> None:
        name, self._after, self._pending_run = self.worker.name, None, ""
        self.message.emit("warning", f"{name}: cancelled")
        self.runs_changed.emit()
        self.job_cancelled.emit(name)
