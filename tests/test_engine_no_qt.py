"""The engine must import no Qt, ever (architecture rule 1)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pathpt_engine


def test_engine_imports_no_qt() -> None:
    modules = [m.name for m in pkgutil.walk_packages(pathpt_engine.__path__, "pathpt_engine.")
               if not m.name.endswith("__main__")]
    assert len(modules) > 5
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'PyQt5', 'PyQt6', 'pyqtgraph', 'qtpy'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"pathpt_engine pulled in Qt modules: {out.stdout.strip()}"
