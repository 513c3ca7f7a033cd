"""A PathPT project: a folder with `project.sqlite` and subfolders for feature caches, runs and exports.

    with Project.create("~/cohort") as proj:
        proj.classes.set(ClassSet(...))
        proj.slides.add("slide1.svs")
        proj.labels.set("slide1", "LUAD")
        run = proj.runs.create("pathpt", "keep", {"shots": 5})

Qt-free and thread-safe (one shared connection behind a lock); every call commits before it returns.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from .annotations import AnnotationStore
from .classes import ClassStore
from .db import DB_NAME, Database
from .labels import LabelStore
from .runs import RunStore
from .slides import Opener, SlideStore

log = logging.getLogger(__name__)
SUBFOLDERS = ("features", "runs", "exports")
_SAFE = re.compile(r"^[A-Za-z0-9._-]+$")


class Project:
    """An open project. Use `Project.create(folder)` or `Project.open(folder)`; close it (or use `with`)."""

    def __init__(self, root: Path, db: Database, opener: Opener | None = None) -> None:
        self.root = root
        self._db = db
        self.slides = SlideStore(db, opener)
        self.classes = ClassStore(db)
        self.labels = LabelStore(db)
        self.annotations = AnnotationStore(db)  # regions + tile corrections
        self.runs = RunStore(db, root / "runs")
        self.interrupted_runs: list[str] = []  # runs an earlier crash left `running`, marked when opened
        self.missing_files: list[str] = []  # files the project refers to that are not inside it (checked on open)

    @classmethod
    def create(cls, folder: str | Path, opener: Opener | None = None) -> Project:
        """Make `folder` (may exist; must not hold a project) into a new project and open it."""
        root = Path(folder).expanduser().resolve()
        if root.exists() and not root.is_dir():
            raise ProjectError(f"{root}: exists and is not a folder")
        if (root / DB_NAME).exists():
            raise ProjectError(f"{root}: already a PathPT project; open it instead")
        try:
            root.mkdir(parents=True, exist_ok=True)
            for sub in SUBFOLDERS:
                (root / sub).mkdir(exist_ok=True)
        except OSError as exc:
            raise ProjectError(f"{root}: cannot create project folder ({exc})") from exc
        db = Database.create(root / DB_NAME)
        return cls(root, db, opener)

    @classmethod
    def open(cls, folder: str | Path, opener: Opener | None = None, db_name: str = DB_NAME,
             read_only: bool | None = None) -> Project:
        """Open an existing project folder (migrating an older schema).

        Args:
            db_name: the database file in `folder` (e.g. a recovered copy made by `repair.recover_copy`).
            read_only: open without writing anything; None: read-only exactly when the database or its folder
                cannot be written (then every change raises a "read-only" ProjectError).

        Raises:
            ProjectDamaged: the database fails SQLite's integrity check (nothing is written to it).
            ProjectError: not a project folder, a foreign or unreadable database, or a newer schema.
        """
        root = Path(folder).expanduser().resolve()
        if not root.is_dir():
            raise ProjectError(f"{root}: no such project folder")
        db = Database.open(root / db_name, read_only)
        project = cls(root, db, opener)
        try:
            if not db.read_only:
                for sub in SUBFOLDERS:
                    (root / sub).mkdir(exist_ok=True)
                project.interrupted_runs = project.runs.recover_interrupted()
            project.missing_files = project.runs.missing_files()
        except BaseException:
            db.close()
            raise
        if project.missing_files:
            log.warning("%s: %d referenced file(s) not found inside the project: %s", root,
                        len(project.missing_files), "; ".join(project.missing_files[:3]))
        return project

    @property
    def read_only(self) -> bool:
        """True when the project was opened read-only (nothing can be changed or saved)."""
        return self._db.read_only

    def set_read_only(self, reason: str) -> None:
        """Refuse every later change, saying `reason` (e.g. another app instance took the project over)."""
        self._db.read_only = True
        self._db.read_only_reason = reason

    @property
    def db_path(self) -> Path:
        return self._db.path

    @property
    def schema_version(self) -> int:
        return self._db.schema_version()

    # ---- folders -------------------------------------------------------------------------------------------
    def features_dir(self, backbone: str) -> Path:
        """`features/<backbone>/` (created on demand)."""
        return self._subdir("features", backbone)

    def run_dir(self, run_id: str) -> Path:
        return self._subdir("runs", run_id)

    @property
    def exports_dir(self) -> Path:
        return self.root / "exports"

    def _subdir(self, parent: str, name: str) -> Path:
        if not _SAFE.match(name) or name in (".", ".."):
            raise ProjectError(f"{self.root}: {name!r} is not a safe folder name (letters, digits, . _ -)")
        d = self.root / parent / name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def suggest_next_slide(self, run_id: str) -> str | None:
        """The unlabelled slide run `run_id` is least certain about (see `RunStore.suggest_next_slide`)."""
        return self.runs.suggest_next_slide(run_id)

    # ---- settings ------------------------------------------------------------------------------------------
    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under `key` (committed at once)."""
        try:
            text = json.dumps(value)
        except TypeError as exc:
            raise ProjectError(f"{self.root}: setting {key!r} is not JSON-serialisable ({exc})") from exc
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO settings(key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, text))

    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self._db.query_one("SELECT value FROM settings WHERE key=?", (key,))
        return json.loads(row[0]) if row else default

    def delete_setting(self, key: str) -> None:
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM settings WHERE key=?", (key,))

    def settings(self) -> dict[str, Any]:
        return {r[0]: json.loads(r[1]) for r in self._db.query("SELECT key, value FROM settings ORDER BY key")}

    # ---- lifetime ------------------------------------------------------------------------------------------
    def close(self) -> None:
        self.runs.release_all()
        self._db.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
