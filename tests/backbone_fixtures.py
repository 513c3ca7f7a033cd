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
