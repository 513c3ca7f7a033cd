"""Class colours: "#rrggbb" strings, RGB triples, QuPath packed ints, and the default palette."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ..project.classes import default_colors

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """"#rrggbb" -> (r, g, b); raises ValueError on anything else."""
    m = _HEX.match(color.strip())
    if not m:
        raise ValueError(f"colour must be '#rrggbb', got {color!r}")
    v = int(m.group(1), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def rgb_to_hex(rgb: Sequence[int]) -> str:
    r, g, b = (int(c) for c in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def packed_to_rgb(value: int) -> tuple[int, int, int]:
    """QuPath v0.2/0.3 `colorRGB` (signed 32-bit packed ARGB) -> (r, g, b)."""
    v = int(value) & 0xFFFFFFFF
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def class_colors(names: Sequence[str], colors: Mapping[str, str] | None = None,
                 normal_index: int | None = 0) -> dict[str, tuple[int, int, int]]:
    """RGB per class: given colours where set, else the deterministic default palette (Normal grey)."""
    normal = names[normal_index] if normal_index is not None and 0 <= normal_index < len(names) else None
    fallback = default_colors(list(names), normal)
    given = dict(colors or {})
    return {n: hex_to_rgb(given.get(n) or fallback[n]) for n in names}
