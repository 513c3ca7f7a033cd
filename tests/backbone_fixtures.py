"""Module-scoped `folder` and `model` fixtures for a backbone format's tests: a tiny random folder in the real
layout, and the model loaded from it through the real loader (one torch thread).

Use: `folder, model = tiny_backbone_fixtures(make_tiny_conch_folder, load_conch, "conch", seed=3)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch


def tiny_backbone_fixtures(make_folder: Callable[..., Path], load: Callable[[Path], Any], name: str,
                           seed: int) -> tuple[Any, Any]:
    @pytest.fixture(scope="module")
    def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
        return make_folder(tmp_path_factory.mktemp(name), seed=seed)

    @pytest.fixture(scope="module")
    def model(folder: Path) -> Any:
        torch.set_num_threads(1)
        return load(folder)

    return folder, model


def edit_weights(path: Path, fn: Callable[[dict[str, torch.Tensor]], object]) -> None:
    """Apply `fn` to the state dict in a weights file (`.bin` via torch, `.safetensors`) and write it back."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file, save_file

        sd = load_file(str(path))
        fn(sd)
        save_file(sd, str(path))
        return
    sd = torch.load(path, weights_only=True)
    fn(sd)
    torch.save(sd, path)


def copy_folder(src: Path, dst: Path) -> Path:
    """A flat copy of a weights folder (to edit one file of it)."""
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst
