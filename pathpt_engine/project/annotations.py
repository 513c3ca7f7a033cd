"""A project's annotated regions and tile corrections (level-0 pixels), in the project database.

Every call is one committed transaction, so a process killed at any moment keeps every edit that returned and
never stores half of one. A region is validated before it is written (`annotations.geometry.validate`): a broken
outline is repaired when that cannot move it, or refused with a message, never stored broken.

Tables (db.py migration 2): `regions` (one row per region; `seq` keeps the drawing order, which breaks coverage ties)
and `tile_corrections` (one row per corrected tile, keyed by its top-left corner).
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Iterable

from ..annotations.geometry import Geometry, validate
from ..annotations.regions import Region
from ..errors import ProjectError
from .db import Database, now_iso


class AnnotationStore:
    """Regions and tile corrections of every slide of one project."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # ---- regions -------------------------------------------------------------------------------------------
    def add(self, region: Region, seq: int | None = None) -> tuple[Region, list[str]]:
        """Validate and store a new region; returns (the stored region, repairs made).

        Raises:
            InvalidRegion: the outline cannot be stored (nothing is written).
            ProjectError: unknown slide or a region id already stored.
        """
        stored, notes = self._checked(region)
        self.add_many([stored], seq)
        return stored, notes

    def add_many(self, regions: Iterable[Region], seq: int | None = None, replace_slide: str | None = None) -> int:
        """Validate and store regions in ONE transaction (all or nothing); optionally first delete every region
        of `replace_slide`. Returns how many were stored."""
        rows = [self._checked(r)[0] for r in regions]
        with self._db.transaction() as conn:
            if replace_slide is not None:
                conn.execute("DELETE FROM regions WHERE slide_id=?", (replace_slide,))
            nxt = seq if seq is not None else self._next_seq(conn)
            for i, r in enumerate(rows):
                self._check_slide(conn, r.slide_id)
                if conn.execute("SELECT 1 FROM regions WHERE region_id=?", (r.region_id,)).fetchone():
                    raise ProjectError(f"{self._db.path}: region {r.region_id} is already stored")
                t = now_iso()
                conn.execute("INSERT INTO regions(region_id, seq, slide_id, class_name, kind, name, geometry, "
                             "created, updated) VALUES (?,?,?,?,?,?,?,?,?)",
                             (r.region_id, nxt + i, r.slide_id, r.class_name, r.kind, r.name,
                              json.dumps(r.geometry.to_lists()), t, t))
        return len(rows)

    def update(self, region: Region) -> tuple[Region, list[str]]:
        """Replace a stored region's outline, class and name (validated first); returns (stored, repairs)."""
        stored, notes = self._checked(region)
        with self._db.transaction() as conn:
            cur = conn.execute("UPDATE regions SET class_name=?, kind=?, name=?, geometry=?, updated=? "
                               "WHERE region_id=?", (stored.class_name, stored.kind, stored.name,
                                                     json.dumps(stored.geometry.to_lists()), now_iso(),
                                                     stored.region_id))
            if cur.rowcount != 1:
                raise ProjectError(f"{self._db.path}: no region {region.region_id} to update")
        return stored, notes

    def delete(self, region_id: str) -> tuple[Region, int]:
        """Remove a region; returns it with its drawing position (to put it back on undo)."""
        with self._db.transaction() as conn:
            row = conn.execute("SELECT * FROM regions WHERE region_id=?", (region_id,)).fetchone()
            if row is None:
                raise ProjectError(f"{self._db.path}: no region {region_id} to delete")
            conn.execute("DELETE FROM regions WHERE region_id=?", (region_id,))
        return self._region(row), int(row["seq"])

    def get(self, region_id: str) -> Region | None:
        row = self._db.query_one("SELECT * FROM regions WHERE region_id=?", (region_id,))
        return self._region(row) if row else None

    def list(self, slide_id: str | None = None) -> list[Region]:
        """Regions of one slide (or all), in drawing order."""
        if slide_id is None:
            rows = self._db.query("SELECT * FROM regions ORDER BY seq")
        else:
            rows = self._db.query("SELECT * FROM regions WHERE slide_id=? ORDER BY seq", (slide_id,))
        return [self._region(r) for r in rows]

    def slides(self) -> builtins.list[str]:
        """Slides with at least one region or tile correction."""
        rows = self._db.query("SELECT slide_id FROM regions UNION SELECT slide_id FROM tile_corrections "
                              "ORDER BY slide_id")
        return [r[0] for r in rows]

    # ---- tile corrections ----------------------------------------------------------------------------------
    def set_tile(self, slide_id: str, x: int, y: int, class_name: str | None) -> str | None:
        """Set (or with None clear) the correction of the tile whose top-left corner is (x, y); returns the
        previous correction (for undo)."""
        with self._db.transaction() as conn:
            self._check_slide(conn, slide_id)
            row = conn.execute("SELECT class_name FROM tile_corrections WHERE slide_id=? AND x=? AND y=?",
                               (slide_id, int(x), int(y))).fetchone()
            if class_name is None:
                conn.execute("DELETE FROM tile_corrections WHERE slide_id=? AND x=? AND y=?",
                             (slide_id, int(x), int(y)))
            else:
                conn.execute("INSERT INTO tile_corrections(slide_id, x, y, class_name, updated) VALUES (?,?,?,?,?) "
                             "ON CONFLICT(slide_id, x, y) DO UPDATE SET class_name=excluded.class_name, "
                             "updated=excluded.updated", (slide_id, int(x), int(y), class_name, now_iso()))
        return row[0] if row else None

    def tile_corrections(self, slide_id: str) -> dict[tuple[int, int], str]:
        rows = self._db.query("SELECT x, y, class_name FROM tile_corrections WHERE slide_id=?", (slide_id,))
        return {(int(r[0]), int(r[1])): str(r[2]) for r in rows}

    # ---- helpers -------------------------------------------------------------------------------------------
    @staticmethod
    def _checked(region: Region) -> tuple[Region, builtins.list[str]]:
        geom, notes = validate(region.geometry, f"region {region.name or region.region_id[:8]}")
        return region.with_geometry(geom), notes

    def _check_slide(self, conn: sqlite3.Connection, slide_id: str) -> None:
        if conn.execute("SELECT 1 FROM slides WHERE slide_id=?", (slide_id,)).fetchone() is None:
            raise ProjectError(f"{self._db.path}: no slide {slide_id!r} in this project")

    @staticmethod
    def _next_seq(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM regions").fetchone()[0])

    def _region(self, row: sqlite3.Row) -> Region:
        try:
            geom = Geometry.from_lists(json.loads(row["geometry"]))
        except (ValueError, TypeError, IndexError) as exc:
            raise ProjectError(f"{self._db.path}: region {row['region_id']} has a corrupt outline ({exc})") from None
        return Region(row["slide_id"], row["class_name"], geom, row["kind"], row["name"], row["region_id"])
