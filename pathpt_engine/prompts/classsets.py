"""Class sets: class names, synonyms, colours and prompt templates, stored as JSON.

File format::

    {"name": "ucs", "description": "...",
     "classes": [{"name": "Normal", "display_name": "Normal", "synonyms": ["normal uterus tissue", ...],
                  "color": "#3caa50", "normal": true}, ...],
     "templates": ["CLASSNAME.", "an image of CLASSNAME.", ...]}

Class 0 is the Normal class (``"normal": true``); classes 1.. are the subtypes. Zero-shot prompts are every
synonym x every template; the learnable prompt uses only the first synonym. Shipped sets live in
``resources/classsets/<name>.json`` and are found with `load_classset("ucs")`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..assets import resource_path
from ..atomic import write_text_atomic
from ..errors import ConfigError

PLACEHOLDER = "CLASSNAME"
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _check_text(value: object, what: str) -> None:
    """A name, synonym or template must be a real string without NUL or control characters."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a text string, got {type(value).__name__} {value!r}")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError(f"{what} {value!r} contains a NUL or control character")


@dataclass(frozen=True)
class ClassInfo:
    """One class: machine name, display name, synonyms (first = learnable-prompt name), colour, Normal flag."""

    name: str
    display_name: str
    synonyms: tuple[str, ...]
    color: str
    normal: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("class name must be non-empty")
        for what, text in (("name", self.name), ("display name", self.display_name), *(
                ("synonym", t) for t in self.synonyms)):
            _check_text(text, f"class {self.name!r}: {what}")
        if not self.synonyms or not all(isinstance(s, str) and s.strip() for s in self.synonyms):
            raise ValueError(f"class {self.name!r}: synonyms must be a non-empty list of non-empty strings")
        if not _COLOR.match(self.color):
            raise ValueError(f"class {self.name!r}: color must be #rrggbb, got {self.color!r}")


@dataclass(frozen=True)
class ClassSet:
    """A named list of classes (class 0 = Normal) with prompt templates."""

    name: str
    description: str
    classes: tuple[ClassInfo, ...]
    templates: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.classes) < 3:
            raise ValueError("a class set needs Normal plus at least 2 subtypes")
        if not self.classes[0].normal or any(c.normal for c in self.classes[1:]):
            raise ValueError("class 0 (and only class 0) must be marked \"normal\": true")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in {names}")
        for t in self.templates:
            _check_text(t, "template")
        if not self.templates or not all(PLACEHOLDER in t for t in self.templates):
            raise ValueError(f"templates must be non-empty and each contain {PLACEHOLDER}")

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def subtype_names(self) -> tuple[str, ...]:
        return self.class_names[1:]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def prompts(self, index: int) -> list[str]:
        """All zero-shot prompts of class `index` (synonyms x templates, synonym-major order)."""
        return [t.replace(PLACEHOLDER, s) for s in self.classes[index].synonyms for t in self.templates]

    def learnable_names(self) -> list[str]:
        """The first synonym of each class (what the learnable prompt appends after the context)."""
        return [c.synonyms[0] for c in self.classes]

    def subtype_index(self, label: str | int) -> int:
        """0-based subtype index from a subtype name, display name or 0-based int (or its string)."""
        key = str(label).strip()
        if re.fullmatch(r"-?\d+(\.0*)?", key):
            i = int(float(key))
            if 0 <= i < self.n_classes - 1:
                return i
            raise ValueError(f"label {label} out of range 0..{self.n_classes - 2}")
        for i, c in enumerate(self.classes[1:]):
            if key in (c.name, c.display_name):
                return i
        for i, c in enumerate(self.classes[1:]):
            if key.lower() in (c.name.lower(), c.display_name.lower()):
                return i
        raise ValueError(f"unknown subtype {label!r}; known: {', '.join(self.subtype_names)}")

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "classes": [
                {"name": c.name, "display_name": c.display_name, "synonyms": list(c.synonyms), "color": c.color,
                 **({"normal": True} if c.normal else {})}
                for c in self.classes
            ],
            "templates": list(self.templates),
        }


def classset_from_dict(data: object, source: str = "<dict>") -> ClassSet:
    """Validate and build a ClassSet; raises ConfigError naming `source`."""
    try:
        if not isinstance(data, dict):
            raise ValueError("top level must be a JSON object")
        missing = [k for k in ("name", "classes", "templates") if k not in data]
        if missing:
            raise ValueError(f"missing key(s) {missing}")
        if not isinstance(data["classes"], list) or not isinstance(data["templates"], list):
            raise ValueError("'classes' and 'templates' must be lists")
        classes = []
        for i, c in enumerate(data["classes"]):
            if not isinstance(c, dict) or "name" not in c or "synonyms" not in c:
                raise ValueError(f"class #{i} needs 'name' and 'synonyms'")
            if not isinstance(c["synonyms"], list):
                raise ValueError(f"class {c['name']!r}: 'synonyms' must be a list")
            _check_text(c["name"], f"class #{i}: name")
            classes.append(ClassInfo(name=c["name"], display_name=c["display_name"] if "display_name" in c else c["name"],
                                     synonyms=tuple(c["synonyms"]), color=str(c.get("color", "#808080")),
                                     normal=bool(c.get("normal", False))))
        _check_text(data["name"], "class set name")
        return ClassSet(name=data["name"], description=str(data.get("description", "")),
                        classes=tuple(classes), templates=tuple(data["templates"]))
    except ValueError as exc:
        raise ConfigError(f"{source}: invalid class set: {exc}") from None


def list_classsets() -> list[str]:
    """Names of the shipped class sets."""
    folder = resource_path("classsets")
    return sorted(p.stem for p in folder.glob("*.json"))


def load_classset(path_or_name: str | os.PathLike[str]) -> ClassSet:
    """Load a class set from a JSON file path or a shipped name (e.g. "ucs", "synthetic")."""
    path = Path(path_or_name)
    if not path.is_file():
        name = str(path_or_name).lower().removesuffix(".json")
        if path.suffix == ".json" or os.sep in str(path_or_name) or name not in list_classsets():
            raise ConfigError(f"{path_or_name}: class set file not found and not a shipped set "
                              f"(shipped: {', '.join(list_classsets())})")
        path = resource_path("classsets", f"{name}.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read class set JSON: {exc}") from None
    return classset_from_dict(data, str(path))


def save_classset(classset: ClassSet, path: str | os.PathLike[str]) -> Path:
    """Write a class set as JSON atomically."""
    path = Path(path)
    text = json.dumps(classset.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return write_text_atomic(path, text)


def synth_classset(n_subtypes: int | None = None) -> ClassSet:
    """The class set of a synthetic cohort, built from `pathpt_engine.synth.subtypes.SUBTYPES`."""
    from ..synth.subtypes import DEFAULT_SUBTYPES, cohort_classes

    k = DEFAULT_SUBTYPES if n_subtypes is None else n_subtypes
    kinds = cohort_classes(k)
    classes = tuple(
        ClassInfo(name=s.name, display_name=s.display, synonyms=tuple(s.synonyms),
                  color="#{:02x}{:02x}{:02x}".format(*s.color), normal=(s.index == 0))
        for s in kinds
    )
    ref = load_classset("ucs").templates
    return ClassSet(name="synthetic" if n_subtypes is None else f"synthetic{k}",
                    description=f"Synthetic cohort (pathpt_engine.synth): normal + {k} SYNTHETIC subtypes; not real "
                                "diagnoses. Generated by pathpt_engine.prompts.classsets.synth_classset.",
                    classes=classes, templates=ref)
