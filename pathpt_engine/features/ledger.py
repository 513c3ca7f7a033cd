"""`extract-ledger.jsonl`: one JSON line per slide result, appended by the driver, read by `--status` and the GUI.

Statuses: `done`, `skipped` (output already valid), `failed` (the slide or its output is bad; not retried),
`retry` (its worker died; the slide goes back in the queue), `crashed` (its worker died on every attempt) and
`timeout` (it ran past the limit). The latest line of a slide is its state. Lines are appended with one write
each and flushed; a torn last line (power loss) is ignored on reading.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

LEDGER_NAME = "extract-ledger.jsonl"
STATUSES = ("done", "skipped", "failed", "retry", "crashed", "timeout")
FINAL = ("done", "skipped", "failed", "crashed", "timeout")


def ledger_path(out_dir: str | Path) -> Path:
    """The ledger of an output folder."""
    return Path(out_dir) / LEDGER_NAME


@dataclass(frozen=True)
class LedgerEntry:
    """One slide result."""

    slide: str
    status: str
    backbone: str = ""
    path: str = ""
    reason: str = ""
    n_tiles: int = 0
    seconds: float = 0.0
    attempt: int = 1
    run: str = ""
    time: float = 0.0
    extra: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"LedgerEntry: unknown status {self.status!r}; use one of {', '.join(STATUSES)}")

    def to_json(self) -> str:
        record = {k: v for k, v in self.__dict__.items() if k != "extra"}
        record.update(self.extra or {})
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LedgerEntry:
        names = set(cls.__dataclass_fields__) - {"extra"}
        known = {k: record[k] for k in names if k in record}
        return cls(**known, extra={k: v for k, v in record.items() if k not in names} or None)


class Ledger:
    """Appends entries to `OUT/extract-ledger.jsonl` (or `name`; one writer: the driver, under the run lock)."""

    def __init__(self, out_dir: str | Path, run: str = "", name: str = LEDGER_NAME) -> None:
        self.path = Path(out_dir) / name
        self.run = run or time.strftime("%Y%m%dT%H%M%S")

    def append(self, entry: LedgerEntry) -> LedgerEntry:
        """Write one line (stamped with this run and the time) and flush it to disk."""
        entry = LedgerEntry(**{**entry.__dict__, "run": self.run, "time": round(time.time(), 3)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(entry.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        return entry


def read_ledger(path: str | Path) -> Iterator[LedgerEntry]:
    """Every entry of a ledger file, oldest first (a torn or foreign line is skipped with a warning).

    Raises:
        ConfigError: the file does not exist or cannot be read.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the extraction ledger ({exc})") from exc
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield LedgerEntry.from_record(json.loads(line))
        except (ValueError, TypeError) as exc:
            log.warning("%s:%d: unreadable ledger line skipped (%s)", path, i, exc)


def latest(entries: Iterator[LedgerEntry] | list[LedgerEntry]) -> dict[tuple[str, str], LedgerEntry]:
    """The latest entry per (backbone, slide)."""
    state: dict[tuple[str, str], LedgerEntry] = {}
    for e in entries:
        state[(e.backbone, e.slide)] = e
    return state


def status_lines(out_dir: str | Path) -> list[str]:
    """Human-readable state of an output folder: counts per status, then every slide that is not done."""
    state = latest(read_ledger(ledger_path(out_dir)))
    counts = Counter(e.status for e in state.values())
    head = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "no slides"
    lines = [f"{ledger_path(out_dir)}: {len(state)} slides: {head}"]
    for (backbone, slide), e in sorted(state.items()):
        if e.status not in ("done", "skipped"):
            lines.append(f"  {backbone}/{slide}: {e.status} (attempt {e.attempt}) {e.reason}".rstrip())
    return lines
