"""What every exported picture says about itself: run, method, backbone, layer, "tile probability" or "tile
votes", the date, and "research use, not for diagnosis" for synthetic or demo models.

Titles name the layer, never a finding: "s1: tile probability of LUAD (PathPT)", not "s1: LUAD".
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from .png import ARGMAX, OverlayStyle

RESEARCH_ONLY = "research use, not for diagnosis"
_RESEARCH_WORDS = ("demo", "synth", "toy", "random")


def _today() -> str:
    return _dt.date.today().isoformat()


@dataclass(frozen=True)
class Caption:
    """Where the scores came from (empty fields read "unknown").

    Attributes:
        run: run name or folder.
        method: e.g. "PathPT", "zero-shot", "ABMIL".
        backbone: vision-language model name.
        research_only: a synthetic or demo model; also set when run, method or backbone name one.
        date: ISO date of the export (default today).
    """

    run: str = ""
    method: str = ""
    backbone: str = ""
    research_only: bool = False
    date: str = field(default_factory=_today)

    @property
    def is_research_only(self) -> bool:
        """Marked so, or named after a synthetic/demo model."""
        text = f"{self.run} {self.method} {self.backbone}".lower()
        return self.research_only or any(w in text for w in _RESEARCH_WORDS)


def layer_text(style: OverlayStyle) -> str:
    """What the colours are: "tile votes (class per tile)" or "tile probability of <class>"."""
    return "tile votes (class per tile)" if style.mode == ARGMAX else f"tile probability of {style.mode}"


def title(slide_id: str, style: OverlayStyle, caption: Caption | None = None) -> str:
    """A heatmap title that names the layer, not a diagnosis."""
    method = (caption.method if caption and caption.method else "PathPT")
    return f"{slide_id}: {layer_text(style)} ({method})"


def caption_lines(slide_id: str, style: OverlayStyle, caption: Caption | None = None) -> list[str]:
    """The caption: slide and layer; run, method, backbone and date; the research-use note when it applies."""
    c = caption or Caption()
    lines = [f"{slide_id}: {layer_text(style)}",
             f"run {c.run or 'unknown'} · method {c.method or 'unknown'} · backbone {c.backbone or 'unknown'} · "
             f"{c.date}"]
    if c.is_research_only:
        lines.append(f"Synthetic/demo model: {RESEARCH_ONLY}.")
    return lines
