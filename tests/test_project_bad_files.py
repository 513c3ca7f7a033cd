"""Issue 18: projects move (relative checkpoint paths, never another copy's files), a read-only project opens
read-only and says so, a damaged database is detected without being written and a recovered copy can be made,
and a labels CSV with conflicting rows or another encoding gets one clear answer. Fixtures are made here."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from project_faults import corrupt_table

from pathpt_engine.errors import ConfigError, ProjectDamaged, ProjectError
from pathpt_engine.project import DB_NAME, ClassInfo, ClassSet, Project
from pathpt_engine.synth.writer import write_slide

CLASSES = ClassSet("lung", "test set", (
    ClassInfo("Normal", "Normal lung", ("normal lung",), "#7f7f7f", normal=True),
    ClassInfo("LUAD", "Adenocarcinoma", ("adenocarcinoma",), "#1f77b4"),
    ClassInfo("LUSC", "Squamous cell carcinoma", ("squamous cell carcinoma",), "#00ff00")),
    templates=("an H&E image of CLASSNAME.",))


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("slides")
    rng = np.random.default_rng(0)
    return [write_slide(d / f"{n}.tiff", rng.integers(0, 255, (256, 256, 3), dtype=np.uint8), mpp=0.5, fmt="tiff")
            for n in ("a", "b", "c")]


def _project(folder: Path, slides: list[Path]) -> str:
    """A project with three labelled slides and one finished run whose checkpoint holds a file."""
    with Project.create(folder) as p:
        p.classes.set(CLASSES)
        for s in slides:
            p.slides.add(s)
        p.labels.set_many({"a": "LUAD", "b": "LUSC", "c": "LUAD"})
        run = p.runs.create("pathpt", "demo", {})
        (run.checkpoint / "checkpoint.json").write_text("{}")
        p.runs.set_status(run.run_id, "done")
        return run.run_id


# ---- §6 projects move ------------------------------------------------------------------------------------------
def test_checkpoint_paths_are_stored_relative_and_follow_a_moved_project(tmp_path, slides):
    run_id = _project(tmp_path / "old", slides)
    con = sqlite3.connect(tmp_path / "old" / DB_NAME)
    assert con.execute("SELECT checkpoint FROM runs").fetchone()[0] == f"runs/{run_id}"
    con.close()
    shutil.move(str(tmp_path / "old"), str(tmp_path / "new"))
    with Project.open(tmp_path / "new") as p:
        ck = p.runs.get(run_id).checkpoint
        assert ck == tmp_path.resolve() / "new" / "runs" / run_id and (ck / "checkpoint.json").is_file()
        assert p.missing_files == []


def test_a_copy_never_uses_the_originals_checkpoint(tmp_path, slides):
    run_id = _project(tmp_path / "orig", slides)
    # an older project stored absolute paths: make the original look like one
    con = sqlite3.connect(tmp_path / "orig" / DB_NAME)
    con.execute("UPDATE runs SET checkpoint=?", (str((tmp_path / "orig" / "runs" / run_id).resolve()),))
    con.commit()
    con.close()
    shutil.copytree(tmp_path / "orig", tmp_path / "copy")
    shutil.rmtree(tmp_path / "copy" / "runs" / run_id)
    with Project.open(tmp_path / "copy") as p:
        ck = p.runs.get(run_id).checkpoint
        assert ck == (tmp_path / "copy" / "runs" / run_id).resolve() and not ck.exists()
        assert len(p.missing_files) == 1 and run_id in p.missing_files[0] and "missing" in p.missing_files[0]
    con = sqlite3.connect(tmp_path / "copy" / DB_NAME)
    con.execute("UPDATE runs SET checkpoint=?", (str(tmp_path / "elsewhere" / "ckpt"),))
    con.commit()
    con.close()
    with Project.open(tmp_path / "copy") as p:
        assert p.runs.get(run_id).checkpoint is None
        assert "outside this project" in p.missing_files[0]


# ---- §5 read-only and damaged databases ------------------------------------------------------------------------
def test_a_read_only_project_opens_read_only_and_says_so(tmp_path, slides, monkeypatch):
    import pathpt_engine.project.db as dbmod

    _project(tmp_path / "p", slides)
    db_file = tmp_path / "p" / DB_NAME
    before = db_file.read_bytes()
    monkeypatch.setattr(dbmod, "is_writable", lambda path: False)  # tests run as root: chmod cannot stop root
    with Project.open(tmp_path / "p") as p:
        assert p.read_only and len(p.slides.ids()) == 3 and p.labels.get("a").label == "LUAD"
        with pytest.raises(ProjectError, match="read-only"):
            p.labels.set("a", "LUSC")
    assert db_file.read_bytes() == before


_corrupt_table = corrupt_table


def test_a_damaged_database_is_detected_without_writing_and_recovered_into_a_copy(tmp_path, slides):
    from pathpt_engine.project.repair import integrity_problems, recover_copy

    run_id = _project(tmp_path / "p", slides)
    db_file = tmp_path / "p" / DB_NAME
    _corrupt_table(db_file, "labels")
    digest = hashlib.sha256(db_file.read_bytes()).hexdigest()
    with pytest.raises(ProjectDamaged, match="damaged") as exc:
        Project.open(tmp_path / "p")
    assert exc.value.db_path == db_file.resolve() and exc.value.problems
    assert integrity_problems(db_file)
    report = recover_copy(db_file)
    assert report.path.parent == db_file.parent and report.path != db_file
    assert report.rows["slides"] == 3 and report.rows["runs"] == 1 and report.rows["classes"] == 3
    assert any(t.startswith("labels") for t in report.lost)
    with Project.open(tmp_path / "p", db_name=report.path.name) as p:
        assert sorted(p.slides.ids()) == ["a", "b", "c"] and p.runs.get(run_id).status == "done"
        p.labels.set("a", "LUSC")  # the recovered copy is a working project
    assert integrity_problems(report.path) == []
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == digest  # the damaged file was never written


def test_reads_that_hit_a_damaged_page_are_project_errors(tmp_path, slides):
    _project(tmp_path / "p", slides)
    db_file = tmp_path / "p" / DB_NAME
    with Project.open(tmp_path / "p") as p:
        _corrupt_table(db_file, "labels")
        with pytest.raises(ProjectError, match="damaged|database error"):
            p.labels.all()


# ---- §3 labels CSVs -------------------------------------------------------------------------------------------
def test_import_refuses_conflicting_labels_naming_the_lines(tmp_path, slides):
    _project(tmp_path / "p", slides)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("slide_id,label\na,LUAD\nb,LUSC\nc,LUAD\na,LUSC\n")
    with Project.open(tmp_path / "p") as p:
        p.labels.clear()
        with pytest.raises(ConfigError, match=r"'a' has two different labels.*line 2.*line 5"):
            p.labels.import_csv(csv_file)
        assert p.labels.all() == {}
        csv_file.write_text("slide_id,label\na,LUAD\nb,LUSC\nc,LUAD\na,Adenocarcinoma\n")  # same class twice
        assert p.labels.import_csv(csv_file).applied == 3


@pytest.mark.parametrize("encoding", ["latin-1", "utf-16", "utf-8-sig"])
def test_import_reads_latin1_and_utf16(tmp_path, slides, encoding):
    _project(tmp_path / "p", slides)
    csv_file = tmp_path / "labels.csv"
    csv_file.write_bytes("slide_id,label\r\na,LUSC\r\nb,LUAD\r\nzé,LUAD\r\n".encode(encoding))
    with Project.open(tmp_path / "p") as p:
        report = p.labels.import_csv(csv_file)
        assert report.applied == 2 and report.unknown_slides == [(4, "zé")]
        assert p.labels.get("a").label == "LUSC"
