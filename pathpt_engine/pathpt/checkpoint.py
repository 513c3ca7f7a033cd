"""PathPT checkpoints: only what is learned (ctx + spatial module) in safetensors, plus JSON metadata to rebuild.

A run folder holds ``model.safetensors`` and ``checkpoint.json``. The JSON is written last and records the
SHA-256 of the weights file, so a crash or cancel between the two writes never leaves a folder that loads as a
complete checkpoint. Both files are written atomically (temp file in the same folder + os.replace).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import write_bytes_atomic
from ..errors import ConfigError

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
FORMAT = "pathpt-checkpoint/1"


def atomic_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, flushed to disk before the rename."""
    write_bytes_atomic(path, data, fsync=True)


def save_checkpoint(run_dir: str | os.PathLike[str], state: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights then metadata (with the weights' SHA-256) into `run_dir`; returns the JSON path."""
    from safetensors.torch import save

    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / META).unlink(missing_ok=True)  # an old JSON must never vouch for new weights
    blob = save({k: v.detach().float().cpu().contiguous() for k, v in state.items()})
    atomic_bytes(folder / WEIGHTS, blob)
    full = dict(meta, format=FORMAT, weights_file=WEIGHTS, weights_sha256=hashlib.sha256(blob).hexdigest())
    atomic_bytes(folder / META, (json.dumps(full, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return folder / META


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """True when the folder holds a checkpoint whose JSON vouches for its weights."""
    try:
        load_checkpoint(run_dir)
    except ConfigError:
        return False
    return True


def load_checkpoint(run_dir: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(state dict, metadata); raises ConfigError naming the folder if incomplete or corrupt."""
    from safetensors.torch import load

    folder = Path(run_dir)
    meta_path = folder / META
    if not meta_path.is_file():
        raise ConfigError(f"{folder}: no {META} (not a finished PathPT run; was training cancelled?)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: unreadable checkpoint metadata ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ConfigError(f"{meta_path}: not a {FORMAT} file")
    weights = _weights_path(folder, meta.get("weights_file", WEIGHTS), meta_path)
    try:
        blob = weights.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{weights}: cannot read checkpoint weights ({exc})") from None
    if hashlib.sha256(blob).hexdigest() != meta.get("weights_sha256"):
        raise ConfigError(f"{weights}: checksum does not match {META} (incomplete or modified checkpoint)")
    try:
        state = load(blob)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a malformed header or body
        raise ConfigError(f"{weights}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    bad = sorted(k for k, v in state.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise ConfigError(f"{weights}: weights {', '.join(bad[:3])} hold NaN or infinite values (a diverged "
                          "training run); retrain with a lower learning rate")
    return state, meta


def _weights_path(folder: Path, name: object, meta_path: Path) -> Path:
    """The weights file named in the metadata; it must be a plain file name inside the run folder."""
    text = str(name)
    bad = "\0" in text or not text or Path(text).is_absolute()
    path = folder / text if bad else (folder / text).resolve()
    if bad or path.parent != folder.resolve():
        raise ConfigError(f"{meta_path}: weights_file {text!r} is not a file inside the run folder; refused")
    return path
