"""The project's class set (`pathpt_engine.prompts.classsets.ClassSet`: names, display names, synonyms,
colours, Normal = class 0, templates) stored in the `classes`/`templates` tables (default colours:
`pathpt_engine.colors`)."""

from __future__ import annotations

import json

from ..errors import ConfigError
from ..prompts.classsets import ClassInfo, ClassSet
from .db import Database


class ClassStore:
    """Reads and replaces the project's class set (one transaction per replacement)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def set(self, class_set: ClassSet) -> None:
        """Replace the whole class set. Labels naming a class no longer present are kept and listed by
        `LabelStore.orphans()`."""
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM classes")
            conn.execute("DELETE FROM templates")
            conn.executemany(
                "INSERT INTO classes(idx, name, display_name, is_normal, color, synonyms) VALUES (?,?,?,?,?,?)",
                [(i, c.name, c.display_name, int(c.normal), c.color, json.dumps(list(c.synonyms)))
                 for i, c in enumerate(class_set.classes)])
            conn.executemany("INSERT INTO templates(idx, text) VALUES (?,?)", list(enumerate(class_set.templates)))
            conn.executemany("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                             [("classset.name", class_set.name), ("classset.description", class_set.description)])

    def get(self) -> ClassSet | None:
        """The stored class set, or None when none was set yet."""
        rows = self._db.query("SELECT * FROM classes ORDER BY idx")
        if not rows:
            return None
        classes = []
        for r in rows:
            try:
                synonyms = tuple(json.loads(r["synonyms"]))
            except (json.JSONDecodeError, TypeError) as exc:
                raise ConfigError(f"{self._db.path}: class {r['name']!r} has corrupt synonyms") from exc
            classes.append(ClassInfo(r["name"], r["display_name"], synonyms, r["color"], bool(r["is_normal"])))
        templates = tuple(r[0] for r in self._db.query("SELECT text FROM templates ORDER BY idx"))
        meta = {r[0]: r[1] for r in self._db.query("SELECT key, value FROM meta WHERE key LIKE 'classset.%'")}
        try:
            return ClassSet(meta.get("classset.name", ""), meta.get("classset.description", ""), tuple(classes),
                            templates)
        except ValueError as exc:
            raise ConfigError(f"{self._db.path}: stored class set is invalid ({exc})") from exc

    def names(self) -> tuple[str, ...]:
        return tuple(r[0] for r in self._db.query("SELECT name FROM classes ORDER BY idx"))

    def colors(self) -> dict[str, str]:
        """Class name -> "#rrggbb" of the stored class set (empty when none is set)."""
        return {r[0]: r[1] for r in self._db.query("SELECT name, color FROM classes ORDER BY idx")}
