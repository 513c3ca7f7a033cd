"""Class colours, written once for the engine and the GUI: the default palette, "#rrggbb" strings, RGB triples
and QuPath packed ints.

A class without a colour of its own gets one by position: the Normal class grey, the others tab10 then the tab20
extras, in order (cycled). Exports (PNG, figure, GeoJSON), the project's class set and the GUI's heat map all use
this one palette, so a class is the same colour on screen and in every exported file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

DEFAULT_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22",
                   "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2")
NORMAL_COLOR = "#7f7f7f"

RGB = tuple[int, int, int]

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


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


def hex_to_rgb(color: str) -> RGB:
    """"#rrggbb" -> (r, g, b); raises ValueError on anything else."""
    m = _HEX.match(color.strip())
    if not m:
        raise ValueError(f"colour must be '#rrggbb', got {color!r}")
    v = int(m.group(1), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def rgb_to_hex(rgb: Sequence[int]) -> str:
    r, g, b = (int(c) for c in rgb[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def packed_to_rgb(value: int) -> RGB:
    """QuPath v0.2/0.3 `colorRGB` (signed 32-bit packed ARGB) -> (r, g, b)."""
    v = int(value) & 0xFFFFFFFF
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def class_colors(names: Sequence[str], colors: Mapping[str, str] | None = None,
                 normal_index: int | None = 0) -> dict[str, RGB]:
    """RGB per class: given colours where set, else the deterministic default palette (Normal grey)."""
    normal = names[normal_index] if normal_index is not None and 0 <= normal_index < len(names) else None
    fallback = default_colors(list(names), normal)
    given = dict(colors or {})
    return {n: hex_to_rgb(given.get(n) or fallback[n]) for n in names}


def class_rgb(names: Sequence[str], colors: Mapping[str, str] | None = None,
              normal_index: int | None = 0) -> list[RGB]:
    """`class_colors` as a list in the order of `names` (one RGB per probability column)."""
    rgb = class_colors(names, colors, normal_index)
    return [rgb[n] for n in names]
