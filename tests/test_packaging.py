"""The wheel ships everything in resources/ inside the project's namespace (pathpt_engine/resources, no top-level
`resources` package in site-packages) and the installed (non-editable) package finds it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_ships_resources_and_finds_them(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    src = tmp_path / "src"  # a clean copy: a stale build/ in the checkout must not leak into the wheel
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", "build", ".git", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".ruff_cache", "tests"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
         str(wheel_dir), str(src)],
        check=True, capture_output=True, cwd=tmp_path,
    )
    wheels = list(wheel_dir.glob("pathpt-*.whl"))
    assert len(wheels) == 1
    names = set(zipfile.ZipFile(wheels[0]).namelist())
    assert not any(n.startswith("resources/") for n in names), "a top-level resources package in the wheel"
    shipped = ["pathpt_engine/" + p.relative_to(ROOT).as_posix() for p in (ROOT / "resources").rglob("*")
               if p.is_file() and "__pycache__" not in p.parts]
    missing = [s for s in shipped if s not in names]
    assert not missing, f"files in resources/ missing from the wheel: {missing}"

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheels[0])],
        check=True, capture_output=True,
    )
    probe = (
        "import pathpt_engine, sys\n"
        "from pathpt_engine.assets import resource_path\n"
        "from pathpt_engine.backbones.registry import demo_folder\n"
        "assert pathpt_engine.__file__.startswith(sys.argv[1]), pathpt_engine.__file__\n"
        "assert demo_folder().is_dir() and str(demo_folder()).startswith(sys.argv[1]), demo_folder()\n"
        "print(resource_path('classsets', 'ucs.json'))\n"
    )
    assert not (target / "resources").exists(), "the wheel installed a top-level resources package"
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", probe, str(target)], check=True, capture_output=True, text=True,
                         env=env, cwd=tmp_path)
    assert out.stdout.strip().startswith(str(target))
