"""Training/prediction runs of a project, their per-slide predictions, and active-learning suggestions."""

from __future__ import annotations

import builtins
import json
import logging
import math
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ProjectError
from ..results import SlidePrediction
from .db import Database, now_iso
from .runlock import RunOwnerLock, owner_alive

log = logging.getLogger(__name__)
STATUSES = ("running", "done", "failed", "cancelled", "interrupted")
INTERRUPTED_MESSAGE = "interrupted: the app stopped while this run was in progress (nothing was saved)"


@dataclass(frozen=True)
class RunRecord:
    """One run: `settings` is the JSON-decoded settings dict; `checkpoint` a folder path or None.

    The database stores the checkpoint folder relative to the project (`runs/<run_id>`), so a moved or copied
    project uses its own; `checkpoint` is that path resolved inside this project, or None when the stored path
    points outside it (a project never silently uses another copy's files).
    """

    run_id: str
    created: str
    recipe: str
    backbone: str
    settings: dict[str, Any]
    status: str
    checkpoint: Path | None
    message: str
    finished: str | None


@dataclass(frozen=True)
class PredictionRecord:
    run_id: str
    slide_id: str
    predicted: str
    probs: dict[str, float]
    uncertainty: float


def margin_uncertainty(probs: Mapping[str, float]) -> float:
    """1 - (top1 - top2) over the slide's class scores: 0 = certain, 1 = a tie (1 - p for one class)."""
    vals = sorted((float(v) for v in probs.values()), reverse=True)
    if not vals:
        raise ValueError("empty probability map")
    second = vals[1] if len(vals) > 1 else 0.0
    return 1.0 - (vals[0] - second)


def resolve_in_project(root: Path, stored: str | None, run_id: str) -> Path | None:
    """A stored checkpoint path as a path inside the project `root` (None if it is outside).

    Relative paths are relative to the project. Absolute ones (older projects) inside `root` are kept; one whose
    tail is `runs/<run_id>/...` is taken from this project's `runs/` (the project was moved or copied).
    """
    if not stored:
        return None
    p = Path(stored)
    if not p.is_absolute():
        p = root / p
        return p if _inside(p, root) else None
    if _inside(p, root):
        return p
    parts = p.parts
    for i in range(len(parts) - 1):
        if parts[i] == "runs" and parts[i + 1] == run_id:
            return root.joinpath(*parts[i:])
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


class RunStore:
    """Runs, predictions and suggestions of one project; `runs_dir` holds one folder per run."""

    def __init__(self, db: Database, runs_dir: Path) -> None:
        self._db = db
        self._runs_dir = runs_dir
        self._root = runs_dir.parent
        self._locks: dict[str, RunOwnerLock] = {}

    def create(self, recipe: str, backbone: str, settings: Mapping[str, Any] | None = None) -> RunRecord:
        """Start a run in status `running`, with a fresh id and folder `runs/<run_id>/` for its checkpoint."""
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{uuid.uuid4().hex[:6]}"
        try:
            settings_json = json.dumps(dict(settings or {}), sort_keys=True)
        except TypeError as exc:
            raise ProjectError(f"run settings are not JSON-serialisable: {exc}") from exc
        folder = self._runs_dir / run_id
        folder.mkdir(parents=True, exist_ok=False)
        self._locks[run_id] = RunOwnerLock(folder)
        with self._db.transaction() as conn:
            conn.execute("INSERT INTO runs(run_id, created, recipe, backbone, settings, status, checkpoint) "
                         "VALUES (?,?,?,?,?,?,?)",
                         (run_id, now_iso(), recipe, backbone, settings_json, "running", self._stored(folder)))
        return self.get(run_id)

    def get(self, run_id: str) -> RunRecord:
        row = self._db.query_one("SELECT * FROM runs WHERE run_id=?", (run_id,))
        if row is None:
            raise ProjectError(f"{self._db.path}: no run {run_id!r} in this project")
        return self._record(row)

    def list(self) -> list[RunRecord]:
        """All runs, newest first."""
        return [self._record(r) for r in self._db.query("SELECT * FROM runs ORDER BY created DESC, run_id DESC")]

    def _record(self, row: sqlite3.Row) -> RunRecord:
        return RunRecord(row["run_id"], row["created"], row["recipe"], row["backbone"], json.loads(row["settings"]),
                         row["status"], resolve_in_project(self._root, row["checkpoint"], row["run_id"]),
                         row["message"], row["finished"])

    def _stored(self, folder: str | Path) -> str:
        """What the database keeps for a checkpoint folder: relative to the project when inside it."""
        p = Path(folder)
        try:
            return p.resolve().relative_to(self._root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def missing_files(self) -> builtins.list[str]:
        """One line per finished run whose folder is missing from this project or stored outside it."""
        out = []
        for row in self._db.query("SELECT run_id, checkpoint FROM runs WHERE status='done'"):
            folder = resolve_in_project(self._root, row["checkpoint"], row["run_id"])
            if row["checkpoint"] and folder is None:
                out.append(f"run {row['run_id']}: its checkpoint {row['checkpoint']} is outside this project; "
                           "not used")
            elif folder is not None and not folder.is_dir():
                out.append(f"run {row['run_id']}: folder {folder} is missing from this project")
        return out

    def set_status(self, run_id: str, status: str, message: str = "", checkpoint: str | Path | None = None) -> None:
        """Record a run's status (and optionally its checkpoint folder); terminal statuses stamp `finished`."""
        if status not in STATUSES:
            raise ProjectError(f"run status must be one of {STATUSES}, got {status!r}")
        self.get(run_id)
        finished = now_iso() if status != "running" else None
        with self._db.transaction() as conn:
            conn.execute("UPDATE runs SET status=?, message=?, finished=? WHERE run_id=?",
                         (status, message, finished, run_id))
            if checkpoint is not None:
                conn.execute("UPDATE runs SET checkpoint=? WHERE run_id=?", (self._stored(checkpoint), run_id))
        if status != "running" and run_id in self._locks:
            self._locks.pop(run_id).release()

    def recover_interrupted(self) -> builtins.list[str]:
        """Mark `running` runs whose owner process is gone as `interrupted`; returns their ids.

        Called when a project is opened: a run left `running` by a killed app would otherwise look alive
        forever. Runs owned by this process or by another live process are left alone.
        """
        stale = []
        for row in self._db.query("SELECT run_id, checkpoint FROM runs WHERE status='running'"):
            run_id = row["run_id"]
            folder = resolve_in_project(self._root, row["checkpoint"], run_id) or self._runs_dir / run_id
            if run_id in self._locks or owner_alive(folder):
                continue
            self.set_status(run_id, "interrupted", INTERRUPTED_MESSAGE)
            (folder / ".running.lock").unlink(missing_ok=True)
            stale.append(run_id)
        if stale:
            log.warning("%s: %d run(s) were interrupted by an earlier crash: %s", self._db.path, len(stale),
                        ", ".join(stale))
        return stale

    def release_all(self) -> None:
        """Drop this process's run locks (the project is closing)."""
        for lock in self._locks.values():
            lock.release()
        self._locks.clear()

    def delete(self, run_id: str) -> None:
        """Delete a run row and its predictions (its folder on disk is kept)."""
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM runs WHERE run_id=?", (run_id,)).rowcount == 0:
                raise ProjectError(f"{self._db.path}: no run {run_id!r} to delete")

    # ---- predictions ---------------------------------------------------------------------------------------
    def add_predictions(self, run_id: str, preds: Iterable[SlidePrediction],
                        uncertainty: Mapping[str, float] | None = None) -> int:
        """Store (replace) slide predictions of a run in one transaction; returns how many were stored.

        Uncertainty defaults to `margin_uncertainty(probs)` unless given per slide_id.
        """
        self.get(run_id)
        rows = []
        for p in preds:
            u = uncertainty.get(p.slide_id) if uncertainty else None
            u = margin_uncertainty(p.probs) if u is None else float(u)
            if not math.isfinite(u):
                raise ProjectError(f"run {run_id}: uncertainty of {p.slide_id} is not finite")
            rows.append((run_id, p.slide_id, p.predicted, json.dumps({k: float(v) for k, v in p.probs.items()}), u))
        with self._db.transaction() as conn:
            known = {r[0] for r in conn.execute("SELECT slide_id FROM slides")}
            unknown = [r[1] for r in rows if r[1] not in known]
            if unknown:
                raise ProjectError(f"{self._db.path}: predictions for slides not in the project: {unknown[:5]}")
            conn.executemany("INSERT OR REPLACE INTO predictions VALUES (?,?,?,?,?)", rows)
        return len(rows)

    def predictions(self, run_id: str) -> dict[str, PredictionRecord]:
        rows = self._db.query("SELECT * FROM predictions WHERE run_id=? ORDER BY slide_id", (run_id,))
        return {r["slide_id"]: PredictionRecord(r["run_id"], r["slide_id"], r["predicted"], json.loads(r["probs"]),
                                                r["uncertainty"]) for r in rows}

    def suggest_next_slide(self, run_id: str) -> str | None:
        """The unlabelled slide this run is least certain about (highest uncertainty), or None."""
        self.get(run_id)
        row = self._db.query_one(
            "SELECT p.slide_id FROM predictions p WHERE p.run_id=? "
            "AND p.slide_id NOT IN (SELECT slide_id FROM labels) "
            "ORDER BY p.uncertainty DESC, p.slide_id ASC LIMIT 1", (run_id,))
        return row[0] if row else None
