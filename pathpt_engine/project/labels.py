"""Slide labels (subtype + train/held-out split) with a persisted undo/redo history.

Every label change is one operation in the `label_ops` table with its before/after values, written in the same
transaction as the change itself, so undo/redo survive a restart and a crash. A new change clears the redo side;
the history keeps the last `HISTORY_LIMIT` operations.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..atomic import atomic_path
from ..errors import ConfigError, ProjectError
from .db import Database, now_iso

SPLITS = ("train", "heldout")
HISTORY_LIMIT = 500

State = tuple[str | None, str | None]  # (label, split); (None, None) = unlabelled
# undo (True): the latest live operation, its items newest first, back to their old states, then marked undone;
# redo (False): the earliest undone operation, its items oldest first, to their new states, then marked live again.
_REPLAY: dict[bool, tuple[str, str, tuple[str, str], int]] = {
    True: ("SELECT * FROM label_ops WHERE undone=0 ORDER BY op_id DESC LIMIT 1",
           "SELECT * FROM label_op_items WHERE op_id=? ORDER BY rowid DESC", ("old_label", "old_split"), 1),
    False: ("SELECT * FROM label_ops WHERE undone=1 ORDER BY op_id ASC LIMIT 1",
            "SELECT * FROM label_op_items WHERE op_id=? ORDER BY rowid ASC", ("new_label", "new_split"), 0),
}


@dataclass(frozen=True)
class Label:
    slide_id: str
    label: str
    split: str


@dataclass
class LabelImportReport:
    """CSV import outcome: rows applied, unknown slide ids and unknown class names (with CSV line numbers)."""

    applied: int = 0
    unknown_slides: list[tuple[int, str]] = field(default_factory=list)
    unknown_classes: list[tuple[int, str]] = field(default_factory=list)


class LabelStore:
    """Labels of one project, validated against its slides and class set."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- reading -------------------------------------------------------------------------------------------
    def get(self, slide_id: str) -> Label | None:
        row = self._db.query_one("SELECT * FROM labels WHERE slide_id=?", (slide_id,))
        return Label(row["slide_id"], row["label"], row["split"]) if row else None

    def all(self) -> dict[str, Label]:
        rows = self._db.query("SELECT * FROM labels ORDER BY slide_id")
        return {r["slide_id"]: Label(r["slide_id"], r["label"], r["split"]) for r in rows}

    def unlabelled(self) -> list[str]:
        rows = self._db.query("SELECT slide_id FROM slides WHERE slide_id NOT IN (SELECT slide_id FROM labels) "
                              "ORDER BY slide_id")
        return [r[0] for r in rows]

    def orphans(self) -> list[Label]:
        """Labels naming a class that is no longer in the class set."""
        rows = self._db.query("SELECT * FROM labels WHERE label NOT IN (SELECT name FROM classes)")
        return [Label(r["slide_id"], r["label"], r["split"]) for r in rows]

    # ---- changing ------------------------------------------------------------------------------------------
    def set(self, slide_id: str, label: str, split: str = "train") -> None:
        """Label one slide (one undoable operation)."""
        self.set_many({slide_id: label}, split, description=f"label {slide_id} as {label}")

    def set_many(self, labels: Mapping[str, str], split: str = "train", description: str = "") -> None:
        """Label several slides as one undoable operation."""
        self._check_split(split)
        allowed = self._allowed_labels()
        known = set(self._slide_ids())
        for sid, lab in labels.items():
            if sid not in known:
                raise ProjectError(f"{self._db.path}: no slide {sid!r} in this project")
            if _resolve(allowed, lab) is None:
                raise ConfigError(f"{self._db.path}: {lab!r} is not a subtype class of this project "
                                  f"(choose one of {sorted(set(allowed.values()))})")
        self._apply([(sid, (_resolve(allowed, lab), split)) for sid, lab in labels.items()],
                    description or f"label {len(labels)} slides")

    def set_split(self, slide_id: str, split: str) -> None:
        """Move a labelled slide to the train or held-out split (undoable)."""
        self._check_split(split)
        cur = self.get(slide_id)
        if cur is None:
            raise ProjectError(f"{self._db.path}: slide {slide_id!r} has no label; label it before choosing a split")
        self._apply([(slide_id, (cur.label, split))], f"move {slide_id} to {split}")

    def clear(self, slide_ids: Iterable[str] | None = None) -> None:
        """Remove the labels of `slide_ids` (all labels when None) as one undoable operation."""
        ids = list(self.all()) if slide_ids is None else list(slide_ids)
        self._apply([(sid, (None, None)) for sid in ids], f"clear {len(ids)} labels")

    def import_csv(self, path: str | Path, split: str = "train") -> LabelImportReport:
        """Apply labels from a CSV `slide_id,label[,split]` (header optional) as one undoable operation.

        Rows naming an unknown slide or class are skipped and listed in the report.

        Raises:
            ConfigError: the file is missing, unreadable, or a row has fewer than two columns.
        """
        self._check_split(split)
        rows = _read_label_csv(Path(path))
        allowed, known = self._allowed_labels(), set(self._slide_ids())
        report = LabelImportReport()
        changes: dict[str, State] = {}
        first: dict[str, int] = {}
        for line, sid, lab, row_split in rows:
            if sid not in known:
                report.unknown_slides.append((line, sid))
            elif _resolve(allowed, lab) is None:
                report.unknown_classes.append((line, lab))
            elif row_split and row_split not in SPLITS:
                raise ConfigError(f"{path}: line {line}: split {row_split!r} is not one of {SPLITS}")
            else:
                state = (_resolve(allowed, lab), row_split or split)
                if changes.setdefault(sid, state) != state:
                    old = changes[sid]
                    raise ConfigError(f"{path}: slide {sid!r} has two different labels: {old[0]} ({old[1]}) on "
                                      f"line {first[sid]} and {state[0]} ({state[1]}) on line {line}; keep one")
                first.setdefault(sid, line)
        self._apply(list(changes.items()), f"import labels from {Path(path).name}")
        report.applied = len(changes)
        return report

    def export_csv(self, path: str | Path) -> Path:
        """Write all labels as `slide_id,label,split` (readable by `import_csv`), atomically."""
        path = Path(path)
        try:
            with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["slide_id", "label", "split"])
                w.writerows([lab.slide_id, lab.label, lab.split] for lab in self.all().values())
        except OSError as exc:
            raise ProjectError(f"{path}: cannot write labels CSV ({exc})") from exc
        return path

    # ---- undo / redo ---------------------------------------------------------------------------------------
    def can_undo(self) -> bool:
        return self._db.query_one("SELECT 1 FROM label_ops WHERE undone=0 LIMIT 1") is not None

    def can_redo(self) -> bool:
        return self._db.query_one("SELECT 1 FROM label_ops WHERE undone=1 LIMIT 1") is not None

    def undo(self) -> str | None:
        """Revert the latest operation; returns its description, or None when there is nothing to undo."""
        return self._replay(undo=True)

    def redo(self) -> str | None:
        """Re-apply the earliest undone operation; returns its description, or None."""
        return self._replay(undo=False)

    # ---- internals -----------------------------------------------------------------------------------------
    def _apply(self, changes: list[tuple[str, State]], description: str) -> None:
        with self._db.transaction() as conn:
            items = []
            for sid, new in changes:
                row = conn.execute("SELECT label, split FROM labels WHERE slide_id=?", (sid,)).fetchone()
                old: State = (row["label"], row["split"]) if row else (None, None)
                if old != new:
                    _write(conn, sid, new)
                    items.append((sid, old, new))
            if not items:
                return
            conn.execute("DELETE FROM label_ops WHERE undone=1")
            op_id = conn.execute("INSERT INTO label_ops(description, created) VALUES (?, ?)",
                                 (description, now_iso())).lastrowid
            if op_id is None:  # an INSERT always has one; this only narrows the type
                raise ProjectError(f"{self._db.path}: label history: the new operation has no id")
            conn.executemany("INSERT INTO label_op_items VALUES (?,?,?,?,?,?)",
                             [(op_id, sid, *old, *new) for sid, old, new in items])
            conn.execute("DELETE FROM label_ops WHERE op_id <= ?", (op_id - HISTORY_LIMIT,))

    def _replay(self, undo: bool) -> str | None:
        """Undo the latest live operation or redo the earliest undone one (see `_REPLAY`); returns its description."""
        find_op, find_items, (label, split), flag = _REPLAY[undo]
        with self._db.transaction() as conn:
            op = conn.execute(find_op).fetchone()
            if op is None:
                return None
            for it in conn.execute(find_items, (op["op_id"],)).fetchall():
                _write(conn, it["slide_id"], (it[label], it[split]))
            conn.execute("UPDATE label_ops SET undone=? WHERE op_id=?", (flag, op["op_id"]))
            return str(op["description"])

    def _allowed_labels(self) -> dict[str, str]:
        """Accepted spellings (name, display name, and their lower case) -> subtype class name."""
        rows = self._db.query("SELECT name, display_name, is_normal FROM classes ORDER BY idx DESC")
        if not rows:
            raise ConfigError(f"{self._db.path}: the project has no classes yet; set a class set before labelling")
        out: dict[str, str] = {}
        for r in rows:
            if not r["is_normal"]:
                for key in (r["display_name"].lower(), r["name"].lower(), r["display_name"], r["name"]):
                    out[key] = r["name"]
        return out

    def _slide_ids(self) -> list[str]:
        return [r[0] for r in self._db.query("SELECT slide_id FROM slides")]

    @staticmethod
    def _check_split(split: str) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")


def _resolve(allowed: Mapping[str, str], label: str) -> str | None:
    return allowed.get(label) or allowed.get(label.strip().lower())


def _write(conn: sqlite3.Connection, slide_id: str, state: State) -> None:
    if state == (None, None):
        conn.execute("DELETE FROM labels WHERE slide_id=?", (slide_id,))
    elif conn.execute("SELECT 1 FROM slides WHERE slide_id=?", (slide_id,)).fetchone() is not None:
        conn.execute("INSERT INTO labels(slide_id, label, split, updated) VALUES (?,?,?,?) "
                     "ON CONFLICT(slide_id) DO UPDATE SET label=excluded.label, split=excluded.split, "
                     "updated=excluded.updated", (slide_id, state[0], state[1], now_iso()))


def _read_label_csv(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, slide_id, label, split-or-"") rows of a labels CSV; a `slide_id,label` header is skipped."""
    from ..textfile import read_user_text

    try:
        raw = list(csv.reader(io.StringIO(read_user_text(path, "labels CSV"), newline="")))
    except csv.Error as exc:
        raise ConfigError(f"{path}: cannot read labels CSV ({exc})") from exc
    out = []
    for line, row in enumerate(raw, start=1):
        cells = [c.strip() for c in row]
        if not any(cells):
            continue
        if len(cells) < 2:
            raise ConfigError(f"{path}: line {line}: expected 'slide_id,label', got {row!r}")
        if line == 1 and cells[0].lower() == "slide_id" and cells[1].lower() == "label":
            continue
        out.append((line, cells[0], cells[1], cells[2] if len(cells) > 2 else ""))
    return out
