"""Shared helpers for loading downloaded weight folders safely and strictly.

Only safetensors or `torch.load(weights_only=True)`; every problem is a `BackboneError` that names the folder
and the file or key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..errors import BackboneError

T = TypeVar("T")

log = logging.getLogger(__name__)

_HASH_CACHE: dict[tuple[str, int, int], str] = {}


def require_folder(folder: Path, what: str) -> Path:
    """Return `folder` resolved, or raise if it is not a directory."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BackboneError(f"{what} weights folder not found: {folder}")
    return folder.resolve()


def read_json(folder: Path, name: str) -> dict[str, Any]:
    """Read `folder/name` as a JSON object."""
    path = folder / name
    if not path.is_file():
        raise BackboneError(f"{folder}: missing file {name}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BackboneError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise BackboneError(f"{path}: expected a JSON object")
    return data


def read_model_config(folder: Path, model_type: str) -> dict[str, Any]:
    """`folder/config.json`, checked to declare `model_type`."""
    config = read_json(folder, "config.json")
    if config.get("model_type") != model_type:
        raise BackboneError(f"{folder}/config.json: model_type is {config.get('model_type')!r}, "
                            f"expected {model_type!r}")
    return config


def optional_config(cls: type[T], folder: Path, name: str) -> T:
    """A frozen config dataclass from `folder/name` when present (unknown fields are errors), else defaults."""
    path = folder / name
    if not path.is_file():
        return cls()
    data = read_json(folder, name)
    known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise BackboneError(f"{path}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    try:
        return cls(**data)
    except (TypeError, ValueError) as exc:
        raise BackboneError(f"{path}: {exc}") from exc


def find_weights_file(folder: Path, names: Iterable[str]) -> Path:
    """First existing file among `names` in `folder`."""
    names = list(names)
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise BackboneError(f"{folder}: missing weights file (expected one of {', '.join(names)})")


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Load a flat state dict from safetensors or a weights-only torch pickle.

    A top-level `state_dict`/`model` entry and a `module.` prefix are unwrapped.
    """
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad weights file for the user
        raise BackboneError(f"{path}: cannot read weights ({type(exc).__name__}: {exc})") from exc
    for key in ("state_dict", "model"):
        if isinstance(sd, Mapping) and key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
    if not isinstance(sd, Mapping):
        raise BackboneError(f"{path}: expected a state dict, got {type(sd).__name__}")
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            raise BackboneError(f"{path}: entry {k!r} is not a tensor")
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def load_strict(module: nn.Module, sd: Mapping[str, torch.Tensor], folder: Path,
                optional: Iterable[str] = (), spell: Callable[[str], str] | None = None) -> None:
    """Load `sd` into `module` with every key and shape checked; `optional` keys may be absent or extra.

    `spell` turns a key of `sd` (the module's name) back into the key as the weights file spells it, for the
    error messages (a loader that renames keys passes it; the default is the name itself).
    """
    optional = set(optional)
    name = spell or (lambda k: k)
    expected = module.state_dict()
    sd = {k: v for k, v in sd.items() if not (k in optional and k not in expected)}
    missing = [k for k in expected if k not in sd and k not in optional]
    unexpected = [k for k in sd if k not in expected]
    if missing:
        raise BackboneError(f"{folder}: weights miss key {name(missing[0])!r}" + _more(missing))
    if unexpected:
        raise BackboneError(f"{folder}: weights have unexpected key {name(unexpected[0])!r}" + _more(unexpected))
    for k, v in sd.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise BackboneError(f"{folder}: key {name(k)!r} has shape {tuple(v.shape)}, the config needs "
                                f"{tuple(expected[k].shape)}")
    module.load_state_dict(sd, strict=not optional)


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def file_hash(path: Path, length: int = 16) -> str:
    """Short sha256 of a file's content (cached per path, size and mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASH_CACHE:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _HASH_CACHE[key] = h.hexdigest()
    return _HASH_CACHE[key][:length]
