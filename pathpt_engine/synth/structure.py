"""Tissue architecture as functions of global micron coordinates: epithelium/lumen regions and stroma fibres.

Every function takes X and Y that broadcast together (a grid: X of shape (1, w), Y of shape (h, 1); or scattered
points: two equal 1-D arrays) and a flag `grid` saying which, so that region tests at nucleus centres agree with
the rendered regions.
"""

from __future__ import annotations

import numpy as np

from . import noise
from .subtypes import Morphology

# salts: keep every field's random stream separate
_S_GLAND, _S_NEST, _S_SHEET, _S_FIBRE, _S_DENS, _S_NGLAND, _S_WARP = 11, 12, 13, 14, 15, 16, 17


def field(x: np.ndarray, y: np.ndarray, scale: float, seed: int, salt: int, grid: bool,
          octaves: int = 2) -> np.ndarray:
    """fbm noise on a grid (x: (1, w), y: (h, 1)) or at points."""
    if grid:
        return noise.fbm_grid(x.ravel(), y.ravel(), scale, seed, salt, octaves)
    return noise.fbm_points(x, y, scale, seed, salt, octaves)


def _site_range(x: np.ndarray, y: np.ndarray, s: float, pad: int) -> tuple[np.ndarray, np.ndarray]:
    i = np.arange(int(np.floor(x.min() / s)) - pad, int(np.floor(x.max() / s)) + pad + 1)
    j = np.arange(int(np.floor(y.min() / s)) - pad, int(np.floor(y.max() / s)) + pad + 1)
    jj, ii = np.meshgrid(j, i, indexing="ij")
    return ii.ravel(), jj.ravel()


def _glands(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, spacing: float, prob: float,
            radius: tuple[float, float], lumen: tuple[float, float], wobble: float, salt: int,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(epithelium, lumen) in [0, 1] for glands on a jittered lattice (ring of epithelium around a lumen)."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    epi = np.zeros(shape, np.float32)
    lum = np.zeros(shape, np.float32)
    ii, jj = _site_range(x, y, spacing, 1)
    u = [noise.hash_uniform(seed, salt, k, jj, ii) for k in range(5)]
    keep = u[0] < prob
    cx = (ii + 0.5 + 0.6 * (u[1] - 0.5)) * spacing
    cy = (jj + 0.5 + 0.6 * (u[2] - 0.5)) * spacing
    rad = (radius[0] + (radius[1] - radius[0]) * u[3]) * spacing
    rl = rad * (lumen[0] + (lumen[1] - lumen[0]) * u[4])
    warp = field(x, y, spacing * 0.35, seed, salt + 100, grid) * wobble * spacing
    for k in np.flatnonzero(keep):
        d = np.sqrt((x - cx[k]) ** 2 + (y - cy[k]) ** 2) + warp
        ring = (d < rad[k]) & (d >= rl[k])
        epi = np.maximum(epi, ring)
        lum = np.maximum(lum, d < rl[k])
    epi = np.where(lum > 0, 0, epi)
    return epi.astype(np.float32), lum.astype(np.float32)


def _nests(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, spacing: float) -> np.ndarray:
    """Epithelium of large Voronoi nests separated by fibrous septa of varying width."""
    ii, jj = _site_range(x, y, spacing, 2)
    cx = (ii + 0.5 + 0.7 * (noise.hash_uniform(seed, _S_NEST, 1, jj, ii) - 0.5)) * spacing
    cy = (jj + 0.5 + 0.7 * (noise.hash_uniform(seed, _S_NEST, 2, jj, ii) - 0.5)) * spacing
    shape = np.broadcast_shapes(x.shape, y.shape)
    d1 = np.full(shape, np.inf, np.float32)
    d2 = np.full(shape, np.inf, np.float32)
    for k in range(cx.size):
        d = np.sqrt((x - cx[k]) ** 2 + (y - cy[k]) ** 2)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    half_gap = 0.5 * (d2 - d1)
    width = 5.0 + 6.0 * (field(x, y, 60.0, seed, _S_NEST + 100, grid) + 0.5)
    return (half_gap > np.maximum(width, 2.0)).astype(np.float32)


def _sheet(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, spacing: float) -> np.ndarray:
    """Mostly epithelium with thin winding fibrovascular septa (ridges of a noise field)."""
    f = field(x, y, spacing, seed, _S_SHEET, grid, octaves=3)
    return (np.abs(f) > 0.035).astype(np.float32)


def regions(m: Morphology, x: np.ndarray, y: np.ndarray, seed: int, grid: bool,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(epithelium, lumen) weights in [0, 1] for a tissue kind; the rest is stroma."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    zeros = np.zeros(shape, np.float32)
    s = m.structure_um
    if m.arrangement == "gland":
        return _glands(x, y, seed, grid, s, 0.9, (0.38, 0.5), (0.3, 0.55), 0.22, _S_GLAND)
    if m.arrangement == "nest":
        return _nests(x, y, seed, grid, s), zeros
    if m.arrangement == "sheet":
        return _sheet(x, y, seed, grid, s), zeros
    if m.arrangement == "stroma" and m.normal_glands > 0:
        return _glands(x, y, seed, grid, s, m.normal_glands, (0.14, 0.2), (0.62, 0.7), 0.04, _S_NGLAND)
    return zeros, zeros.copy()


def _fibre_angles(seed: int) -> tuple[float, float]:
    a1 = float(noise.hash_uniform(seed, _S_FIBRE, 0)) * np.pi
    return a1, a1 + np.pi * (0.35 + 0.3 * float(noise.hash_uniform(seed, _S_FIBRE, 1)))


def _phases(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, period: float,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a1, a2 = _fibre_angles(seed)
    warp = field(x, y, 40.0, seed, _S_WARP, grid, octaves=2) * 9.0
    k = 2 * np.pi / period
    p1 = k * (x * np.cos(a1) + y * np.sin(a1)) + warp
    p2 = k * (x * np.cos(a2) + y * np.sin(a2)) + warp
    w = np.clip(field(x, y, 180.0, seed, _S_FIBRE + 100, grid) * 3.0 + 0.5, 0.0, 1.0)
    return p1, p2, w


def fibres(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, period: float) -> np.ndarray:
    """Wavy collagen-fibre intensity in [0, 1]: two domain-warped stripe sets blended by a slow field."""
    p1, p2, w = _phases(x, y, seed, grid, period)
    s1 = (0.5 + 0.5 * np.sin(p1)) ** 2
    s2 = (0.5 + 0.5 * np.sin(p2)) ** 2
    return (w * s1 + (1 - w) * s2).astype(np.float32)


def fibre_angle(x: np.ndarray, y: np.ndarray, seed: int, period: float) -> np.ndarray:
    """Local fibre direction (radians) at points: perpendicular to the dominant stripe set's phase gradient."""
    eps = 0.5
    p1, p2, w = _phases(x, y, seed, False, period)
    p1x, p2x, _ = _phases(x + eps, y, seed, False, period)
    p1y, p2y, _ = _phases(x, y + eps, seed, False, period)
    gx = np.where(w > 0.5, p1x - p1, p2x - p2)
    gy = np.where(w > 0.5, p1y - p1, p2y - p2)
    return np.arctan2(gy, gx) + np.pi / 2


def stroma_density(x: np.ndarray, y: np.ndarray, seed: int, grid: bool) -> np.ndarray:
    """Dense (1) vs loose, oedematous (towards 0) stroma, with occasional clefts."""
    f = field(x, y, 70.0, seed, _S_DENS, grid, octaves=3)
    return np.clip(0.7 + 1.2 * f, 0.08, 1.0).astype(np.float32)
