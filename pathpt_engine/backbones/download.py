"""`pathpt weights get NAME` / the GUI's "Download weights…": fetch a backbone's weights when asked, never else.

The download goes through `huggingface_hub.snapshot_download` (its progress bars, resumable) into the local
Hugging Face cache, where the registry finds it by repository id, or into a folder of the user's choice. Gated
models (CONCH, MUSK) need an accepted licence and a log-in; the error says how. Offline it says so in one line.
Tests never reach the network: they replace `snapshot_download`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import BackboneError
from ..jobs import Job, Progress
from .registry import get_spec

log = logging.getLogger(__name__)


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError as exc:  # pragma: no cover - a dependency of transformers
        raise BackboneError("downloading weights needs huggingface_hub (pip install huggingface_hub)") from exc
    return huggingface_hub


def _classify(exc: Exception, name: str, repo: str, gated: bool) -> str:
    """One line explaining a failed download."""
    kind = type(exc).__name__
    text = " ".join(str(exc).split())
    if kind in ("GatedRepoError",) or (gated and ("401" in text or "403" in text or "gated" in text.lower())):
        return (f"{name}: huggingface.co/{repo} is gated: accept its licence on that page with your Hugging Face "
                "account, log in on this machine (`huggingface-cli login`, or set HF_TOKEN) and run this again")
    if kind in ("HfHubHTTPError", "EntryNotFoundError", "RevisionNotFoundError"):
        return f"{name}: download of {repo} failed ({kind}: {text})"
    if kind in ("RepositoryNotFoundError",):
        return f"{name}: repository {repo} not found on huggingface.co (or it is private and you are not logged in)"
    if kind in ("LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectionError", "Timeout",
                "ConnectTimeout", "ReadTimeout", "gaierror") or isinstance(exc, (OSError, ConnectionError)):
        return (f"{name}: offline: cannot reach huggingface.co to download {repo} ({kind}); copy the weights "
                f"folder here and pass --weights DIR, or run this again when online")
    return f"{name}: download of {repo} failed ({kind}: {text})"


def get_weights(name: str, to: str | Path | None = None, tqdm_class: Any = None) -> Path:
    """Download backbone `name`'s weights (only when called) and return the folder they are in.

    Args:
        name: registry name with a Hugging Face repository (keep, plip, conch, musk, quiltnet).
        to: a folder to put the files in; None: the local Hugging Face cache (found by the registry).
        tqdm_class: progress-bar class for the files fetched (huggingface_hub's default bars when None).

    Raises:
        BackboneError: no repository for that backbone, offline, gated without log-in, or any other failure
            (one line each).
    """
    spec = get_spec(name)
    if spec.demo:
        raise BackboneError(f"{name}: ships with PathPT Studio; nothing to download")
    if not spec.hf_repo:
        raise BackboneError(f"{name}: no single repository to download; {spec.download}")
    hub = _hub()
    log.info("downloading %s from huggingface.co/%s%s", name, spec.hf_repo, f" to {to}" if to else "")
    try:
        extra = {"tqdm_class": tqdm_class} if tqdm_class is not None else {}
        folder = hub.snapshot_download(spec.hf_repo, local_dir=str(to) if to else None, **extra)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line naming the cause
        raise BackboneError(_classify(exc, name, spec.hf_repo, spec.gated)) from exc
    return Path(folder)


def after_download_note(name: str) -> str:
    """What else the user must do after the download (CONCH and MUSK tokenizers live on GitHub), or ""."""
    spec = get_spec(name)
    return f"also needed: {spec.download}" if spec.adapter in ("conch", "musk") else ""


def download_job(name: str, to: str | Path | None = None) -> Job[Path]:
    """Job form of `get_weights` for the GUI worker: the download runs in a thread and the job reports the
    files fetched so far (a progress bar), then returns the folder. Failures raise as in `get_weights`."""
    import threading
    import time

    from tqdm.auto import tqdm

    spec = get_spec(name)
    state: dict[str, Any] = {"done": 0, "total": None}

    class _Bar(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            out = super().update(n)
            state["done"], state["total"] = int(self.n), (int(self.total) if self.total else None)
            return out

    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["folder"] = get_weights(name, to, tqdm_class=_Bar)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the job below
            result["error"] = exc

    worker = threading.Thread(target=run, name=f"download-{name}", daemon=True)
    worker.start()
    message = f"downloading {name} from huggingface.co/{spec.hf_repo or '?'}"
    while worker.is_alive():
        yield Progress("download", state["done"], state["total"], message=message)
        time.sleep(0.2)
    worker.join()
    if "error" in result:
        raise result["error"]
    yield Progress("download", state["total"] or 1, state["total"] or 1, message=str(result["folder"]))
    return result["folder"]
