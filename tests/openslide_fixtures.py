"""OpenSlide's own test slides, copied into tests/fixtures/openslide/ with their licence (LGPL-2.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "openslide"


def openslide_fixture(name: str) -> Path:
    """The path of one fixture; skips the test (with the reason) when it is not in the checkout."""
    path = FIXTURES / name
    if not path.is_file():
        pytest.skip(f"OpenSlide test slide {path} is not in this checkout")
    return path
