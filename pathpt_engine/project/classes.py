"""The project's class set: class names, synonyms, colours, which class is Normal, and prompt templates."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from .db import Database

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")

# Deterministic default palette (tab10-like, then tab20 extras); Normal gets grey.
DEFAULT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                   "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2")
NORMAL_COLOR = "#7f7f7f"


def default_colors(names: Sequence[str], normal: str | None = None) -> dict[str, str]:
    """Colours by position: the Normal class grey, the others from `DEFAULT_PALETTE` in order (cycled)."""
    out: dict[str, str] = {}
    k = 0
    for name in names:
        if name == normal:
            out[name] = NORMAL_COLOR
        else:
            out[name] = DEFAULT_PALETTE[k % len(DEFAULT_PALETTE)]
            k += 1
    return out


@dataclass(frozen=True)
class ClassSpec:
    """One class: display name, prompt synonyms, "#rrggbb" colour, and whether it is the Normal class."""

    name: str
    synonyms: tuple[str, ...] = ()
    color: str = ""
    is_normal: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("class name must not be empty")
        if self.color and not _HEX.match(self.color):
            raise ValueError(f"class {self.name!r}: colour must be '#rrggbb', got {self.color!r}")


@dataclass(frozen=True)
class ClassSet:
    """Ordered classes (Normal first when present) and prompt templates (each containing "{}")."""

    classes: tuple[ClassSpec, ...]
    templates: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in {names}")
        if sum(c.is_normal for c in self.classes) > 1:
            raise ValueError("at most one class may be the Normal class")
        for t in self.templates:
            if "{}" not in t:
                raise ValueError(f"template {t!r} has no '{{}}' placeholder for the class name")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def normal(self) -> str | None:
        return next((c.name for c in self.classes if c.is_normal), None)

    @property
    def subtypes(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes if not c.is_normal)

    def colors(self) -> dict[str, str]:
        """name -> colour, filling unset colours from the default palette."""
        fallback = default_colors(self.names, self.normal)
        return {c.name: c.color or fallback[c.name] for c in self.classes}


class ClassStore:
    """Reads and replaces the project's class set (one transaction per replacement)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, class_set: ClassSet) -> None:
        """Replace the whole class set. Labels naming a class no longer present are kept but reported by
        `LabelStore.orphans()`."""
        colors = class_set.colors()
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM classes")
            conn.execute("DELETE FROM templates")
            conn.executemany("INSERT INTO classes(idx, name, is_normal, color, synonyms) VALUES (?,?,?,?,?)",
                             [(i, c.name, int(c.is_normal), colors[c.name], json.dumps(list(c.synonyms)))
                              for i, c in enumerate(class_set.classes)])
            conn.executemany("INSERT INTO templates(idx, text) VALUES (?,?)", list(enumerate(class_set.templates)))

    def get(self) -> ClassSet:
        """The stored class set (empty when none was set)."""
        rows = self._db.query("SELECT * FROM classes ORDER BY idx")
        specs = []
        for r in rows:
            try:
                synonyms = tuple(json.loads(r["synonyms"]))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ConfigError(f"{self._db.path}: class {r['name']!r} has corrupt synonyms") from exc
            specs.append(ClassSpec(r["name"], synonyms, r["color"], bool(r["is_normal"])))
        templates = tuple(r[0] for r in self._db.query("SELECT text FROM templates ORDER BY idx"))
        return ClassSet(tuple(specs), templates)

    def names(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self._db.query("SELECT name FROM classes ORDER BY idx"))
