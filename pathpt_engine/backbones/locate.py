"""Where backbone weights are on this machine: per-user data folders and the local Hugging Face cache, offline.

Nothing here touches the network: the Hugging Face cache is read as the files `huggingface_hub` leaves on disk
(``<cache>/models--<owner>--<name>/{refs/<revision>, snapshots/<commit>/..., blobs/...}``). The cache folder is
`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`,
as `huggingface_hub` itself resolves it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import BackboneError

HF_PREFIX = "hf:"


def user_data_dir() -> Path:
    """The per-user data folder of PathPT Studio (`$PATHPT_DATA_DIR` overrides it).

    Linux: `$XDG_DATA_HOME/pathpt` (default `~/.local/share/pathpt`); macOS: `~/Library/Application Support/pathpt`;
    Windows: `%LOCALAPPDATA%\\pathpt`.
    """
    env = os.environ.get("PATHPT_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "pathpt"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "pathpt"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "pathpt"


def user_weights_dir(name: str) -> Path:
    """The default weights folder of backbone `name`: `<user data folder>/weights/<name>`."""
    return user_data_dir() / "weights" / name


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder (see the module docstring for the order)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var, "").strip():
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME", "").strip():
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(xdg) if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def parse_hf(text: str) -> tuple[str, str] | None:
    """`hf:owner/name[@revision]` -> (repo id, revision); None when `text` is not an `hf:` reference.

    Raises:
        BackboneError: an `hf:` reference that is not `owner/name`.
    """
    if not text.startswith(HF_PREFIX):
        return None
    repo, _, revision = text[len(HF_PREFIX):].partition("@")
    parts = repo.split("/")
    if len(parts) != 2 or not all(parts):
        raise BackboneError(f"{text}: expected hf:OWNER/NAME (e.g. hf:Astaxanthin/KEEP), optionally @REVISION")
    return repo, revision or "main"


def hf_snapshot(repo: str, revision: str = "main", cache: Path | None = None) -> Path | None:
    """The cached snapshot folder of `repo` at `revision` (a branch/tag in `refs/`, or a commit), or None."""
    root = (cache or hf_cache_dir()) / ("models--" + repo.replace("/", "--"))
    snapshots = root / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = root / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8").strip()
        folder = snapshots / commit
        return folder if folder.is_dir() else None
    if (snapshots / revision).is_dir():  # a commit hash given directly
        return snapshots / revision
    return None


def resolve_hf(text: str) -> Path:
    """The cached snapshot folder for an `hf:owner/name[@revision]` reference, offline.

    Raises:
        BackboneError: not in the cache (the message names the cache folder and how to fill it).
    """
    repo, revision = parse_hf(text) or ("", "")
    folder = hf_snapshot(repo, revision)
    if folder is None:
        raise BackboneError(f"{text}: not in the local Hugging Face cache {hf_cache_dir()} (no snapshot of {repo} "
                            f"at {revision!r}); download it with `huggingface-cli download {repo}` or `pathpt "
                            "weights get NAME`, or set HF_HOME / HF_HUB_CACHE to the cache that holds it")
    return folder
