"""Locate files shipped in the top-level `resources` package (class sets, the demo model, icons).

Works from a source checkout, an editable install and an installed (non-editable) wheel alike.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError


def resource_path(*parts: str) -> Path:
    """Filesystem path of a shipped resource, e.g. `resource_path("classsets", "ucs.json")`.

    Raises:
        ConfigError: if the resource does not exist in this installation.
    """
    root = resources.files("resources")
    target = root.joinpath(*parts)
    path = Path(str(target))
    if not path.exists():
        raise ConfigError(f"shipped resource {'/'.join(parts)} is missing from {root} (broken installation?)")
    return path
