"""Killing the process at any moment loses no committed change and leaves a consistent project."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pathpt_engine.project import DB_NAME, Project
from pathpt_engine.prompts.classsets import synth_classset
from pathpt_engine.synth.writer import write_slide

CLASSES = synth_classset(2)
A, B = CLASSES.subtype_names
WRITER = textwrap.dedent("""
    import sys
    from pathpt_engine.project import Project
    proj = Project.open(sys.argv[1])
    labels = (sys.argv[2], sys.argv[3])
    i = 0
    while True:
        proj.set_setting(f"k{i}", i)
        proj.labels.set("s", labels[i % 2])
        print(i, flush=True)
        i += 1
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_loses_nothing_committed(tmp_path: Path) -> None:
    write_slide(tmp_path / "s.tiff", np.full((256, 256, 3), 200, np.uint8), fmt="tiff")
    with Project.create(tmp_path / "p") as proj:
        proj.classes.set(CLASSES)
        proj.slides.add(tmp_path / "s.tiff")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path / "p"), A, B], stdout=subprocess.PIPE,
                             text=True, env=env)
    last = -1
    assert child.stdout is not None
    for line in child.stdout:
        last = int(line)
        if last >= 40:
            break
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    child.stdout.close()
    assert last >= 40
    con = sqlite3.connect(tmp_path / "p" / DB_NAME)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()
    with Project.open(tmp_path / "p") as proj:
        settings = proj.settings()
        for i in range(last + 1):  # every change reported as done is there
            assert settings[f"k{i}"] == i
        n = len(settings)
        assert n in (last + 1, last + 2, last + 3)  # plus at most the changes made after the last report
        label = proj.labels.get("s")
        # the label matches the last setting written (both commit before the print; at most one more pair)
        assert label is not None and label.label in (A, B)
        assert label.label in ((A, B)[(n - 1) % 2], (A, B)[n % 2])
        # history is intact: undo walks back through the alternating labels
        before = label.label
        proj.labels.undo()
        after = proj.labels.get("s")
        assert after is not None and after.label != before


RUNNER = textwrap.dedent("""
    import sys, time
    from pathpt_engine.project import Project
    proj = Project.open(sys.argv[1])
    run = proj.runs.create("pathpt", "demo", {"shots": 1})
    print(run.run_id, flush=True)
    time.sleep(60)
""")


def test_a_killed_run_is_marked_interrupted_on_next_open(tmp_path: Path) -> None:
    """A run left `running` by a killed process becomes `interrupted` when the project is next opened; a run
    whose owner is alive (another process, or this one) stays `running`."""
    with Project.create(tmp_path / "p"):
        pass
    live = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path / "p")], stdout=subprocess.PIPE, text=True)
    dead = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path / "p")], stdout=subprocess.PIPE, text=True)
    try:
        live_id, dead_id = live.stdout.readline().strip(), dead.stdout.readline().strip()
        dead.kill()
        dead.wait(timeout=30)
        with Project.open(tmp_path / "p") as proj:
            own = proj.runs.create("pathpt", "demo").run_id
            assert proj.interrupted_runs == [dead_id]
            assert proj.runs.get(dead_id).status == "interrupted"
            assert "interrupted" in proj.runs.get(dead_id).message and proj.runs.get(dead_id).finished
            assert proj.runs.get(live_id).status == "running"
            with Project.open(tmp_path / "p") as second:  # a second opener sees this process's run as live
                assert second.interrupted_runs == []
            proj.runs.set_status(own, "done")
            assert not (proj.run_dir(own) / ".running.lock").exists()
    finally:
        live.kill()
        live.wait(timeout=30)
        dead.stdout.close()
        live.stdout.close()
    with Project.open(tmp_path / "p") as proj:
        assert proj.interrupted_runs == [live_id]
        assert proj.runs.get(own).status == "done"
