"""Locate files shipped with the project (class sets, the demo model, icons, the desktop entry).

They live in `resources/` at the top of the repository and are installed as `pathpt_engine/resources` (see
setup.py), so an installed wheel adds no generic top-level `resources` package to site-packages. Works from a
source checkout, an editable install and an installed (non-editable) wheel alike.
"""

from __future__ import annotations

import importlib.util
from importlib import resources
from pathlib import Path

from .errors import ConfigError

_CHECKOUT = Path(__file__).resolve().parents[1] / "resources"


def resource_root() -> Path:
    """The folder of shipped resources: the installed `pathpt_engine.resources`, else the checkout's `resources/`."""
    if importlib.util.find_spec("pathpt_engine.resources") is not None:
        return Path(str(resources.files("pathpt_engine.resources")))
    return _CHECKOUT


def resource_path(*parts: str) -> Path:
    """Filesystem path of a shipped resource, e.g. `resource_path("classsets", "ucs.json")`.

    Raises:
        ConfigError: if the resource does not exist in this installation.
    """
    root = resource_root()
    path = root.joinpath(*parts)
    if not path.exists():
        raise ConfigError(f"shipped resource {'/'.join(parts)} is missing from {root} (broken installation?)")
    return path
