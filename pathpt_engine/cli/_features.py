"""`--features DIR`: a folder of `<slide>.h5` feature files, or the folder `pathpt extract --out` wrote.

`pathpt extract --out OUT` writes `OUT/<backbone>/h5_files/<slide>.h5` (and `OUT/coords/`). Users pass `OUT`,
`OUT/<backbone>` or `OUT/<backbone>/h5_files`; all three mean the same folder when OUT holds one backbone's
features. With several, the error names them.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def features_dir(text: str) -> Path:
    """argparse type: the folder that holds the `.h5` feature files (see the module docstring)."""
    path = Path(text)
    if not path.is_dir() or any(path.glob("*.h5")):
        return path  # a missing folder is reported by the loader, with its own message
    if (path / "h5_files").is_dir():
        return path / "h5_files"
    found = sorted(p for p in path.glob("*/h5_files") if p.is_dir() and any(p.glob("*.h5")))
    if len(found) == 1:
        return found[0]
    if found:
        names = ", ".join(str(p) for p in found)
        raise argparse.ArgumentTypeError(f"{path} holds the features of several backbones; pass one of: {names}")
    return path
