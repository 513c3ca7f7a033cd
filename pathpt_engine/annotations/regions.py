"""Annotated regions and the mapping of their class names onto the project's classes.

A region's class is one of the project's class names (any subtype, or the Normal class) or `ignore` (artefact,
pen mark, out of focus). Names from other tools are matched case-insensitively against each class's name,
display name and synonyms; QuPath's built-in `Ignore*` class means ignore. Anything else needs an explicit
mapping (the GUI asks in a dialog, the CLI takes `--map NAME=CLASS`) or is refused with a message listing the
names.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..prompts.classsets import ClassSet
from .coverage import IGNORE
from .geometry import Geometry

IGNORE_CLASS = "ignore"
IGNORE_COLOR = "#b4b4b4"
_IGNORE_ALIASES = ("ignore", "ignore*", "artefact", "artifact")
KINDS = ("rectangle", "ellipse", "polygon", "brush", "imported")


@dataclass(frozen=True, eq=False)
class Region:
    """One annotated region of a slide (level-0 pixels)."""

    slide_id: str
    class_name: str
    geometry: Geometry
    kind: str = "polygon"
    name: str = ""
    region_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def with_geometry(self, geometry: Geometry) -> Region:
        return Region(self.slide_id, self.class_name, geometry, self.kind, self.name, self.region_id)

    def with_class(self, class_name: str) -> Region:
        return Region(self.slide_id, class_name, self.geometry, self.kind, self.name, self.region_id)


def region_classes(classset: ClassSet) -> tuple[str, ...]:
    """Every class a region may take: the project's classes (Normal first) then `ignore`."""
    return (*classset.class_names, IGNORE_CLASS)


def class_index(classset: ClassSet, class_name: str) -> int:
    """Model class index (0 = Normal, k = subtype k) or `IGNORE` for a region class name.

    Raises:
        ConfigError: the name is not one of the project's classes.
    """
    if class_name == IGNORE_CLASS:
        return IGNORE
    try:
        return classset.class_names.index(class_name)
    except ValueError:
        raise ConfigError(f"region class {class_name!r} is not in the project's classes "
                          f"({', '.join(region_classes(classset))})") from None


def class_color(classset: ClassSet, class_name: str) -> str:
    """'#rrggbb' of a region class (ignore: light grey)."""
    if class_name == IGNORE_CLASS:
        return IGNORE_COLOR
    return classset.classes[classset.class_names.index(class_name)].color


def match_class(classset: ClassSet, name: str) -> str | None:
    """The project class a foreign class name means, or None when it is not recognised."""
    key = name.strip().lower()
    if key in _IGNORE_ALIASES:
        return IGNORE_CLASS
    for c in classset.classes:
        if key in (c.name.lower(), c.display_name.lower(), *(s.lower() for s in c.synonyms)):
            return c.name
    return None


def resolve_classes(classset: ClassSet, names: Sequence[str], mapping: Mapping[str, str] | None = None,
                    source: str = "annotations") -> dict[str, str]:
    """Foreign class name -> region class, using `mapping` first, then `match_class`.

    Raises:
        ConfigError: a mapping target is not a region class, or some names are neither mapped nor recognised
            (the message lists them, the project's classes and how to map them).
    """
    targets = region_classes(classset)
    out: dict[str, str] = {}
    unknown = []
    for name in dict.fromkeys(names):
        target = (mapping or {}).get(name)
        if target is not None:
            resolved = match_class(classset, target)
            if resolved is None:
                raise ConfigError(f"{source}: cannot map {name!r} to {target!r}: not a project class "
                                  f"({', '.join(targets)})")
            out[name] = resolved
            continue
        found = match_class(classset, name)
        if found is None:
            unknown.append(name)
        else:
            out[name] = found
    if unknown:
        raise ConfigError(f"{source}: class name(s) {', '.join(repr(u) for u in unknown)} are not project classes "
                          f"({', '.join(targets)}); map them, e.g. --map '{unknown[0]}={targets[0]}'")
    return out


def parse_mapping(items: Sequence[str] | None) -> dict[str, str]:
    """`NAME=CLASS` strings -> dict (CLI `--map`)."""
    out = {}
    for item in items or ():
        name, sep, target = item.partition("=")
        if not sep or not name.strip() or not target.strip():
            raise ConfigError(f"--map {item!r}: expected NAME=CLASS")
        out[name.strip()] = target.strip()
    return out
