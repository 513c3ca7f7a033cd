"""Helpers that write small test slides at test time (white background + coloured, textured blobs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pathpt_engine.synth.writer import build_pyramid, write_slide


def blob_image(width: int = 2048, height: int = 1536, seed: int = 0, blobs: int = 3) -> np.ndarray:
    """White RGB image with `blobs` textured pink/purple ellipses (tissue) and a little noise."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:height, 0:width]
    colours = [(225, 140, 180), (150, 80, 160), (240, 170, 200)]
    for i in range(blobs):
        cx, cy = rng.uniform(0.2, 0.8) * width, rng.uniform(0.2, 0.8) * height
        rx, ry = rng.uniform(0.08, 0.2) * width, rng.uniform(0.08, 0.2) * height
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
        noise = rng.integers(-25, 25, size=(int(inside.sum()), 3))
        img[inside] = np.clip(np.array(colours[i % 3]) + noise, 0, 255).astype(np.uint8)
    return img


def make_slide(path: Path, width: int = 2048, height: int = 1536, fmt: str = "tiff", mpp: float = 0.25,
               seed: int = 0, blobs: int = 3, **kwargs: object) -> Path:
    """Write a pyramidal TIFF/SVS slide of a blob image with `write_slide`."""
    return write_slide(path, blob_image(width, height, seed, blobs), mpp=mpp, fmt=fmt, **kwargs)  # type: ignore[arg-type]


def write_rgb_jpeg_svs(path: Path, image: np.ndarray, mpp: float | None = 0.25, tile: int = 256,
                       resolution_mpp: float | None = None) -> Path:
    """Aperio SVS whose JPEG tiles hold RGB components (Photometric=RGB, no JFIF), as many real scanners write.

    `mpp=None` leaves MPP out of the description; `resolution_mpp` adds TIFF resolution tags on level 0.
    """
    pyramid = build_pyramid(image)
    h, w = image.shape[:2]
    jpeg = {"compression": "jpeg", "compressionargs": {"level": 90, "outcolorspace": "RGB"}, "photometric": "rgb",
            "metadata": None}
    res = {} if resolution_mpp is None else {"resolution": (1e4 / resolution_mpp,) * 2, "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        desc = f"Aperio Image Library v12.0.0 \r\n{w}x{h} ({tile}x{tile}) JPEG/RGB Q=90|AppMag = 40"
        if mpp is not None:
            desc += f"|MPP = {mpp:.4f}"
        tw.write(pyramid[0], tile=(tile, tile), description=desc, **jpeg, **res)
        tw.write(pyramid[-1], description=f"Aperio Image Library v12.0.0 \r\n{w}x{h} -> thumb", **jpeg)
        for level in pyramid[1:]:
            tw.write(level, tile=(tile, tile), description=f"Aperio Image Library v12.0.0 \r\n{w}x{h} -> level",
                     **jpeg)
    return path


def write_plain_tiff(path: Path, image: np.ndarray, compression: str | None = "zlib", tiled: bool = True,
                     resolution: tuple[float, float] | None = None, unit: str = "CENTIMETER") -> Path:
    """Single-level TIFF: tiled non-JPEG (OpenSlide reads it, no fast path) or stripped (OpenSlide cannot)."""
    kwargs: dict[str, object] = {"photometric": "rgb", "compression": compression, "metadata": None}
    if tiled:
        kwargs["tile"] = (256, 256)
    if resolution is not None:
        kwargs["resolution"] = resolution
        kwargs["resolutionunit"] = unit
    tifffile.imwrite(path, image, **kwargs)
    return path


def corrupt_tile(path: Path, page: int = 0, index: int = 0) -> None:
    """Overwrite the bytes of one tile (after its first 16) with garbage, keeping the file size."""
    with tifffile.TiffFile(path) as tf:
        p = tf.pages[page]
        offset, count = p.dataoffsets[index], p.databytecounts[index]
    with open(path, "r+b") as fh:
        fh.seek(offset + 16)
        fh.write(bytes([0xFF, 0xD9]) + b"\x00" * (count - 18))
