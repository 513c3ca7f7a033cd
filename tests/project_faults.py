"""Damage made to a project database by the tests that check recovery (engine and GUI)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path


def _pattern(size: int) -> bytes:
    return bytes(range(7, 250)) * (size // 243) + b"\x07" * (size % 243)


def corrupt_table(db_file: Path, table: str, fill: Callable[[int], bytes] = _pattern) -> None:
    """Overwrite the root page of `table` with `fill(page_size)`: one damaged page, the rest of the file intact."""
    con = sqlite3.connect(db_file)
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (table,)).fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with db_file.open("r+b") as fh:
        fh.seek((page - 1) * size)
        fh.write(fill(size))
