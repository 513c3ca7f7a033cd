"""A ready project for GUI tests: one slide, one finished run with tile scores and a prediction."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pathpt_engine.export import write_scores_h5
from pathpt_engine.project import Project
from pathpt_engine.prompts.classsets import ClassSet, synth_classset
from pathpt_engine.results import SlidePrediction, TileScores


def project_with_run(folder: Path, slide_file: Path, checkpoint: bool = False) -> tuple[str, str, ClassSet]:
    """(run id, slide id, class set) of a new project in `folder`; with `checkpoint` the run also has a real
    (tiny) checkpoint, as a trained run does."""
    from pathpt_gui.project_jobs import scores_path

    cs = synth_classset(2)
    with Project.create(folder) as p:
        p.classes.set(cs)
        sid = p.slides.add(slide_file).slide_id
        run = p.runs.create("pathpt-paper", "demo", {})
        if checkpoint:
            import torch

            from pathpt_engine.pathpt.checkpoint import save_checkpoint

            save_checkpoint(run.checkpoint, {"w": torch.ones(2)}, {"note": "test"})
        coords = np.array([[x, y] for y in range(0, 1536, 512) for x in range(0, 2048, 512)], np.int64)
        probs = np.random.default_rng(0).dirichlet(np.ones(3), len(coords)).astype(np.float32)
        write_scores_h5(scores_path(p, run.run_id, sid), TileScores(sid, coords, probs, 512, cs.class_names))
        names = cs.subtype_names
        p.runs.add_predictions(run.run_id, [SlidePrediction(sid, names[0], {names[0]: 0.7, names[1]: 0.3},
                                                            len(coords))])
        p.runs.set_status(run.run_id, "done")
    return run.run_id, sid, cs
