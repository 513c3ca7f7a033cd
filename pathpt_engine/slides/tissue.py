"""Tissue mask from a slide thumbnail: HSV saturation, Otsu threshold (clamped), small-object and hole cleanup.

Glass and white background have near-zero saturation; stained tissue does not. Otsu picks the split between the
two; the threshold is clamped to [`min_saturation`, `max_saturation`] so that a blank slide gives an empty mask
(Otsu would otherwise split noise) and a slide covered in tissue does not lose its paler half.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .base import SlideReader

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TissueParams:
    """Tissue detection settings.

    Attributes:
        thumb_size: longer side (px) of the thumbnail the mask is computed on.
        blur_sigma: Gaussian blur (thumbnail px) of the saturation before thresholding.
        min_saturation: lowest allowed threshold (saturation in [0, 1]); below it is always background.
        max_saturation: highest allowed threshold; above it is always tissue.
        min_object_fraction: tissue pieces smaller than this fraction of the thumbnail area are dropped.
        max_hole_fraction: holes inside tissue smaller than this fraction of the thumbnail area are filled.
    """

    thumb_size: int = 2048
    blur_sigma: float = 1.0
    min_saturation: float = 0.05
    max_saturation: float = 0.15
    min_object_fraction: float = 1e-4
    max_hole_fraction: float = 1e-3

    def __post_init__(self) -> None:
        if self.thumb_size < 16:
            raise ValueError(f"thumb_size must be >= 16, got {self.thumb_size}")
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        if not 0 <= self.min_saturation <= self.max_saturation <= 1:
            raise ValueError("need 0 <= min_saturation <= max_saturation <= 1, got "
                             f"{self.min_saturation}, {self.max_saturation}")
        for name in ("min_object_fraction", "max_hole_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass(frozen=True)
class TissueMask:
    """A boolean tissue mask and its scale.

    Attributes:
        mask: (h, w) bool, True on tissue.
        downsample: level-0 pixels per mask pixel along (x, y).
        threshold: the saturation threshold used.
    """

    mask: np.ndarray
    downsample: tuple[float, float]
    threshold: float

    @property
    def fraction(self) -> float:
        """Fraction of the slide covered by tissue."""
        return float(self.mask.mean()) if self.mask.size else 0.0


def saturation(rgb: np.ndarray) -> np.ndarray:
    """HSV saturation in [0, 1] of an RGB uint8 image (0 where the pixel is black)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    out = (mx - mn).astype(np.float32)  # no wrap-around: mx >= mn
    out /= np.maximum(mx, 1).astype(np.float32)
    return out


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (maximises the between-class variance)."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.0
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * centers)
    mu0 = m0 / np.maximum(w0, 1e-12)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1e-12)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between)) + 1])


def mask_from_rgb(rgb: np.ndarray, params: TissueParams = TissueParams()) -> tuple[np.ndarray, float]:
    """Tissue mask of an RGB thumbnail and the threshold used."""
    sat = saturation(rgb)
    if params.blur_sigma > 0:
        sat = ndimage.gaussian_filter(sat, params.blur_sigma)
    threshold = min(max(otsu_threshold(sat), params.min_saturation), params.max_saturation)
    mask = sat > threshold
    area = mask.size
    mask = _drop_small(mask, params.min_object_fraction * area)
    return fill_small_holes(mask, params.max_hole_fraction * area), threshold


def tissue_mask(reader: SlideReader, params: TissueParams = TissueParams()) -> TissueMask:
    """Compute the tissue mask of a slide from its thumbnail."""
    thumb = reader.thumbnail(params.thumb_size)
    mask, threshold = mask_from_rgb(thumb, params)
    width, height = reader.dimensions
    ds = (width / mask.shape[1], height / mask.shape[0])
    result = TissueMask(mask, ds, threshold)
    logger.debug("%s: tissue %.1f%% (threshold %.3f)", reader.path, 100 * result.fraction, threshold)
    return result


def _drop_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    if min_px <= 1 or not mask.any():
        return mask
    labels, n = ndimage.label(mask)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[labels]


def fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """`mask` with every hole (background not connected to the border) of fewer than `max_px` pixels filled."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    return mask | _drop_large_holes(holes, max_px)


def _drop_large_holes(holes: np.ndarray, max_px: float) -> np.ndarray:
    if not holes.any():
        return holes
    labels, n = ndimage.label(holes)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes < max_px
    small[0] = False
    return small[labels]
