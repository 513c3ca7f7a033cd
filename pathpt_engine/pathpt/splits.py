"""Few-shot protocol splits (method.md §2.2): a pool per class, a fixed test set, k-shot draws per fold.

Either drawn here from a labels table (`make_division` + `draw_folds`) or read from the reference's files
(`dataset_division.json` + `dataset_csv_{k}shot/<source>/<DATASET>/fold{i}.csv`, labels 0-based = name2label - 1).
Each fold's `val` = pool slides not drawn in this fold (used only by the clean recipes, never the test set).
"""

from __future__ import annotations

import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..prompts.classsets import ClassSet


@dataclass(frozen=True)
class Fold:
    """One k-shot draw: train / val (rest of the pool) / test, as slide_id -> 0-based subtype label."""

    index: int
    shots: int
    train: dict[str, int]
    val: dict[str, int]
    test: dict[str, int]


def make_division(labels: dict[str, int], n_subtypes: int, test_fraction: float = 0.3, pool_per_class: int = 15,
                  seed: int = 0) -> tuple[dict[str, int], dict[str, int]]:
    """Split labelled slides per class into a pool (at most `pool_per_class`) and a fixed test set."""
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test fraction must be strictly between 0 and 1, got {test_fraction}")
    pool: dict[str, int] = {}
    test: dict[str, int] = {}
    for c in range(n_subtypes):
        ids = sorted(s for s, y in labels.items() if y == c)
        if len(ids) < 2:
            raise ConfigError(f"subtype {c} has {len(ids)} labelled slide(s); the protocol needs at least 2")
        ids = list(np.random.default_rng([seed, c]).permutation(ids))
        n_test = min(len(ids) - 1, max(1, round(len(ids) * test_fraction)))
        test.update({s: c for s in ids[:n_test]})
        pool.update({s: c for s in ids[n_test:][:pool_per_class]})
    return pool, test


def draw_folds(pool: dict[str, int], test: dict[str, int], shots: int, folds: int, seed: int = 0,
               first: int = 0) -> list[Fold]:
    """`folds` independent draws of `shots` slides per class from the pool (fewer if a class has fewer).

    The draws are folds `first .. first + folds - 1`; fold i is the same draw whatever `first` and `folds` are,
    so one fold can be drawn alone (`pathpt train --seed i`) without building the ones before it.
    """
    if folds < 1 or shots < 1:
        raise ConfigError(f"need at least 1 fold and 1 shot, got folds={folds}, shots={shots}")
    out = []
    classes = sorted(set(pool.values()))
    for i in range(first, first + folds):
        rng = np.random.default_rng([seed, shots, i])
        train: dict[str, int] = {}
        for c in classes:
            ids = sorted(s for s, y in pool.items() if y == c)
            pick = rng.choice(len(ids), size=min(shots, len(ids)), replace=False)
            train.update({ids[j]: c for j in sorted(pick)})
        val = {s: y for s, y in pool.items() if s not in train}
        out.append(Fold(i, shots, train, val, dict(test)))
    return out


def _read_fold_csv(path: Path, to_ours: dict[int, int]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {"train": {}, "val": {}, "test": {}}
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        need = {"train", "train_label", "test", "test_label"}
        if not need <= set(reader.fieldnames or ()):
            raise ConfigError(f"{path}: fold CSV needs columns {sorted(need)}")
        for line, row in enumerate(reader, start=2):
            for col in ("train", "val", "test"):
                sid, lab = (row.get(col) or "").strip(), (row.get(f"{col}_label") or "").strip()
                if not sid:
                    continue
                try:
                    out[col][sid] = to_ours[int(float(lab))]
                except (ValueError, KeyError):
                    raise ConfigError(f"{path}:{line}: bad {col}_label {lab!r}") from None
    return out


def read_reference_folds(split_dir: str | os.PathLike[str], dataset: str, shots: int,
                         classset: ClassSet) -> list[Fold]:
    """Folds from the reference release: `split_dir/dataset_division.json` and the fold CSVs under it."""
    root = Path(split_dir)
    div_path = root / "dataset_division.json"
    if not div_path.is_file() and (root.parent / "dataset_division.json").is_file():
        div_path = root.parent / "dataset_division.json"  # the release also keeps one at the repository root
    try:
        division = json.loads(div_path.read_text(encoding="utf-8"))[dataset]
        name2label = division["name2label"]
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{div_path}: cannot read ({exc})") from None
    except (KeyError, TypeError):
        raise ConfigError(f"{div_path}: no dataset {dataset!r} with name2label") from None
    try:
        to_ours = {int(v) - 1: classset.subtype_index(k) for k, v in name2label.items()}
    except ValueError as exc:
        raise ConfigError(f"{div_path}: class names do not match class set {classset.name!r}: {exc}") from None
    pool = {sid: to_ours[int(k) - 1] for k, ids in division.get("train_IDs", {}).items() for sid in ids}
    files = sorted(root.glob(f"dataset_csv_{shots}shot/*/{dataset}/fold*.csv")) or sorted(
        root.glob(f"dataset_csv_{shots}shot/{dataset}/fold*.csv"))
    if not files:
        raise ConfigError(f"{root}: no fold CSVs dataset_csv_{shots}shot/<source>/{dataset}/fold*.csv")
    files.sort(key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    out = []
    for path in files:
        cols = _read_fold_csv(path, to_ours)
        val = {s: y for s, y in pool.items() if s not in cols["train"]}  # the reference loader's own "val"
        out.append(Fold(int(re.sub(r"\D", "", path.stem) or 0), shots, cols["train"], val, cols["test"]))
    return out
