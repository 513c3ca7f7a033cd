"""Plain words for label changes, as the log shows them after an undo or a redo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_NAMED = 3  # slides named one by one; beyond that, a count


def describe_label_change(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    """What changed between two `{slide_id: Label}` maps: "label of synth0_010 cleared", "label of synth0_004
    set to papillary (train)", "split of synth0_002 set to test"; several slides: a count."""
    changed = sorted(sid for sid in set(before) | set(after) if _state(before.get(sid)) != _state(after.get(sid)))
    if not changed:
        return "no label changed"
    if len(changed) > MAX_NAMED:
        cleared = sum(sid not in after for sid in changed)
        set_ = len(changed) - cleared
        parts = ([f"{set_} label(s) set"] if set_ else []) + ([f"{cleared} label(s) cleared"] if cleared else [])
        return f"labels of {len(changed)} slides changed: " + ", ".join(parts)
    return "; ".join(_one(sid, before.get(sid), after.get(sid)) for sid in changed)


def _state(lab: Any) -> tuple[str, str] | None:
    return None if lab is None else (lab.label, lab.split)


def _one(sid: str, old: Any, new: Any) -> str:
    if new is None:
        return f"label of {sid} cleared"
    if old is not None and old.label == new.label:
        return f"split of {sid} set to {new.split}"
    return f"label of {sid} set to {new.label} ({new.split})"
