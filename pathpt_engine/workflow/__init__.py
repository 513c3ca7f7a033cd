"""The project's jobs, written once and Qt-free: predict, zero-shot, write a run's outputs, export a run.

The CLI (`pathpt zeroshot|predict|export`), the Ray path (`pathpt_engine.cluster`), the demo
(`pathpt_engine.demo`) and the GUI's project jobs (`pathpt_gui.project_jobs`) all call these, so the same run
gives the same files whichever front end drives it.
"""

from .outputs import output_lines, write_run_outputs, write_tile_scores
from .predict import Predictions, ProbsFn, model_probs, predict, zeroshot, zeroshot_classifier

__all__ = [
    "Predictions", "ProbsFn", "model_probs", "output_lines", "predict", "write_run_outputs", "write_tile_scores",
    "zeroshot", "zeroshot_classifier",
]
