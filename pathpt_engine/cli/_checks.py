"""Checks shared by the CLI commands: option types that refuse impossible values up front, and input checks
that turn a bad input into one line (exit 2) before any work starts."""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import ConfigError, FeatureFileError

log = logging.getLogger(__name__)
T = TypeVar("T", int, float)


def _number(text: str, cast: Callable[[str], T], ok: Callable[[T], bool], need: str) -> T:
    """`cast(text)`, refused unless `ok` (an argparse type error saying what is needed)."""
    try:
        value = cast(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a {'whole number' if cast is int else 'number'}, got {text!r}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{need}, got {text if cast is float else value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    return _number(text, int, lambda v: v >= 1, "must be at least 1")


def nonneg_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    return _number(text, int, lambda v: v >= 0, "must be 0 or more")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (nan and inf refused)."""
    return _number(text, float, lambda v: math.isfinite(v) and v > 0, "must be a finite number > 0")


def open_fraction(text: str) -> float:
    """argparse type: a number strictly between 0 and 1."""
    return _number(text, float, lambda v: 0 < v < 1, "must be strictly between 0 and 1")  # also refuses nan


def check_run_out(out: Path, overwrite: bool) -> None:
    """`pathpt train --out`: refuse a file, and an existing run unless `overwrite` (before any training)."""
    from ..pathpt.checkpoint import META, WEIGHTS

    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: --out is an existing file, not a run folder; choose a folder")
    if not overwrite and ((out / META).exists() or (out / WEIGHTS).exists()):
        raise ConfigError(f"{out}: already holds a trained run; pass --overwrite to replace it, or choose another "
                          "--out")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{out}: {parent} is a file, not a folder")
            break


def check_dims(slides: Iterable[Any], dim: int, features: Path, what: str) -> None:
    """Every slide's features are `dim`-d (the backbone's or the run's embedding width)."""
    for s in slides:
        got = s.features.shape[1] if s.features.ndim == 2 else None
        if len(s.features) and got != dim:
            raise FeatureFileError(f"{features}/{s.slide_id}.h5: features are {got}-d but {what} needs {dim}-d "
                                   "(extracted with another backbone?)")


def split_empty(slides: list[Any]) -> tuple[list[Any], list[str]]:
    """(slides with at least one tile, ids of slides with none)."""
    empty = [s.slide_id for s in slides if len(s.features) == 0]
    return [s for s in slides if len(s.features)], empty


def refuse_empty_training(slides: list[Any], labels: Path) -> None:
    """`train`: a labelled slide without tiles cannot be learned from; name them."""
    _, empty = split_empty(slides)
    if empty:
        raise FeatureFileError(f"{labels}: {len(empty)} labelled slide(s) have no tissue tiles in their feature "
                               f"file, e.g. {empty[0]}; re-tile them or remove them from the labels")


def warn_short_classes(labels: dict[str, int], shots: int, names: tuple[str, ...]) -> None:
    """`--shots K` larger than a class's labelled slides: say how many are used instead."""
    for c, name in enumerate(names):
        n = sum(1 for y in labels.values() if y == c)
        if 0 < n < shots:
            log.warning("--shots %d: subtype %s has only %d labelled slide(s); using all %d", shots, name, n, n)
