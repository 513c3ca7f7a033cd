"""Exports: PNG overlays and heatmap figures, QuPath GeoJSON (export + import), prediction CSV, score h5."""

from ._atomic import ExportError, atomic_path, write_text_atomic
from .figure import export_heatmap_figure, heatmap_grid
from .geojson import GeoJsonImport, Region, read_geojson, read_regions, to_geojson, write_geojson
from .png import ARGMAX, OverlayStyle, export_overlay_png, render_overlay, write_png
from .regions import tile_labels_from_regions
from .scores import read_scores_h5, write_scores_h5
from .tables import copy_checkpoint, read_predictions_csv, write_predictions_csv

__all__ = [
    "ARGMAX", "ExportError", "GeoJsonImport", "OverlayStyle", "Region", "atomic_path", "copy_checkpoint",
    "export_heatmap_figure", "export_overlay_png", "heatmap_grid", "read_geojson", "read_predictions_csv", "read_regions",
    "read_scores_h5", "render_overlay", "tile_labels_from_regions", "to_geojson", "write_geojson", "write_png", "write_predictions_csv",
    "write_scores_h5", "write_text_atomic",
]
