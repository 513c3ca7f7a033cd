"""Project-level engine jobs the GUI runs in its worker: extract, zero-shot, train, predict, export.

Qt-free on purpose (plain generator jobs over a `pathpt_engine.project.Project`), so they are testable without a
display. Each run's per-slide tile scores live in `runs/<run_id>/tiles/<slide_id>.h5` (the engine's score-h5
format); slide predictions go to the project database as each slide finishes, so the GUI can show overlays while
a prediction job is still running.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pathpt_engine.errors import ConfigError, JobCancelled, ProjectError
from pathpt_engine.jobs import Job, Progress
from pathpt_engine.project import Project
from pathpt_engine.workflow.export import ExportOptions

if TYPE_CHECKING:
    from pathpt_engine.backbones.base import Backbone
    from pathpt_engine.features.extract import ExtractionSummary
    from pathpt_engine.pathpt.model import PathPTConfig
    from pathpt_engine.pathpt.trainer import SlideData
    from pathpt_engine.project.slides import SlideRecord
    from pathpt_engine.prompts.classsets import ClassSet
    from pathpt_engine.results import SlidePrediction, TileScores
    from pathpt_engine.workflow import ProbsFn

log = logging.getLogger(__name__)

BACKBONE_KEY = "backbone"


@dataclass(frozen=True)
class BackboneChoice:
    """Which vision-language model and device the project uses (stored in the project settings)."""

    name: str = "demo"
    weights: str | None = None
    device: str = "auto"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("backbone name must be non-empty")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("cuda"):
            raise ValueError(f"device must be auto, cpu or cuda[:i], got {self.device!r}")

    @classmethod
    def of(cls, project: Project) -> BackboneChoice:
        data = project.get_setting(BACKBONE_KEY) or {}
        try:
            return cls(**{k: data[k] for k in ("name", "weights", "device") if k in data})
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{project.db_path}: bad backbone setting ({exc})") from None

    def save(self, project: Project) -> None:
        project.set_setting(BACKBONE_KEY, dataclasses.asdict(self))

    def torch_device(self) -> str:
        from pathpt_engine.backbones.encode import resolve_device

        return str(resolve_device(self.device))


def validate_backbone_folder(name: str, folder: str | Path) -> str:
    """Load the backbone from `folder` on the CPU to check it; returns a one-line description.

    Raises:
        BackboneError: the folder does not hold that kind of model (message names the file and the fix).
    """
    from pathpt_engine.backbones import load_backbone

    model = load_backbone(name, folder, "cpu")
    return f"{model.name}: {model.embed_dim}-d embeddings, tiles {model.tile_size} px at {model.target_mpp} µm/px"


def features_folder(project: Project, choice: BackboneChoice) -> Path:
    return project.root / "features" / choice.name / "h5_files"


def scores_path(project: Project, run_id: str, slide_id: str) -> Path:
    return project.root / "runs" / run_id / "tiles" / f"{slide_id}.h5"


def slides_with_features(project: Project, choice: BackboneChoice) -> dict[str, Path]:
    """slide_id -> feature file, for the project's slides that have one for this backbone."""
    folder = features_folder(project, choice)
    out = {}
    for rec in project.slides.list():
        f = folder / f"{rec.path.stem}.h5"
        if f.is_file():
            out[rec.slide_id] = f
    return out


def _load(project: Project, choice: BackboneChoice, ids: Iterable[str] | None = None, labels: dict[str, int] | None
          = None) -> list[SlideData]:
    from pathpt_engine.pathpt.data import load_slide

    files = slides_with_features(project, choice)
    want = list(files) if ids is None else list(ids)
    missing = [s for s in want if s not in files]
    if missing:
        raise ProjectError(f"{features_folder(project, choice)}: no features for slide {missing[0]!r} "
                           f"({len(missing)} missing); run Extract features first")
    return [dataclasses.replace(load_slide(files[s], (labels or {}).get(s, -1)), slide_id=s) for s in want]


def _classset(project: Project) -> ClassSet:
    cs = project.classes.get()
    if cs is None:
        raise ProjectError(f"{project.root}: the project has no classes yet; load a class set first")
    return cs


def _backbone(choice: BackboneChoice) -> Backbone:
    from pathpt_engine.backbones import load_backbone

    return load_backbone(choice.name, choice.weights, choice.torch_device()).freeze()


def failed_slides(project: Project, choice: BackboneChoice) -> dict[str, str]:
    """slide_id -> reason, for the project's slides whose latest extraction with this backbone failed.

    Read from the extraction ledger (`features/extract-ledger.jsonl`); a later successful run clears the mark.
    """
    from pathpt_engine.features.ledger import latest, ledger_path, read_ledger

    path = ledger_path(project.root / "features")
    if not path.is_file():
        return {}
    try:
        state = latest(read_ledger(path))
    except ConfigError as exc:
        log.warning("%s", exc)
        return {}
    by_stem = {rec.path.stem: rec.slide_id for rec in project.slides.list()}
    return {by_stem[slide]: e.reason for (backbone, slide), e in state.items()
            if backbone == choice.name and e.status == "failed" and slide in by_stem}


def extract_job(project: Project, choice: BackboneChoice,
                cancel: threading.Event | None = None) -> Job[ExtractionSummary]:
    """Job: tile + encode every project slide whose file exists (up-to-date features are skipped).

    A slide that cannot be read does not stop the others: it is in the summary's `failed` and in the ledger
    (`failed_slides`), and the next run retries it (the slides already done are skipped as up to date).
    Slides whose files state no plausible pixel size are tiled at the one the user gave (stored per slide).
    """
    from pathpt_engine.features.extract import ExtractionSummary, ExtractOptions, extract_slides

    recs = [r for r in project.slides.list() if r.exists]
    if not recs:
        raise ProjectError(f"{project.root}: no slides to extract (add slides, or relink moved ones)")
    opts = ExtractOptions(backbone=choice.name, weights=Path(choice.weights) if choice.weights else None,
                          device=choice.device, workers=1)
    groups = _by_user_mpp(recs)
    if len(groups) == 1:
        ((mpp, paths),) = groups.items()
        return (yield from extract_slides(paths, project.root / "features",
                                          dataclasses.replace(opts, assume_mpp=mpp), cancel=cancel))
    model = _backbone(choice)  # loaded once for every group
    parts = []
    for mpp, paths in groups.items():
        parts.append((yield from extract_slides(paths, project.root / "features",
                                                dataclasses.replace(opts, assume_mpp=mpp), cancel=cancel,
                                                backbone=model)))
    return ExtractionSummary(parts[0].device, parts[0].backbone, parts[0].weights_hash,
                             tuple(s for p in parts for s in p.slides), tuple(f for p in parts for f in p.failed))


def _by_user_mpp(recs: list[SlideRecord]) -> dict[float | None, list[Path]]:
    """Slide paths grouped by the pixel size the user gave (None: the file's own, or none given)."""
    from pathpt_engine.errors import PathPTError
    from pathpt_engine.slides import open_slide

    groups: dict[float | None, list[Path]] = {}
    for rec in recs:
        user = None
        if rec.mpp is not None:
            try:
                with open_slide(rec.path) as reader:
                    user = rec.mpp[0] if reader.mpp is None else None
            except PathPTError:
                pass  # extraction reports it
        groups.setdefault(user, []).append(rec.path)
    return groups


def _tracked_run(project: Project, recipe: str, choice: BackboneChoice, settings: dict[str, Any],
                 body: Callable[[str], Job[str]]) -> Job[str]:
    """Create a run, drive `body(run_id)`, and record its final status whatever happens."""
    run = project.runs.create(recipe, choice.name, settings)
    yield Progress("run", 0, None, message=run.run_id)  # lets the GUI show this run's predictions as they come
    try:
        message = yield from body(run.run_id)
    except (JobCancelled, GeneratorExit):
        project.runs.set_status(run.run_id, "cancelled", "cancelled by user")
        raise
    except Exception as exc:
        project.runs.set_status(run.run_id, "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise
    project.runs.set_status(run.run_id, "done", message)
    return run.run_id


def _predict_all(project: Project, run_id: str, classset: ClassSet, slides: list[SlideData],
                 probs_fn: ProbsFn, cancel: threading.Event | None) -> Job[int]:
    """The engine's predict job (`pathpt_engine.workflow.predict`), each slide's tile h5 written and its call
    stored in the project as soon as it is scored (progress message = slide_id)."""
    from pathpt_engine.workflow import predict, write_tile_scores

    def store(pred: SlidePrediction, scores: TileScores) -> None:
        write_tile_scores(project.root / "runs" / run_id, pred, scores)
        project.runs.add_predictions(run_id, [pred])

    yield from predict(classset, slides, probs_fn, cancel, on_result=store)
    return len(slides)


def zeroshot_job(project: Project, choice: BackboneChoice, cancel: threading.Event | None = None) -> Job[str]:
    """Job: zero-shot tile probabilities for every slide with features (no labels needed); returns the run id."""
    from pathpt_engine.prompts.zeroshot import zeroshot_tile_probs
    from pathpt_engine.workflow import zeroshot_classifier

    classset = _classset(project)
    slides = _annotated(project, classset, _load(project, choice))  # 'ignore' regions: tiles not predicted
    if not slides:
        raise ProjectError(f"{project.root}: no slide has {choice.name} features yet; run Extract features first")

    def body(run_id: str) -> Job[str]:
        classifier = yield from zeroshot_classifier(_backbone(choice), classset)
        n = yield from _predict_all(project, run_id, classset, slides,
                                    lambda s: zeroshot_tile_probs(s.features, classifier), cancel)
        return f"zero-shot on {n} slides"

    return (yield from _tracked_run(project, "zeroshot", choice, {"classes": classset.name}, body))


def _labelled(project: Project, classset: ClassSet) -> tuple[dict[str, int], list[str], list[str]]:
    labels: dict[str, int] = {}
    train: list[str] = []
    val: list[str] = []
    for sid, lab in project.labels.all().items():
        try:
            labels[sid] = classset.subtype_index(lab.label)
        except ValueError:
            continue  # Normal or a class no longer in the set: not a subtype example
        (train if lab.split == "train" else val).append(sid)
    return labels, sorted(train), sorted(val)


def train_job(project: Project, choice: BackboneChoice, config: PathPTConfig,
              cancel: threading.Event | None = None) -> Job[str]:
    """Job: train PathPT on the labelled train slides (held-out ones validate the clean recipe), then predict
    every slide with features. Returns the run id."""
    from pathpt_engine.pathpt.trainer import train_pathpt
    from pathpt_engine.workflow import model_probs

    classset = _classset(project)
    labels, train_ids, val_ids = _labelled(project, classset)
    if not train_ids:
        raise ProjectError(f"{project.root}: no slide is labelled for training; label a few slides first")
    config = dataclasses.replace(config, device=choice.torch_device())
    train = _annotated(project, classset, _load(project, choice, train_ids, labels))
    empty = [s.slide_id for s in train if len(s.features) == 0]
    if empty:  # a clear error, not a conv1d traceback from inside the spatial module
        raise ProjectError(f"{project.root}: {len(empty)} labelled training slide(s) have no tissue tiles, e.g. "
                           f"{empty[0]!r}; remove their labels or extract them again")
    val = _annotated(project, classset, _load(project, choice, val_ids, labels)) if val_ids else None
    val = [s for s in val if len(s.features)] or None if val else None

    def body(run_id: str) -> Job[str]:
        backbone = _backbone(choice)
        result = yield from train_pathpt(backbone, classset, train, config, out_dir=project.run_dir(run_id),
                                         val=val, cancel=cancel, meta={"project": str(project.root)})
        model = result.model
        slides = _annotated(project, classset, _load(project, choice))  # 'ignore' regions: tiles not predicted
        yield from _predict_all(project, run_id, classset, slides, model_probs(model), cancel)
        last = result.history[-1] if result.history else {}
        return (f"{len(train)} train slides, {len(result.history)} epochs, train acc "
                f"{last.get('train_acc', float('nan')):.2f}")

    settings = {"config": config.to_dict(), "train": train_ids, "heldout": val_ids}
    return (yield from _tracked_run(project, f"pathpt-{config.recipe}", choice, settings, body))


def _annotated(project: Project, classset: ClassSet, slides: list[SlideData]) -> list[SlideData]:
    """Slides with the project's regions and tile corrections applied (pathpt_engine.annotations.apply)."""
    from pathpt_engine.annotations.apply import annotate_from_project

    return annotate_from_project(project, classset, slides)


def predict_job(project: Project, run_id: str, choice: BackboneChoice,
                cancel: threading.Event | None = None) -> Job[int]:
    """Job: re-predict every slide with features using a trained run's checkpoint (e.g. after adding slides)."""
    from pathpt_engine.pathpt.checkpoint import is_complete
    from pathpt_engine.pathpt.predictor import load_run
    from pathpt_engine.workflow import model_probs

    run = project.runs.get(run_id)
    if run.checkpoint is None or not is_complete(run.checkpoint):
        raise ProjectError(f"run {run_id}: no trained checkpoint (zero-shot runs: run Zero-shot again)")
    yield Progress("load", 0, 1, message="loading the trained model")
    loaded = load_run(run.checkpoint, weights=choice.weights, device=choice.torch_device())
    yield Progress("load", 1, 1)
    slides = _annotated(project, loaded.classset, _load(project, choice))
    return (yield from _predict_all(project, run_id, loaded.classset, slides, model_probs(loaded.model), cancel))


def export_job(project: Project, run_id: str, opts: ExportOptions,
               cancel: threading.Event | None = None) -> Job[dict[str, list[str]]]:
    """Job: the engine's `export_run` over the run's tile scores (overlay PNG, heatmap PNG with legend, QuPath
    GeoJSON and score h5 per slide, in the project's class colours), then the predictions CSV and the
    checkpoint once, all in a new dated subfolder of `opts.out` (returned as "folder").
    Returns kind -> written paths."""
    from pathpt_engine.export.guards import safe_child
    from pathpt_engine.export.tables import copy_checkpoint, write_predictions_csv
    from pathpt_engine.pathpt.checkpoint import is_complete
    from pathpt_engine.results import SlidePrediction
    from pathpt_engine.workflow import export_run

    run = project.runs.get(run_id)
    preds = project.runs.predictions(run_id)
    ids = list(opts.slide_ids) if opts.slide_ids is not None else sorted(preds)
    if not ids:
        raise ProjectError(f"run {run_id}: nothing to export (no slide predictions yet)")
    classset = _classset(project)
    for sid in ids:
        safe_child(opts.out, sid)  # every name from the data is checked before anything is written
    out = new_export_folder(Path(opts.out), run_id)
    style = dataclasses.replace(opts.style, colors={c.name: c.color for c in classset.classes})
    job = export_run([scores_path(project, run_id, sid) for sid in ids],
                     dataclasses.replace(opts, out=out, style=style, one_file=False, csv=None),
                     lambda sid: project.slides.get(sid).path, cancel=cancel)
    written: dict[str, list[str]] = {"folder": [str(out)]}
    written.update({k: [str(p) for p in v] for k, v in (yield from job).items()})
    rows = [SlidePrediction(p.slide_id, p.predicted, p.probs, _n_tiles(project, run_id, p.slide_id))
            for p in preds.values()]
    written["csv"] = [str(write_predictions_csv(out / "predictions.csv", rows, list(classset.subtype_names)))]
    if run.checkpoint is not None and is_complete(run.checkpoint):
        written["checkpoint"] = [str(copy_checkpoint(run.checkpoint, out / "checkpoint"))]
    return written


def new_export_folder(parent: Path, run_id: str) -> Path:
    """A new, empty `<parent>/<run_id>-<UTC stamp>[-n]` folder (an export never writes into an existing one)."""
    from datetime import UTC, datetime

    from pathpt_engine.export.guards import safe_child

    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        folder = safe_child(parent, f"{run_id}-{stamp}" + (f"-{n}" if n > 1 else ""))
        try:
            folder.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ProjectError(f"{folder}: cannot create the export folder ({exc})") from exc
        return folder
    raise ProjectError(f"{parent}: too many exports of run {run_id} this second")


def _n_tiles(project: Project, run_id: str, slide_id: str) -> int:
    import h5py

    path = scores_path(project, run_id, slide_id)
    try:
        with h5py.File(path, "r") as f:
            return int(f["coords"].shape[0])
    except (OSError, KeyError):
        return 0
