"""Every user-facing error class is defined in `pathpt_engine.errors` (one family, one place to read)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pathpt_engine
from pathpt_engine import errors


def test_every_engine_error_class_lives_in_errors_py() -> None:
    outside = []
    for info in pkgutil.walk_packages(pathpt_engine.__path__, "pathpt_engine."):
        if info.name.endswith("__main__") or info.name == "pathpt_engine.errors":
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, errors.PathPTError) and obj.__module__ == info.name:
                outside.append(f"{info.name}.{name}")
    assert outside == [], f"define these in pathpt_engine/errors.py: {outside}"
    assert {"ExportError", "ClusterError", "DeviceMemoryError", "ImageWriteError"} <= set(vars(errors))
