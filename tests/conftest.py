"""Shared test setup: offscreen Qt, no network, a thread-leak guard, the gpu tier."""

from __future__ import annotations

import os
import tempfile
import threading
import time

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
# Weights a developer has (per-user folder, Hugging Face cache) must not change what the tests see.
os.environ.setdefault("PATHPT_DATA_DIR", tempfile.mkdtemp(prefix="pathpt-test-data-"))
os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="pathpt-test-hf-"))
# The app's QSettings (recent files, overlay look, export choices) go to a folder of this run, never the user's
# own file: tests that run the app through app.main then neither read a developer's settings nor contend for them.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="pathpt-test-config-")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available() or os.environ.get("PATHPT_GPU_DRY_RUN") == "cpu":  # bench/gpu_check.sh --cpu-dry-run
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible to torch on this machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# Threads that libraries start once per process and keep (not leaks of ours).
_ALLOWED_THREAD_PREFIXES = ("pydevd", "ThreadPoolExecutor-0", "Dummy-", "QDBus", "asyncio")


@pytest.fixture(autouse=True)
def no_thread_leak(request: pytest.FixtureRequest):
    """Fail a test that leaves one of its threads running (napari-style)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()
                 and not t.name.startswith(_ALLOWED_THREAD_PREFIXES)]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if extra:
        pytest.fail(f"{request.node.nodeid} left threads running: {[t.name for t in extra]}")
