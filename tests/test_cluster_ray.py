"""Cluster extraction on a local Ray (CPU, logical GPUs), always inside a loopback-only network namespace.

Run as root on Linux outside such a namespace, `test_scenarios_in_private_namespace` re-runs this file under
`unshare -n sh -c 'ip link set lo up && ...'` (so `make test` exercises it) and the scenario tests skip here; inside
the namespace the scenarios run against one Ray session (num_cpus=2, num_gpus=2: two actors, distinct logical
GPUs) with a tiny random-init KEEP backbone and small synthetic slides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from tempfiles import assert_no_temp

from pathpt_engine.cluster.netns import can_unshare, loopback_only, namespace_command

pytest.importorskip("ray", reason="Ray is not installed (pip install 'pathpt[cluster]')")

from pathpt_engine.cluster import ClusterOptions  # noqa: E402
from pathpt_engine.errors import JobCancelled  # noqa: E402
from pathpt_engine.features.extract import ExtractOptions, extract_slides, feature_path  # noqa: E402
from pathpt_engine.features.ledger import ledger_path, read_ledger, status_lines  # noqa: E402
from pathpt_engine.features.store import read_coords, read_features  # noqa: E402
from pathpt_engine.jobs import collect, run_job  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
REPO = Path(__file__).resolve().parents[1]
INNER_ENV = "PATHPT_CLUSTER_NETNS"


def test_scenarios_in_private_namespace() -> None:
    """Outside a private namespace: re-run this file inside one and require every scenario to pass."""
    if loopback_only():
        pytest.skip("already inside a loopback-only network namespace: the scenarios run directly")
    if not can_unshare():
        pytest.skip("cannot make a private network namespace here (needs Linux, root, unshare and ip); "
                    "Ray tests never run on a reachable network")
    inner = (f"cd {REPO} && {INNER_ENV}=1 OMP_NUM_THREADS=1 {sys.executable} -m pytest -q -p no:cacheprovider "
             f"{Path(__file__).resolve()} -k 'not in_private_namespace'")
    proc = subprocess.run(namespace_command(inner), capture_output=True, text=True, timeout=580)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    last = proc.stdout.strip().splitlines()[-1]
    assert " passed" in last and "skipped" not in last and "failed" not in last, tail


@pytest.fixture(scope="module")
def ray_session():
    if not loopback_only():
        pytest.skip("Ray scenarios run only inside a loopback-only network namespace "
                    "(test_scenarios_in_private_namespace runs them there)")
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from pathpt_engine.synth.writer import write_slide
    from pathpt_engine.testing.backbones import make_tiny_keep_folder

    root = tmp_path_factory.mktemp("cluster")

    def slide(name: str, seed: int, w: int = 1000, h: int = 800) -> Path:
        rng = np.random.default_rng(seed)
        img = np.full((h, w, 3), 250, np.uint8)
        tissue = np.array([200, 120, 170]) + rng.integers(-40, 40, size=(h - 100, w - 100, 3))
        img[50:-50, 50:-50] = np.clip(tissue, 0, 255).astype(np.uint8)
        return write_slide(root / "slides" / f"{name}.tiff", img, mpp=0.25, fmt="tiff")

    (root / "slides").mkdir()
    bad = root / "slides" / "bad.tiff"
    bad.write_bytes(b"this is not a slide")
    return {"root": root, "keep": make_tiny_keep_folder(root / "keep"), "slide": slide, "bad": bad}


def _opts(cohort: dict) -> ExtractOptions:
    return ExtractOptions(backbone="keep", weights=cohort["keep"], device="cpu", batch_size=8, workers=1)


def _copts(**kw: object) -> ClusterOptions:
    base: dict = {"cpus_per_worker": 1, "num_workers": 2, "poll_s": 0.1}
    return ClusterOptions(**{**base, **kw})


def _run(paths: list[Path], out: Path, cohort: dict, copts: ClusterOptions, on_progress=None,
         cancel: threading.Event | None = None):
    from pathpt_engine.cluster.driver import extract_cluster

    events = []

    def record(ev) -> None:
        events.append(ev)
        if on_progress is not None:
            on_progress(ev)

    summary = run_job(extract_cluster(paths, out, _opts(cohort), copts, cancel), record, cancel)
    return summary, events


def _same_h5(a: Path, b: Path) -> None:
    """Datasets bit-for-bit equal, attributes equal except the timing `extract_s`."""
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        assert sorted(fa.keys()) == sorted(fb.keys())
        for key in fa:
            assert fa[key].dtype == fb[key].dtype and fa[key][()].tobytes() == fb[key][()].tobytes(), key
            assert {k: repr(v) for k, v in fa[key].attrs.items()} == {k: repr(v) for k, v in fb[key].attrs.items()}
        drop = {"extract_s"}
        assert ({k: repr(v) for k, v in fa.attrs.items() if k not in drop}
                == {k: repr(v) for k, v in fb.attrs.items() if k not in drop})


def test_outputs_match_single_process_bad_slide_fails_rerun_skips(ray_session, cohort: dict, tmp_path: Path) -> None:
    slides = [cohort["slide"](f"m{i}", seed=i, w=900 + 100 * i) for i in range(4)]
    out, ref = tmp_path / "cluster", tmp_path / "single"
    summary, events = _run([*slides, cohort["bad"]], out, cohort, _copts(stage_dir=tmp_path / "stage"))
    status = {r.slide: r for r in summary.results}
    assert {s: r.status for s, r in status.items()} == {"m0": "done", "m1": "done", "m2": "done", "m3": "done",
                                                         "bad": "failed"}
    assert "bad.tiff" in status["bad"].reason
    assert sorted(g for w in summary.workers for g in w["gpu_ids"]) == ["0", "1"]  # distinct logical GPUs
    assert len({r.extra["pid"] for r in summary.results if r.extra}) == 2
    done = [e.done for e in events if e.stage == "extract"]
    assert done == sorted(done) and done[-1] == events[-1].total == 5
    assert_no_temp(out)
    assert not any((tmp_path / "stage").rglob("*.tiff"))

    single, _ = collect(extract_slides(slides, ref, _opts(cohort)))
    for s in single.slides:
        _same_h5(feature_path(out, "keep", s.slide_name), Path(s.output))
        _same_h5(out / "coords" / f"{s.slide_name}.h5", ref / "coords" / f"{s.slide_name}.h5")

    again, _ = _run([*slides, cohort["bad"]], out, cohort, _copts())
    assert sorted(r.status for r in again.results) == ["failed", "skipped", "skipped", "skipped", "skipped"]
    assert sum(r.extra["encode_calls"] for r in again.results) == 0
    lines = status_lines(out)
    assert "4 skipped" in lines[0] and "1 failed" in lines[0] and "bad" in lines[1]


def test_killed_worker_restarts_and_slide_is_retried(ray_session, cohort: dict, tmp_path: Path) -> None:
    slides = [cohort["slide"](f"k{i}", seed=10 + i) for i in range(6)]
    out, killed = tmp_path / "out", []

    def kill_first_worker(ev) -> None:
        if ev.stage == "extract" and ev.done >= 1 and not killed:
            pid = next(read_ledger(ledger_path(out))).extra["pid"]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    faults = tuple((p.stem, "slow") for p in slides)
    summary, _ = _run(slides, out, cohort, _copts(fault_injection=faults), kill_first_worker)
    assert killed and sorted(r.status for r in summary.results) == ["done"] * 6
    entries = list(read_ledger(ledger_path(out)))
    assert [e.status for e in entries].count("retry") == 1
    retried = next(e for e in entries if e.status == "retry")
    assert next(e for e in entries if e.slide == retried.slide and e.status == "done").attempt == 2
    for p in slides:
        ff = read_features(feature_path(out, "keep", p.stem))
        assert len(ff.features) == len(read_coords(out / "coords" / f"{p.stem}.h5").coords) > 0
    assert_no_temp(out)


def test_slide_crashing_every_time_is_crashed_and_hang_times_out(ray_session, cohort: dict, tmp_path: Path) -> None:
    big = [cohort["slide"]("crashme", 30, w=1400, h=1000), cohort["slide"]("hangs", 31, w=1400, h=1000)]
    small = [cohort["slide"](f"c{i}", 32 + i, w=700, h=600) for i in range(2)]
    copts = _copts(fault_injection=(("crashme", "crash"), ("hangs", "hang")), slide_timeout_s=10.0)
    summary, _ = _run([*small, *big], tmp_path / "out", cohort, copts)
    status = {r.slide: r for r in summary.results}
    assert {s: r.status for s, r in status.items()} == {"crashme": "crashed", "hangs": "timeout", "c0": "done",
                                                         "c1": "done"}
    assert status["crashme"].attempt == 2 and "worker died" in status["crashme"].reason
    assert "10 s" in status["hangs"].reason
    assert not (tmp_path / "out" / "keep" / "h5_files" / "crashme.h5").exists()


def test_cancel_after_two_results_stops_fast_and_rerun_completes(ray_session, cohort: dict, tmp_path: Path) -> None:
    slides = [cohort["slide"](f"x{i}", seed=40 + i) for i in range(8)]
    out, cancel, when = tmp_path / "out", threading.Event(), []

    def stop_after_two(ev) -> None:
        if ev.stage == "extract" and ev.done >= 2 and not cancel.is_set():
            cancel.set()
            when.append(time.monotonic())

    with pytest.raises(JobCancelled):
        _run(slides, out, cohort, _copts(fault_injection=tuple((p.stem, "slow") for p in slides)),
             stop_after_two, cancel)
    assert time.monotonic() - when[0] < 5.0
    finished = [p for p in slides if feature_path(out, "keep", p.stem).exists()]
    assert 2 <= len(finished) < len(slides)
    summary, _ = _run(slides, out, cohort, _copts())
    status = {r.slide: r.status for r in summary.results}
    assert all(status[p.stem] == "skipped" for p in finished)
    assert sorted(status.values()).count("done") == len(slides) - len(finished)
    assert_no_temp(out)


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from pathpt_engine.prompts.classsets import load_classset
    from pathpt_engine.testing.cohorts import make_fake_cohort, tiny_backbone

    root = tmp_path_factory.mktemp("fake")
    bb = tiny_backbone(root / "keep")
    feats, labels = make_fake_cohort(root / "c", bb, load_classset("synthetic"), per_class=4, n_tiles=16)
    return root / "keep", feats, labels


def test_evaluate_protocol_as_ray_tasks_matches_single_process_and_resumes(
        ray_session, features: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import json

    from pathpt_engine.cli import main

    keep, feats, labels = features
    base = ["-q", "evaluate", "--features", str(feats), "--backbone", "keep", "--weights", str(keep),
            "--device", "cpu", "--classes", "synthetic", "--labels", str(labels), "--shots", "1", "--folds", "2",
            "--methods", "zeroshot,abmil", "--mil-epochs", "2"]
    cluster_args = [*base, "--out", str(tmp_path / "ray"), "--cluster", "local", "--cpus-per-task", "1"]
    assert main(cluster_args) == 0
    assert main([*base, "--out", str(tmp_path / "single")]) == 0
    files = sorted((tmp_path / "ray").glob("runs/*/*/fold*.json"))
    assert len(files) == 4
    for f in files:
        a, b = json.loads(f.read_text()), json.loads((tmp_path / "single" / f.relative_to(tmp_path / "ray")).read_text())
        assert [p["predicted"] for p in a["predictions"]] == [p["predicted"] for p in b["predictions"]]
        key = "probs" if "probs" in a["predictions"][0] else "vote_shares"  # zero-shot rows record vote shares
        np.testing.assert_allclose([p[key] for p in a["predictions"]], [p[key] for p in b["predictions"]],
                                   atol=1e-4)
    entries = list(read_ledger(tmp_path / "ray" / "evaluate-ledger.jsonl"))
    assert sorted(e.slide for e in entries) == ["abmil/1shot/fold0", "abmil/1shot/fold1", "zeroshot/1shot/fold0",
                                                "zeroshot/1shot/fold1"]
    assert all(e.status == "done" for e in entries)
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    capsys.readouterr()
    assert main(cluster_args) == 0  # every fold done: no task runs, the table is rewritten
    assert all(f.stat().st_mtime_ns == t for f, t in mtimes.items())
    assert len(list(read_ledger(tmp_path / "ray" / "evaluate-ledger.jsonl"))) == 4
    assert "| zeroshot | 1 | 2 |" in capsys.readouterr().out


def test_predict_on_ray_writes_the_same_files(ray_session, features: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from pathpt_engine.cli import main

    keep, feats, labels = features
    common = ["--features", str(feats), "--weights", str(keep), "--device", "cpu"]
    assert main(["-q", "train", *common, "--backbone", "keep", "--classes", "synthetic", "--labels", str(labels),
                 "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    predict = ["-q", "predict", "--run", str(tmp_path / "run"), *common]
    assert main([*predict, "--out", str(tmp_path / "single")]) == 0
    assert main([*predict, "--out", str(tmp_path / "ray"), "--cluster", "local", "--cpus-per-task", "1"]) == 0
    assert (tmp_path / "ray" / "predictions.csv").read_bytes() == (tmp_path / "single" / "predictions.csv").read_bytes()
    single = sorted((tmp_path / "single" / "tiles").glob("*.h5"))
    assert len(single) == 12
    for f in single:
        with h5py.File(f, "r") as a, h5py.File(tmp_path / "ray" / "tiles" / f.name, "r") as b:
            np.testing.assert_allclose(a["probs"][()], b["probs"][()], atol=1e-6)
            assert a.attrs["slide_predicted"] == b.attrs["slide_predicted"]
