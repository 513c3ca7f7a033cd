"""Slides of a project: add (one file or a folder), remove, list, and relink slides whose files moved."""

from __future__ import annotations

import builtins
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProjectError, SlideError
from ..jobs import Job, Progress, check_cancel
from ..slides.base import SlideReader
from ..slides.discover import SLIDE_EXTENSIONS, discover_slides  # every extension OpenSlide reads
from .db import Database, now_iso

log = logging.getLogger(__name__)

Opener = Callable[[Path], SlideReader]


def default_opener(path: Path) -> SlideReader:
    """Open a slide with the engine's reader (imported lazily)."""
    from ..slides import open_slide

    return open_slide(path)


@dataclass(frozen=True)
class SlideRecord:
    """One slide row. Sizes are level-0 pixels; mpp is level-0 microns per pixel (None when unknown)."""

    slide_id: str
    path: Path
    width: int
    height: int
    mpp: tuple[float, float] | None
    quickhash: str
    format: str
    added: str

    @property
    def exists(self) -> bool:
        return self.path.exists()


@dataclass
class AddReport:
    """Outcome of adding a folder: ids added, paths already in the project, (path, reason) failures, and
    (path, reason) for files that are not slides (or are part of another slide: DICOM instances)."""

    added: list[str] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class RelinkReport:
    """Outcome of a relink: slide_id -> new path, and ids still missing."""

    relinked: dict[str, Path] = field(default_factory=dict)
    still_missing: list[str] = field(default_factory=list)


def _record(row: sqlite3.Row) -> SlideRecord:
    mpp = (row["mpp_x"], row["mpp_y"]) if row["mpp_x"] is not None else None
    return SlideRecord(row["slide_id"], Path(row["path"]), row["width"], row["height"], mpp,
                       row["quickhash"], row["format"], row["added"])


def find_slide_files(folder: Path, extensions: Iterable[str] = SLIDE_EXTENSIONS) -> list[Path]:
    """Slide files under `folder` (recursive), sorted, hidden files skipped (see `find_slides`)."""
    return find_slides(folder, extensions)[0]


def find_slides(folder: Path, extensions: Iterable[str] = SLIDE_EXTENSIONS) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(slides, skipped files with the reason) under `folder`: one path per slide (a DICOM folder or an MRXS
    with its data folder is one slide; `pathpt_engine.slides.discover`)."""
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    if not folder.is_dir():
        raise ProjectError(f"{folder}: not a folder")
    found = discover_slides(folder)
    keep = [p for p in found.slides if p.suffix.lower() in exts or (".dcm" in exts and p.suffix.lower() not in
                                                                     SLIDE_EXTENSIONS)]
    skipped = found.skipped + [(p, f"extension {p.suffix} not asked for") for p in found.slides if p not in keep]
    return keep, skipped


class SlideStore:
    """Slide rows of one project. Thread-safe through the shared `Database` lock."""

    def __init__(self, db: Database, opener: Opener | None = None) -> None:
        self._db = db
        self._open = opener or default_opener

    def list(self) -> list[SlideRecord]:
        """All slides ordered by slide_id."""
        return [_record(r) for r in self._db.query("SELECT * FROM slides ORDER BY slide_id")]

    def get(self, slide_id: str) -> SlideRecord:
        """The slide `slide_id`; raises ProjectError when unknown."""
        row = self._db.query_one("SELECT * FROM slides WHERE slide_id=?", (slide_id,))
        if row is None:
            raise ProjectError(f"{self._db.path}: no slide {slide_id!r} in this project")
        return _record(row)

    def ids(self) -> builtins.list[str]:
        return [r[0] for r in self._db.query("SELECT slide_id FROM slides ORDER BY slide_id")]

    def add(self, path: str | Path, slide_id: str | None = None) -> SlideRecord:
        """Open `path`, read its size, mpp and quickhash, and add it.

        Raises:
            SlideError: the file cannot be opened as a slide.
            ProjectError: the slide_id or path is already in the project.
        """
        path = Path(path).resolve()
        sid = slide_id or path.stem
        with self._open(path) as reader:
            w, h = reader.dimensions
            mpp, qh, fmt = reader.mpp, reader.quickhash, reader.format
        with self._db.transaction() as conn:
            clash = conn.execute("SELECT slide_id, path FROM slides WHERE slide_id=? OR path=?",
                                 (sid, str(path))).fetchone()
            if clash is not None:
                raise ProjectError(f"{path}: already in the project as slide {clash['slide_id']!r} "
                                   f"({clash['path']})")
            conn.execute("INSERT INTO slides VALUES (?,?,?,?,?,?,?,?,?)",
                         (sid, str(path), int(w), int(h), mpp[0] if mpp else None, mpp[1] if mpp else None,
                          qh, fmt, now_iso()))
        log.info("added slide %s (%s)", sid, path)
        return self.get(sid)

    def add_folder(self, folder: str | Path, extensions: Iterable[str] = SLIDE_EXTENSIONS,
                   cancel: threading.Event | None = None) -> Job[AddReport]:
        """Job: add every slide file under `folder` (recursive). Bad files are reported, not fatal."""
        files, skipped = find_slides(Path(folder), extensions)
        known = {str(r.path) for r in self.list()}
        report = AddReport(skipped=skipped)
        for i, p in enumerate(files):
            check_cancel(cancel)
            if str(p.resolve()) in known:
                report.already.append(p)
            else:
                try:
                    report.added.append(self.add(p).slide_id)
                except (SlideError, ProjectError) as exc:
                    report.failed.append((p, str(exc)))
            yield Progress("add slides", i + 1, len(files), message=p.name)
        return report

    def set_mpp(self, slide_id: str, mpp: float) -> SlideRecord:
        """Store the level-0 µm/px the user gave for a slide whose file states none (or an implausible one).

        Raises:
            ProjectError: unknown slide, or a value outside the plausible 0.05-20 µm/px.
        """
        from ..slides.reader import MPP_PLAUSIBLE, plausible_mpp

        if not plausible_mpp(float(mpp)):
            raise ProjectError(f"pixel size {mpp} µm/px for slide {slide_id!r} is outside the plausible "
                               f"{MPP_PLAUSIBLE[0]:g}-{MPP_PLAUSIBLE[1]:g} µm/px")
        self.get(slide_id)
        with self._db.transaction() as conn:
            conn.execute("UPDATE slides SET mpp_x=?, mpp_y=? WHERE slide_id=?", (float(mpp), float(mpp), slide_id))
        return self.get(slide_id)

    def remove(self, slide_id: str) -> None:
        """Remove a slide with its label and predictions (the file on disk is untouched)."""
        with self._db.transaction() as conn:
            if conn.execute("DELETE FROM slides WHERE slide_id=?", (slide_id,)).rowcount == 0:
                raise ProjectError(f"{self._db.path}: no slide {slide_id!r} to remove")

    def missing(self) -> builtins.list[SlideRecord]:
        """Slides whose file no longer exists at the stored path."""
        return [r for r in self.list() if not r.exists]

    def set_path(self, slide_id: str, new_path: str | Path, check_hash: bool = True) -> SlideRecord:
        """Point `slide_id` at `new_path`, refusing a file whose quickhash differs (when `check_hash`)."""
        rec = self.get(slide_id)
        new_path = Path(new_path).resolve()
        if check_hash and rec.quickhash and self._hash(new_path) != rec.quickhash:
            raise ProjectError(f"{new_path}: content differs from slide {slide_id!r} (quickhash mismatch)")
        with self._db.transaction() as conn:
            conn.execute("UPDATE slides SET path=? WHERE slide_id=?", (str(new_path), slide_id))
        return self.get(slide_id)

    def relink(self, folder: str | Path, by_hash: bool = True,
               cancel: threading.Event | None = None) -> Job[RelinkReport]:
        """Job: find missing slides under `folder`, by file name (hash-checked) then by quickhash alone."""
        missing = self.missing()
        candidates = find_slide_files(Path(folder)) if missing else []
        by_name: dict[str, builtins.list[Path]] = {}
        for p in candidates:
            by_name.setdefault(p.name, []).append(p)
        hashes: dict[Path, str | None] = {}
        report = RelinkReport()
        for i, rec in enumerate(missing):
            check_cancel(cancel)
            found = self._match(rec, by_name.get(rec.path.name, []), hashes, check=True)
            if found is None and by_hash and rec.quickhash:
                found = self._match(rec, [p for p in candidates if p.name != rec.path.name], hashes, check=True)
            if found is None:
                report.still_missing.append(rec.slide_id)
            else:
                with self._db.transaction() as conn:
                    conn.execute("UPDATE slides SET path=? WHERE slide_id=?", (str(found), rec.slide_id))
                report.relinked[rec.slide_id] = found
            yield Progress("relink", i + 1, len(missing), message=rec.slide_id)
        return report

    def _match(self, rec: SlideRecord, paths: builtins.list[Path], hashes: dict[Path, str | None],
               check: bool) -> Path | None:
        for p in paths:
            if not check or not rec.quickhash:
                return p.resolve()
            if p not in hashes:
                try:
                    hashes[p] = self._hash(p)
                except SlideError as exc:
                    log.warning("relink: cannot open %s: %s", p, exc)
                    hashes[p] = None
            if hashes[p] == rec.quickhash:
                return p.resolve()
        return None

    def _hash(self, path: Path) -> str:
        with self._open(path) as reader:
            return reader.quickhash
