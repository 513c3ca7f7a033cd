"""Project store: one SQLite database per project folder (slides, classes, labels, runs, predictions, settings)."""

from ..colors import DEFAULT_PALETTE, default_colors
from ..prompts.classsets import ClassInfo, ClassSet
from .db import DB_NAME, SCHEMA_VERSION
from .labels import SPLITS, Label, LabelImportReport
from .runs import STATUSES, PredictionRecord, RunRecord, margin_uncertainty
from .slides import SLIDE_EXTENSIONS, AddReport, RelinkReport, SlideRecord
from .store import Project

__all__ = [
    "DB_NAME", "DEFAULT_PALETTE", "SCHEMA_VERSION", "SLIDE_EXTENSIONS", "SPLITS", "STATUSES", "AddReport",
    "ClassInfo", "ClassSet", "Label", "LabelImportReport", "PredictionRecord", "Project", "RelinkReport",
    "RunRecord", "SlideRecord", "default_colors", "margin_uncertainty",
]
