"""The project database: one SQLite file in WAL mode, a schema version table and ordered migrations.

Every change runs in its own `BEGIN IMMEDIATE ... COMMIT` transaction with `synchronous=FULL`, so a process
killed at any moment keeps every committed change and never leaves a half-applied one. One connection is shared
by all threads behind a re-entrant lock (the GUI thread and the worker thread both call in); a second process
may open the same project, and writers then wait up to `busy_timeout` for each other.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..atomic import atomic_path
from ..errors import ProjectDamaged, ProjectError

log = logging.getLogger(__name__)

DB_NAME = "project.sqlite"
APP_ID = "pathpt-studio"

# Ordered migrations: (version, statements). Never edit a released entry; append a new one.
MIGRATIONS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (1, (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE slides (
            slide_id TEXT PRIMARY KEY, path TEXT NOT NULL, width INTEGER, height INTEGER,
            mpp_x REAL, mpp_y REAL, quickhash TEXT, format TEXT, added TEXT NOT NULL)""",
        """CREATE TABLE classes (
            idx INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
            is_normal INTEGER NOT NULL, color TEXT NOT NULL, synonyms TEXT NOT NULL)""",
        "CREATE TABLE templates (idx INTEGER PRIMARY KEY, text TEXT NOT NULL)",
        """CREATE TABLE labels (
            slide_id TEXT PRIMARY KEY REFERENCES slides(slide_id) ON DELETE CASCADE,
            label TEXT, split TEXT, updated TEXT NOT NULL)""",
        """CREATE TABLE label_ops (
            op_id INTEGER PRIMARY KEY AUTOINCREMENT, description TEXT NOT NULL,
            undone INTEGER NOT NULL DEFAULT 0, created TEXT NOT NULL)""",
        """CREATE TABLE label_op_items (
            op_id INTEGER NOT NULL REFERENCES label_ops(op_id) ON DELETE CASCADE, slide_id TEXT NOT NULL,
            old_label TEXT, old_split TEXT, new_label TEXT, new_split TEXT)""",
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, created TEXT NOT NULL, recipe TEXT NOT NULL, backbone TEXT NOT NULL,
            settings TEXT NOT NULL, status TEXT NOT NULL, checkpoint TEXT, message TEXT NOT NULL DEFAULT '',
            finished TEXT)""",
        """CREATE TABLE predictions (
            run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
            slide_id TEXT NOT NULL REFERENCES slides(slide_id) ON DELETE CASCADE,
            predicted TEXT NOT NULL, probs TEXT NOT NULL, uncertainty REAL NOT NULL,
            PRIMARY KEY (run_id, slide_id))""",
    )),
    (2, (  # annotated regions and tile corrections (project/annotations.py)
        """CREATE TABLE regions (
            region_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
            slide_id TEXT NOT NULL REFERENCES slides(slide_id) ON DELETE CASCADE,
            class_name TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL DEFAULT '', geometry TEXT NOT NULL,
            created TEXT NOT NULL, updated TEXT NOT NULL)""",
        "CREATE INDEX regions_by_slide ON regions(slide_id, seq)",
        """CREATE TABLE tile_corrections (
            slide_id TEXT NOT NULL REFERENCES slides(slide_id) ON DELETE CASCADE,
            x INTEGER NOT NULL, y INTEGER NOT NULL, class_name TEXT NOT NULL, updated TEXT NOT NULL,
            PRIMARY KEY (slide_id, x, y))""",
    )),
)
SCHEMA_VERSION = MIGRATIONS[-1][0]


def now_iso() -> str:
    """Current UTC time as an ISO-8601 string (seconds precision)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Database:
    """A locked, transactional SQLite connection to one project file.

    Use `Database.create(path)` for a new file and `Database.open(path)` for an existing one.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self.read_only_reason = "the file or its folder cannot be written"  # callers may say why it is
        self._conn = conn
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False

    # ---- opening -------------------------------------------------------------------------------------------
    @staticmethod
    def _connect(path: Path, read_only: bool = False) -> sqlite3.Connection:
        if read_only:
            conn = connect_read_only(path)
        else:
            conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    @classmethod
    def create(cls, path: Path) -> Database:
        """Create a fresh database at `path` atomically (built under a temp name, then renamed)."""
        if path.exists():
            raise ProjectError(f"{path}: a project database already exists here; open it instead")
        with atomic_path(path, fsync=True) as tmp:
            conn = cls._connect(tmp)
            try:
                db = cls(tmp, conn)
                with db.transaction():
                    db._migrate_from(0)
                    conn.execute("INSERT INTO meta(key, value) VALUES ('app', ?), ('created', ?)",
                                 (APP_ID, now_iso()))
            finally:
                conn.close()
        return cls.open(path)

    @classmethod
    def open(cls, path: Path, read_only: bool | None = None) -> Database:
        """Open an existing project database, applying pending migrations.

        A file or folder this process cannot write is opened read-only (`read_only=None` decides; every change
        then raises a "read-only" ProjectError). A SQLite file that fails `PRAGMA quick_check` raises
        `ProjectDamaged` before anything is written to it.

        Raises:
            ProjectError: the file is missing, not SQLite, not a PathPT project, or from a newer schema.
        """
        if not path.is_file():
            raise ProjectError(f"{path.parent}: not a PathPT project folder (no {path.name}); create a project first")
        read_only = not is_writable(path) if read_only is None else read_only
        problems = integrity_problems(path, quick=True)
        if problems:
            raise ProjectDamaged(f"{path}: the project database is damaged ({problems[0]}); it was not changed",
                                 path, problems)
        try:
            conn = cls._connect(path, read_only)
            if not read_only:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise ProjectError(f"{path}: not a readable SQLite database ({exc})") from exc
        db = cls(path, conn, read_only)
        try:
            db._check_identity(tables)
            version = db.schema_version()
            if version > SCHEMA_VERSION:
                raise ProjectError(f"{path}: project schema v{version} is newer than this PathPT Studio "
                                   f"(v{SCHEMA_VERSION}); upgrade the app to open it")
            if version < SCHEMA_VERSION and read_only:
                raise ProjectError(f"{path}: the project is read-only and needs an upgrade to schema "
                                   f"v{SCHEMA_VERSION}; copy the project folder somewhere writable to open it")
            if version < SCHEMA_VERSION:
                with db.transaction():
                    db._migrate_from(version)
                log.info("%s: migrated project schema v%d -> v%d", path, version, SCHEMA_VERSION)
        except BaseException:
            conn.close()
            raise
        return db

    def _check_identity(self, tables: set[str]) -> None:
        if "schema_migrations" not in tables or "meta" not in tables:
            raise ProjectError(f"{self.path}: not a PathPT project database (no schema_migrations table)")
        row = self._conn.execute("SELECT value FROM meta WHERE key='app'").fetchone()
        if row is None or row[0] != APP_ID:
            raise ProjectError(f"{self.path}: database belongs to another application, not PathPT Studio")

    def schema_version(self) -> int:
        """The highest applied migration version (0 for an empty database)."""
        with self._lock:
            row = self._conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    def _migrate_from(self, version: int) -> None:
        self._conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                           "applied TEXT NOT NULL)")
        for v, statements in MIGRATIONS:
            if v <= version:
                continue
            for sql in statements:
                self._conn.execute(sql)
            self._conn.execute("INSERT INTO schema_migrations(version, applied) VALUES (?, ?)", (v, now_iso()))

    # ---- use -----------------------------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the body in one immediate transaction (nested calls join the outer one)."""
        with self._lock:
            self._check_open()
            if self.read_only:
                raise ProjectError(f"{self.path}: the project is read-only ({self.read_only_reason}), so this "
                                   "change cannot be saved")
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self._conn
            except sqlite3.Error as exc:
                self._rollback()
                raise ProjectError(f"{self.path}: database error: {exc}") from exc
            except BaseException:
                self._rollback()
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def _check_open(self) -> None:
        if self._closed:
            raise ProjectError(f"{self.path}: the project is closed; open it again")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read query under the lock and return all rows."""
        with self._lock, self._errors():
            self._check_open()
            return self._conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        """Run a read query under the lock and return the first row or None."""
        with self._lock, self._errors():
            self._check_open()
            return self._conn.execute(sql, params).fetchone()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A read that hits a damaged page (or any SQLite error) reaches the caller as a ProjectError."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            if "malformed" in str(exc) or "corrupt" in str(exc):
                raise ProjectDamaged(f"{self.path}: the project database is damaged ({exc})", self.path,
                                     [str(exc)]) from exc
            raise ProjectError(f"{self.path}: database error: {exc}") from exc

    def close(self) -> None:
        """Checkpoint the WAL into the main file and close the connection (a second close does nothing)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if not self.read_only:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # another process may hold the database; the WAL stays valid
                log.debug("%s: WAL checkpoint skipped: %s", self.path, exc)
            self._conn.close()


def is_writable(path: Path) -> bool:
    """Whether this process can write the database file and its folder (WAL needs both)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write `path` (`mode=ro`; `immutable=1` where a read-only folder blocks that)."""
    uri = Path(path).resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:  # a WAL database in a folder we cannot write: no -shm can be made
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None, check_same_thread=False)


def integrity_problems(path: Path, quick: bool = False) -> list[str]:
    """What SQLite's integrity check reports for a SQLite file ([] when it is fine or not SQLite at all).

    Reads through a read-only connection, so the (possibly damaged) file is never written.
    """
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\0":
                return []  # not SQLite: `Database.open` says so
    except OSError:
        return []
    try:
        conn = connect_read_only(path)
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    try:
        rows = conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check").fetchall()
        problems = [str(r[0]) for r in rows]
    except sqlite3.DatabaseError as exc:
        problems = [str(exc)]
    finally:
        conn.close()
    return [] if problems == ["ok"] else problems
