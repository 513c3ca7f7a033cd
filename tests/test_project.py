"""Project store: create/open, schema checks, slides, relink, classes, labels with undo/redo, runs, settings."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.errors import ConfigError, ProjectError
from pathpt_engine.jobs import collect
from pathpt_engine.project import DB_NAME, SCHEMA_VERSION, ClassInfo, ClassSet, Project
from pathpt_engine.results import SlidePrediction
from pathpt_engine.synth.writer import write_slide

CLASSES = ClassSet("lung", "test set", (
    ClassInfo("Normal", "Normal lung", ("normal lung",), "#7f7f7f", normal=True),
    ClassInfo("LUAD", "Adenocarcinoma", ("adenocarcinoma",), "#1f77b4"),
    ClassInfo("LUSC", "Squamous cell carcinoma", ("squamous cell carcinoma",), "#00ff00")),
    templates=("an H&E image of CLASSNAME.",))


def _slide(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, size=(384, 512, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_slide(path, img, mpp=0.5, fmt="tiff")


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("slides")
    for i, name in enumerate(["a.tiff", "b.tiff", "sub/c.tiff"]):
        _slide(d / name, i)
    (d / "sub" / "broken.tiff").write_bytes(b"not a slide")
    (d / "notes.txt").write_text("ignored")
    return d


@pytest.fixture
def proj(tmp_path: Path):
    with Project.create(tmp_path / "proj") as p:
        p.classes.set(CLASSES)
        yield p


def test_create_makes_folders_and_schema(tmp_path: Path) -> None:
    with Project.create(tmp_path / "p") as p:
        assert p.schema_version == SCHEMA_VERSION
        for sub in ("features", "runs", "exports"):
            assert (tmp_path / "p" / sub).is_dir()
        assert p.features_dir("keep") == tmp_path.resolve() / "p" / "features" / "keep"
        with pytest.raises(ProjectError, match="safe folder name"):
            p.features_dir("../evil")
    with pytest.raises(ProjectError, match="already a PathPT project"):
        Project.create(tmp_path / "p")
    con = sqlite3.connect(tmp_path / "p" / DB_NAME)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(
        range(1, SCHEMA_VERSION + 1))
    con.close()


def test_open_rejects_non_projects(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="no such project folder"):
        Project.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProjectError, match="not a PathPT project folder"):
        Project.open(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DB_NAME).write_bytes(b"garbage" * 200)
    with pytest.raises(ProjectError, match="not a readable SQLite database"):
        Project.open(tmp_path / "junk")
    (tmp_path / "foreign").mkdir()
    sqlite3.connect(tmp_path / "foreign" / DB_NAME).execute("CREATE TABLE x(a)").connection.close()
    with pytest.raises(ProjectError, match="not a PathPT project database"):
        Project.open(tmp_path / "foreign")


def test_open_rejects_newer_schema(tmp_path: Path) -> None:
    Project.create(tmp_path / "p").close()
    con = sqlite3.connect(tmp_path / "p" / DB_NAME)
    con.execute("INSERT INTO schema_migrations VALUES (?, 'future')", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(ProjectError, match="newer than this PathPT Studio"):
        Project.open(tmp_path / "p")


def test_open_applies_pending_migrations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathpt_engine.project import db as dbmod

    with Project.create(tmp_path / "p") as p:
        p.set_setting("kept", 1)
    extra = (SCHEMA_VERSION + 1, ("ALTER TABLE slides ADD COLUMN note TEXT NOT NULL DEFAULT ''",))
    monkeypatch.setattr(dbmod, "MIGRATIONS", (*dbmod.MIGRATIONS, extra))
    monkeypatch.setattr(dbmod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with Project.open(tmp_path / "p") as p:
        assert p.schema_version == SCHEMA_VERSION + 1 and p.get_setting("kept") == 1
    con = sqlite3.connect(tmp_path / "p" / DB_NAME)
    assert "note" in [r[1] for r in con.execute("PRAGMA table_info(slides)")]
    assert [r[0] for r in con.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(
        range(1, SCHEMA_VERSION + 2))
    con.close()


def test_add_slides_and_folder(proj: Project, slide_dir: Path) -> None:
    rec = proj.slides.add(slide_dir / "a.tiff")
    assert (rec.slide_id, rec.width, rec.height) == ("a", 512, 384)
    assert rec.mpp is not None and rec.mpp[0] == pytest.approx(0.5, rel=1e-3)
    assert rec.quickhash
    with pytest.raises(ProjectError, match="already in the project"):
        proj.slides.add(slide_dir / "a.tiff", slide_id="other")
    report, events = collect(proj.slides.add_folder(slide_dir))
    assert report.added == ["b", "c"]
    assert [p.name for p in report.already] == ["a.tiff"]
    assert [p.name for p, _ in report.failed] == ["broken.tiff"]
    assert events[-1].done == events[-1].total == 4
    assert proj.slides.ids() == ["a", "b", "c"]
    proj.labels.set("a", "LUAD")
    proj.slides.remove("a")
    assert proj.slides.ids() == ["b", "c"] and proj.labels.get("a") is None
    with pytest.raises(ProjectError, match="no slide 'a'"):
        proj.slides.remove("a")


def test_relink_by_name_and_by_hash(proj: Project, tmp_path: Path) -> None:
    src = tmp_path / "orig"
    _slide(src / "x.tiff", 10)
    _slide(src / "y.tiff", 11)
    proj.slides.add(src / "x.tiff")
    proj.slides.add(src / "y.tiff")
    moved = tmp_path / "moved" / "deep"
    moved.mkdir(parents=True)
    shutil.move(src / "x.tiff", moved / "x.tiff")          # same name
    shutil.move(src / "y.tiff", moved / "renamed.tiff")    # new name, same content
    _slide(tmp_path / "moved" / "y.tiff", 99)              # decoy: old name, other content
    assert sorted(r.slide_id for r in proj.slides.missing()) == ["x", "y"]
    report, _ = collect(proj.slides.relink(tmp_path / "moved"))
    assert report.relinked == {"x": (moved / "x.tiff").resolve(), "y": (moved / "renamed.tiff").resolve()}
    assert report.still_missing == [] and proj.slides.missing() == []
    with pytest.raises(ProjectError, match="quickhash mismatch"):
        proj.slides.set_path("x", tmp_path / "moved" / "y.tiff")


def test_relink_reports_still_missing(proj: Project, tmp_path: Path) -> None:
    _slide(tmp_path / "o" / "z.tiff", 5)
    proj.slides.add(tmp_path / "o" / "z.tiff")
    (tmp_path / "o" / "z.tiff").unlink()
    (tmp_path / "empty").mkdir()
    report, _ = collect(proj.slides.relink(tmp_path / "empty"))
    assert report.still_missing == ["z"] and report.relinked == {}


def test_class_set_round_trip(proj: Project, tmp_path: Path) -> None:
    assert proj.classes.get() == CLASSES
    assert proj.classes.colors() == {"Normal": "#7f7f7f", "LUAD": "#1f77b4", "LUSC": "#00ff00"}
    with Project.create(tmp_path / "fresh") as fresh:
        assert fresh.classes.get() is None and fresh.classes.names() == ()
        with pytest.raises(ConfigError, match="no classes yet"):
            fresh.labels.set("a", "LUAD")


def _three_slides(proj: Project, slide_dir: Path) -> None:
    collect(proj.slides.add_folder(slide_dir))


def test_labels_validate_and_undo_redo_persist(proj: Project, slide_dir: Path, tmp_path: Path) -> None:
    _three_slides(proj, slide_dir)
    with pytest.raises(ConfigError, match="not a subtype class"):
        proj.labels.set("a", "Normal")
    with pytest.raises(ConfigError, match="not a subtype class"):
        proj.labels.set("a", "SCLC")
    with pytest.raises(ProjectError, match="no slide"):
        proj.labels.set("zzz", "LUAD")
    proj.labels.set("a", "luad")  # names and display names are accepted in any case
    assert proj.labels.get("a").label == "LUAD"
    proj.labels.set("b", "Squamous cell carcinoma", split="heldout")
    assert proj.labels.get("b").label == "LUSC"
    proj.labels.set_split("a", "heldout")
    assert proj.labels.unlabelled() == ["c"]
    assert proj.labels.undo() == "move a to heldout"
    assert proj.labels.get("a").split == "train"
    root = proj.root
    proj.close()
    with Project.open(root) as p2:  # history survives a reopen
        assert p2.labels.can_redo()
        assert p2.labels.redo() == "move a to heldout"
        assert p2.labels.get("a").split == "heldout"
        p2.labels.undo()
        p2.labels.undo()  # undoes the label of b
        assert p2.labels.get("b") is None
        p2.labels.set("c", "LUAD")  # a new change clears the redo side
        assert not p2.labels.can_redo() and p2.labels.redo() is None
        p2.labels.clear()
        assert p2.labels.all() == {}
        p2.labels.undo()
        assert {k: v.label for k, v in p2.labels.all().items()} == {"a": "LUAD", "c": "LUAD"}


def test_import_labels_csv(proj: Project, slide_dir: Path, tmp_path: Path) -> None:
    _three_slides(proj, slide_dir)
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("slide_id,label\na,LUAD\nb,LUSC,heldout\nghost,LUAD\nc,Melanoma\n\n")
    report = proj.labels.import_csv(csv_path)
    assert report.applied == 2
    assert report.unknown_slides == [(4, "ghost")] and report.unknown_classes == [(5, "Melanoma")]
    assert proj.labels.get("b").split == "heldout" and proj.labels.get("a").split == "train"
    out = proj.labels.export_csv(tmp_path / "out.csv")
    assert out.read_text().splitlines() == ["slide_id,label,split", "a,LUAD,train", "b,LUSC,heldout"]
    assert proj.labels.undo() == "import labels from labels.csv"
    assert proj.labels.all() == {}
    with pytest.raises(ConfigError, match="missing.csv"):
        proj.labels.import_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a\n")
    with pytest.raises(ConfigError, match=r"bad\.csv: line 1"):
        proj.labels.import_csv(bad)


def test_runs_predictions_and_suggestion(proj: Project, slide_dir: Path) -> None:
    _three_slides(proj, slide_dir)
    run = proj.runs.create("pathpt", "demo", {"shots": 1})
    assert run.status == "running" and run.checkpoint is not None and run.checkpoint.is_dir()
    assert run.settings == {"shots": 1}
    preds = [SlidePrediction("a", "LUAD", {"LUAD": 0.55, "LUSC": 0.45}, 10),
             SlidePrediction("b", "LUSC", {"LUAD": 0.51, "LUSC": 0.49}, 10),
             SlidePrediction("c", "LUAD", {"LUAD": 0.9, "LUSC": 0.1}, 10)]
    assert proj.runs.add_predictions(run.run_id, preds) == 3
    stored = proj.runs.predictions(run.run_id)
    assert stored["b"].uncertainty == pytest.approx(0.98) and stored["c"].probs == {"LUAD": 0.9, "LUSC": 0.1}
    assert proj.runs.suggest_next_slide(run.run_id) == "b"
    proj.labels.set("b", "LUSC")
    assert proj.runs.suggest_next_slide(run.run_id) == "a"
    with pytest.raises(ProjectError, match="not in the project"):
        proj.runs.add_predictions(run.run_id, [SlidePrediction("ghost", "LUAD", {"LUAD": 1.0}, 1)])
    proj.runs.set_status(run.run_id, "done", checkpoint=run.checkpoint / "ckpt")
    done = proj.runs.get(run.run_id)
    assert done.status == "done" and done.finished and done.checkpoint == run.checkpoint / "ckpt"
    with pytest.raises(ProjectError, match="status must be"):
        proj.runs.set_status(run.run_id, "exploded")
    proj.runs.delete(run.run_id)
    assert proj.runs.list() == []


def test_settings(proj: Project) -> None:
    proj.set_setting("overlay", {"cmap": "viridis", "alpha": 0.5})
    proj.set_setting("overlay", {"cmap": "magma", "alpha": 0.4})
    assert proj.get_setting("overlay") == {"cmap": "magma", "alpha": 0.4}
    assert proj.get_setting("missing", 7) == 7
    with pytest.raises(ProjectError, match="JSON"):
        proj.set_setting("bad", object())
    proj.delete_setting("overlay")
    assert proj.settings() == {}


def test_two_threads_write_concurrently(proj: Project) -> None:
    errors: list[BaseException] = []

    def writer(prefix: str) -> None:
        try:
            for i in range(50):
                proj.set_setting(f"{prefix}{i}", i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("gui", "worker")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(proj.settings()) == 100
    assert json.loads(json.dumps(proj.get_setting("worker49"))) == 49


def test_closed_project_and_undo_after_slide_removal(proj: Project, slide_dir: Path) -> None:
    _three_slides(proj, slide_dir)
    proj.labels.set("a", "LUAD")
    proj.labels.set("a", "LUSC")
    proj.slides.remove("a")
    assert proj.labels.undo() is not None  # the removed slide is skipped, not resurrected
    assert proj.labels.all() == {} and proj.slides.ids() == ["b", "c"]
    proj.close()
    proj.close()  # second close is harmless
    with pytest.raises(ProjectError, match="closed"):
        proj.slides.list()
