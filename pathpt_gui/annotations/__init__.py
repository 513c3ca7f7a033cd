"""Annotation tools in the slide viewer (regions, tile corrections, QuPath GeoJSON, where to look next)."""

from .controller import AnnotationController, install_annotations

__all__ = ["AnnotationController", "install_annotations"]
