"""Salvage a damaged project database into a new file beside it; the damaged file is only ever read.

    problems = integrity_problems(db_path)            # PRAGMA integrity_check, through a read-only connection
    report = recover_copy(db_path)                    # project.recovered-<stamp>.sqlite in the same folder
    Project.open(folder, db_name=report.path.name)    # open the recovered copy

Every table is copied row by row in the schema's order; rows on a damaged page are skipped (probing the rowids
past it), and rows that lost what they refer to (a label whose slide was lost) are dropped so the copy is
consistent. The report says how many rows each table kept and which tables could not be read at all.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ..errors import ProjectError
from .db import Database, connect_read_only, integrity_problems

log = logging.getLogger(__name__)

__all__ = ["RecoveryReport", "integrity_problems", "recover_copy"]

# Copy order: referenced tables first. `meta` keeps the fresh file's identity rows; `schema_migrations` is fresh.
TABLES = ("meta", "settings", "slides", "classes", "templates", "labels", "label_ops", "label_op_items", "runs",
          "predictions")
ORPHANS = (
    "DELETE FROM labels WHERE slide_id NOT IN (SELECT slide_id FROM slides)",
    "DELETE FROM label_op_items WHERE op_id NOT IN (SELECT op_id FROM label_ops)",
    "DELETE FROM predictions WHERE run_id NOT IN (SELECT run_id FROM runs) "
    "OR slide_id NOT IN (SELECT slide_id FROM slides)",
)
PROBE = 2000  # rowids tried past a damaged page when the table's largest rowid cannot be read


@dataclass
class RecoveryReport:
    """Where the recovered copy is, rows kept per table, and tables (or parts) that could not be read."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)

    def summary(self) -> str:
        kept = ", ".join(f"{t} {n}" for t, n in self.rows.items() if n)
        lost = f"; could not read: {', '.join(self.lost)}" if self.lost else ""
        return f"recovered copy {self.path.name}: rows kept: {kept or 'none'}{lost}"


def recover_copy(damaged: str | Path) -> RecoveryReport:
    """Build `project.recovered-<UTC stamp>.sqlite` next to `damaged` from whatever rows can still be read.

    Raises:
        ProjectError: the damaged file cannot be opened at all, or the folder cannot be written.
    """
    src_path = Path(damaged)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    dest = src_path.with_name(f"{src_path.stem}.recovered-{stamp}.sqlite")
    n = 1
    while dest.exists():
        n += 1
        dest = src_path.with_name(f"{src_path.stem}.recovered-{stamp}-{n}.sqlite")
    try:
        src = connect_read_only(src_path)
    except sqlite3.DatabaseError as exc:
        raise ProjectError(f"{src_path}: cannot open the damaged database even to read it ({exc})") from exc
    report = RecoveryReport(dest)
    try:
        db = Database.create(dest)
        try:
            with db.transaction() as conn:
                conn.execute("PRAGMA defer_foreign_keys = ON")
                for table in TABLES:
                    rows = _read_rows(src, table, report)
                    report.rows[table] = _insert(conn, table, rows)
                for sql in ORPHANS:
                    conn.execute(sql)
        finally:
            db.close()
    except ProjectError:
        dest.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    log.warning("%s: %s", src_path, report.summary())
    return report


def _read_rows(src: sqlite3.Connection, table: str, report: RecoveryReport) -> list[tuple]:
    rows: list[tuple] = []
    last = 0
    try:
        for row in src.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid"):  # noqa: S608 (fixed names)
            rows.append(tuple(row))
            last = int(row[0])
        return rows
    except sqlite3.DatabaseError as exc:
        report.lost.append(f"{table} (part: {exc})")
    try:
        top = int(src.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0)  # noqa: S608
    except sqlite3.DatabaseError:
        top = last + PROBE
    for rid in range(last + 1, top + 1):
        try:
            row = src.execute(f"SELECT rowid, * FROM {table} WHERE rowid=?", (rid,)).fetchone()  # noqa: S608
        except sqlite3.DatabaseError:
            continue
        if row is not None:
            rows.append(tuple(row))
    return rows


def _insert(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> int:
    if not rows:
        return 0
    cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    marks = ",".join("?" * (len(cols) + 1))
    sql = f"INSERT OR IGNORE INTO {table}(rowid, {', '.join(cols)}) VALUES ({marks})"  # noqa: S608
    kept = 0
    for row in rows:
        if len(row) != len(cols) + 1:
            continue
        try:
            kept += conn.execute(sql, row).rowcount
        except sqlite3.DatabaseError:  # a row that breaks a constraint of the fresh schema
            continue
    return kept
