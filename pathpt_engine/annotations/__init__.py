"""Regions and tile corrections drawn by a pathologist, and how they become tile supervision.

Qt-free. `geometry` (polygons with holes, validity, area), `coverage` (exact tile overlap, per-tile overrides),
`regions` (classes and their mapping), `qupath` (QuPath GeoJSON import/export), `apply` (overrides on slides),
`review` (where to look next).
"""

from .coverage import COVER_THRESHOLD, IGNORE, NONE, tile_coverage, tile_overrides
from .geometry import Geometry, InvalidRegion, Part, area_mm2, contains, ellipse, polygon, rectangle, validate
from .regions import IGNORE_CLASS, Region, class_index, match_class, region_classes, resolve_classes

__all__ = [
    "COVER_THRESHOLD", "IGNORE", "IGNORE_CLASS", "NONE", "Geometry", "InvalidRegion", "Part", "Region", "area_mm2",
    "class_index", "contains", "ellipse", "match_class", "polygon", "rectangle", "region_classes", "resolve_classes",
    "tile_coverage", "tile_overrides", "validate",
]
