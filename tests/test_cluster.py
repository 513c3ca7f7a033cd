"""Cluster pieces that need no Ray: network guard, ledger, run lock, temp cleanup, staging, options, CLI hooks,
and the public per-slide `extract_slide` both paths share."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from tempfiles import assert_no_temp

from pathpt_engine.cluster import ClusterError, ClusterOptions
from pathpt_engine.cluster.lock import RunLock
from pathpt_engine.cluster.netns import interfaces, loopback_only, namespace_command, require_private_network
from pathpt_engine.cluster.staging import Stager
from pathpt_engine.errors import ConfigError
from pathpt_engine.features.ledger import Ledger, LedgerEntry, latest, ledger_path, read_ledger, status_lines

pytestmark = pytest.mark.cluster

torch.set_num_threads(1)

_HEAD = ("Inter-|   Receive                                                |  Transmit\n"
         " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop\n")


def _net_dev(tmp_path: Path, *names: str) -> Path:
    path = tmp_path / "dev"
    path.write_text(_HEAD + "".join(f"  {n}:    0 0 0 0 0 0 0 0 0 0 0 0\n" for n in names))
    return path


def test_netns_guard_reads_interfaces_and_refuses_other_networks(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    only_lo, host = _net_dev(tmp_path / "a", "lo"), _net_dev(tmp_path, "lo", "eth0", "ifb0")
    assert interfaces(host) == ["lo", "eth0", "ifb0"]
    assert loopback_only(only_lo) and not loopback_only(host)
    require_private_network(net_dev=only_lo)
    with pytest.raises(ClusterError, match=r"eth0, ifb0 besides lo.*unshare -n.*--allow-network"):
        require_private_network(net_dev=host)
    require_private_network(allow_network=True, net_dev=host)  # explicit override for real clusters
    with pytest.raises(ClusterError, match="cannot prove the network is private"):
        require_private_network(net_dev=tmp_path / "missing")
    assert not loopback_only(tmp_path / "missing")
    argv = namespace_command("echo hi")
    assert argv[:3] == ["unshare", "-n", "sh"] and argv[-1] == "ip link set lo up && echo hi"


def test_ledger_roundtrip_latest_state_and_torn_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(tmp_path, run="r1")
    ledger.append(LedgerEntry(slide="a", status="retry", backbone="keep", reason="worker died", attempt=1))
    ledger.append(LedgerEntry(slide="a", status="done", backbone="keep", n_tiles=12, attempt=2,
                              extra={"encode_calls": 3}))
    ledger.append(LedgerEntry(slide="b", status="failed", backbone="keep", reason="b.tiff: not a slide"))
    with open(ledger_path(tmp_path), "a") as f:
        f.write('{"slide": "c", "stat')  # torn last line
    entries = list(read_ledger(ledger_path(tmp_path)))
    assert [e.status for e in entries] == ["retry", "done", "failed"] and "unreadable" in caplog.text
    assert entries[1].extra == {"encode_calls": 3} and entries[1].run == "r1" and entries[1].time > 0
    state = latest(entries)
    assert state[("keep", "a")].status == "done" and state[("keep", "a")].attempt == 2
    lines = status_lines(tmp_path)
    assert lines[0].endswith("2 slides: 1 done, 1 failed") and lines[1] == "  keep/b: failed (attempt 1) b.tiff: " \
                                                                           "not a slide"
    with pytest.raises(ValueError, match="unknown status"):
        LedgerEntry(slide="x", status="finished")
    with pytest.raises(ConfigError, match="cannot read the extraction ledger"):
        list(read_ledger(tmp_path / "none.jsonl"))


def test_run_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    with RunLock(tmp_path) as lock:
        assert lock.held
        holder = json.loads((tmp_path / ".pathpt-run.lock").read_text())
        assert holder["pid"] == os.getpid()
        with pytest.raises(ClusterError, match="another run is writing to this folder"):
            RunLock(tmp_path).acquire()
    with RunLock(tmp_path) as again:  # released: the next run gets it
        assert again.held


def test_stager_copies_atomically_and_cleans_its_folder(tmp_path: Path) -> None:
    src = tmp_path / "shared" / "s1.mrxs"
    (tmp_path / "shared" / "s1").mkdir(parents=True)
    src.write_bytes(b"index")
    (tmp_path / "shared" / "s1" / "Data0000.dat").write_bytes(b"pixels")
    leftover = tmp_path / "stage" / "pathpt-stage-3" / "old.svs"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"from a killed worker")
    stager = Stager(tmp_path / "stage", slot=3)
    assert not leftover.exists()
    copy = stager.stage(src)
    assert copy.read_bytes() == b"index" and (copy.parent / "s1" / "Data0000.dat").read_bytes() == b"pixels"
    assert_no_temp(copy.parent)
    stager.release(src)
    assert not copy.exists() and not (copy.parent / "s1").exists()
    with pytest.raises(OSError, match='missing.svs'):
        stager.stage(tmp_path / "shared" / "missing.svs")
    assert not any(stager.dir.iterdir())
    stager.close()
    assert not stager.dir.exists()


def test_cluster_options_validate() -> None:
    assert ClusterOptions().in_flight == 2
    for bad in ({"num_workers": 0}, {"in_flight": 0}, {"max_attempts": 0}, {"slide_timeout_s": 0.0},
                {"poll_s": 0.0}, {"address": ""}, {"fault_injection": (("s", "explode"),)}):
        with pytest.raises(ValueError):  # noqa: PT011 - one case per invalid field, each with its own message
            ClusterOptions(**bad)


def test_import_without_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from pathpt_engine.cluster.base import import_ray

    real_import = builtins.__import__

    def no_ray(name: str, *a: object, **kw: object):
        if name == "ray":
            raise ImportError("no ray")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ClusterError, match=r"pathpt\[cluster\]"):
        import_ray()


def test_driver_orders_largest_first_and_rejects_name_clashes(tmp_path: Path) -> None:
    from pathpt_engine.cluster.driver import _order

    small, big = tmp_path / "small.tiff", tmp_path / "big.svs"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 1000)
    assert _order([small, tmp_path / "missing.tiff", big]) == [big, small, tmp_path / "missing.tiff"]
    (tmp_path / "d").mkdir()
    with pytest.raises(ConfigError, match="same slide name 'small'"):
        _order([small, tmp_path / "d" / "small.svs"])


def _tissue_slide(path: Path) -> Path:
    from pathpt_engine.synth.writer import write_slide

    rng = np.random.default_rng(0)
    img = np.full((800, 1000, 3), 250, np.uint8)
    img[50:-50, 50:-50] = np.clip(np.array([200, 120, 170]) + rng.integers(-40, 40, (700, 900, 3)), 0, 255)
    return write_slide(path, img, mpp=0.25, fmt="tiff")


def test_extract_slide_equals_the_job_path_and_reads_staged_pixels(tmp_path: Path) -> None:
    from pathpt_engine.backbones import load_backbone
    from pathpt_engine.features.extract import ExtractOptions, extract_slide, extract_slides, feature_path
    from pathpt_engine.jobs import collect
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    keep = make_tiny_keep_folder(tmp_path / "keep")
    slide = _tissue_slide(tmp_path / "s1.tiff")
    staged = tmp_path / "stage" / "s1.tiff"
    staged.parent.mkdir()
    staged.write_bytes(slide.read_bytes())
    opts = ExtractOptions(backbone="keep", weights=keep, device="cpu", batch_size=4, workers=1)
    model = load_backbone("keep", keep)
    one = extract_slide(slide, tmp_path / "a", model, opts, pixels_from=staged)
    summary, _ = collect(extract_slides([slide], tmp_path / "b", opts))
    assert not one.skipped and one.n_tiles == summary.slides[0].n_tiles > 0
    a, b = feature_path(tmp_path / "a", "keep", "s1"), feature_path(tmp_path / "b", "keep", "s1")
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert fa["features"][()].tobytes() == fb["features"][()].tobytes()
        assert fa.attrs["slide_path"] == fb.attrs["slide_path"] == str(slide)  # the original, not the copy
    assert extract_slide(slide, tmp_path / "a", model, opts).skipped
    bf16 = ExtractOptions(backbone="keep", weights=keep, device="cpu", batch_size=4, workers=1, precision="bf16")
    assert not extract_slide(slide, tmp_path / "a", model, bf16).skipped  # precision is part of validity


def test_cli_status_reads_the_ledger_and_needs_slides_otherwise(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture) -> None:
    from pathpt_engine.cli import main

    Ledger(tmp_path).append(LedgerEntry(slide="s9", status="timeout", backbone="demo", reason="still running"))
    assert main(["extract", "--status", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "1 slides: 1 timeout" in out and "demo/s9: timeout" in out
    assert main(["extract", "--out", str(tmp_path)]) != 0
    assert "no slide files given" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "x.svs"), "--out", str(tmp_path), "--stage-dir", str(tmp_path)]) != 0
    assert "--stage-dir needs --cluster" in capsys.readouterr().err


def test_everything_imports_without_ray_and_cli_names_the_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import importlib, pkgutil, pathpt_engine.cluster as c\n"
        "for m in pkgutil.walk_packages(c.__path__, 'pathpt_engine.cluster.'):\n"
        "    importlib.import_module(m.name)\n"
        "from pathpt_engine.cli import main\n"
        f"sys.exit(main(['-q', 'extract', {str(tmp_path / 'a.svs')!r}, '--out', {str(tmp_path)!r}, "
        "'--cluster', 'local']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "--cluster needs Ray: pip install 'pathpt[cluster]'" in proc.stderr
