"""Slides: reader protocol + OpenSlide reader (with a JPEG-tile fast path), tissue mask, tile grid, tiling job."""

from .base import SlideReader
from .reader import OpenSlideReader, open_slide

__all__ = ["OpenSlideReader", "SlideReader", "open_slide"]
