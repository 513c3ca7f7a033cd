"""Overlay PNG with its caption: always in the PNG's text chunks (Title, Description), and optionally drawn in a
strip under the image with the legend (class swatches, or the colour ramp of the class probability).

The strip is at least `MIN_STRIP_WIDTH` px wide, so a small overlay is padded on the right with white.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

from ..colors import class_colors
from ..results import TileScores
from ..slides.base import SlideReader
from ._atomic import ExportError, atomic_path
from .captions import Caption, caption_lines, title
from .png import ARGMAX, OverlayStyle, render_overlay
from .raster import Region

MIN_STRIP_WIDTH = 640
_LINE = 18
_PAD = 6


def _font() -> Any:
    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # Pillow without FreeType sizes
        return ImageFont.load_default()


def legend_strip(scores: TileScores, style: OverlayStyle, caption: Caption | None, width: int) -> np.ndarray:
    """RGB strip (h, width, 3): legend row, then the caption lines."""
    lines = caption_lines(scores.slide_id, style, caption)
    h = _PAD * 2 + _LINE * (len(lines) + 1)
    img = Image.new("RGB", (width, h), "white")
    draw = ImageDraw.Draw(img)
    font = _font()
    x, y = _PAD, _PAD
    if style.mode == ARGMAX:
        rgb = class_colors(scores.class_names, style.colors, style.normal_index)
        for i, name in enumerate(scores.class_names):
            if i == style.normal_index:
                continue
            draw.rectangle((x, y + 2, x + 12, y + 14), fill=rgb[name], outline="black")
            draw.text((x + 16, y), name, fill="black", font=font)
            x += 16 + int(draw.textlength(name, font=font)) + 14
    else:
        import matplotlib

        ramp = matplotlib.colormaps[style.cmap](np.linspace(0, 1, 200), bytes=True)[:, :3]
        img.paste(Image.fromarray(np.repeat(ramp[None], 12, axis=0)), (x + 30, y + 2))
        draw.text((x, y), f"{style.vmin:g}", fill="black", font=font)
        draw.text((x + 236, y), f"{style.vmax:g}  tile probability of {style.mode}", fill="black", font=font)
    for line in lines:
        y += _LINE
        draw.text((_PAD, y), line, fill="black", font=font)
    return np.asarray(img)


def with_strip(image: np.ndarray, strip: np.ndarray) -> np.ndarray:
    """`image` above `strip`, padded with white to the wider of the two."""
    w = max(image.shape[1], strip.shape[1])
    out = np.full((image.shape[0] + strip.shape[0], w, 3), 255, np.uint8)
    out[:image.shape[0], :image.shape[1]] = image[:, :, :3]
    out[image.shape[0]:, :strip.shape[1]] = strip
    return out


def write_captioned_png(path: str | os.PathLike[str], image: np.ndarray, scores: TileScores, style: OverlayStyle,
                        caption: Caption | None) -> Path:
    """Write `image` as PNG atomically with the title and caption in its text chunks."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Title", title(scores.slide_id, style, caption))
    info.add_itxt("Description", "\n".join(caption_lines(scores.slide_id, style, caption)))
    with atomic_path(path) as tmp:
        try:
            Image.fromarray(image).save(tmp, format="PNG", pnginfo=info)
        except OSError as exc:
            raise ExportError(f"{path}: cannot write PNG ({exc})") from exc
    return Path(path)


def export_overlay_png_captioned(path: str | os.PathLike[str], reader: SlideReader, scores: TileScores,
                                 downsample: float, style: OverlayStyle, region: Region | None = None,
                                 caption: Caption | None = None, legend: bool = False) -> Path:
    """The blended overlay (`png.render_overlay`) with its caption, and with `legend` the legend strip."""
    image = render_overlay(reader, scores, downsample, style, region)
    if legend:
        strip = legend_strip(scores, style, caption, max(MIN_STRIP_WIDTH, image.shape[1]))
        image = with_strip(image, strip)
    return write_captioned_png(path, image, scores, style, caption)
