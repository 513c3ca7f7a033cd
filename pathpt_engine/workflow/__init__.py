"""The project's jobs, written once and Qt-free: predict, zero-shot, write a run's outputs, export a run.

The CLI (`pathpt zeroshot|predict|export`), the Ray path (`pathpt_engine.cluster`), the demo
(`pathpt_engine.demo`) and the GUI's project jobs (`pathpt_gui.project_jobs`) all call these, so the same run
gives the same files whichever front end drives it. Names are imported lazily, so `pathpt --help` (which
imports the export command) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .export import ExportOptions, export_run, export_slide, load_scores
    from .outputs import output_lines, write_run_outputs, write_tile_scores
    from .scoring import Predictions, ProbsFn, model_probs, predict, zeroshot, zeroshot_classifier

_WHERE = {
    "ExportOptions": "export", "export_run": "export", "export_slide": "export", "load_scores": "export",
    "output_lines": "outputs", "write_run_outputs": "outputs", "write_tile_scores": "outputs",
    "Predictions": "scoring", "ProbsFn": "scoring", "model_probs": "scoring", "predict": "scoring",
    "zeroshot": "scoring", "zeroshot_classifier": "scoring",
}

__all__ = [
    "ExportOptions", "Predictions", "ProbsFn", "export_run", "export_slide", "load_scores", "model_probs",
    "output_lines", "predict", "write_run_outputs", "write_tile_scores", "zeroshot", "zeroshot_classifier",
]


def __getattr__(name: str) -> Any:  # noqa: ANN401 - PEP 562 lazy import
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
