"""Tissue architecture as functions of global micron coordinates: epithelium/lumen regions and stroma fibres.

Every function takes X and Y that broadcast together (a grid: X of shape (1, w), Y of shape (h, 1); or scattered
points: two equal 1-D arrays) and a flag `grid` saying which, so that region tests at nucleus centres agree with
the rendered regions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import noise
from .subtypes import Morphology

# salts: keep every field's random stream separate
_S_GLAND, _S_NEST, _S_SHEET, _S_FIBRE, _S_DENS, _S_NGLAND, _S_WARP, _S_VESSEL = 11, 12, 13, 14, 15, 16, 17, 19


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


def _gland_sites(x: np.ndarray, y: np.ndarray, seed: int, spacing: float, prob: float,
                 radius: tuple[float, float], lumen: tuple[float, float], salt: int,
                 lobules: bool = False) -> np.ndarray:
    """(n, 4) array of kept glands near x, y: centre x, centre y, outer radius, lumen radius (microns)."""
    ii, jj = _site_range(x, y, spacing, 1)
    u = noise.hash_streams(5, seed, salt, jj, ii)
    cx = (ii + 0.5 + 0.6 * (u[1] - 0.5)) * spacing
    cy = (jj + 0.5 + 0.6 * (u[2] - 0.5)) * spacing
    keep_prob: float | np.ndarray = prob
    if lobules:  # glands cluster in lobules: probability follows a slow field
        keep_prob = prob * np.clip(1.6 * noise.fbm_points(cx, cy, 6.0 * spacing, seed, salt + 7, 2) + 0.5, 0.0, 1.0)
    keep = u[0] < keep_prob
    rad = (radius[0] + (radius[1] - radius[0]) * u[3]) * spacing
    rl = rad * (lumen[0] + (lumen[1] - lumen[0]) * u[4])
    return np.stack([cx, cy, rad, rl], axis=1)[keep]


def _gland_params(m: Morphology) -> tuple[float, tuple[float, float], tuple[float, float], float, int]:
    """(probability, radius range, lumen range, wobble, salt) of the kind's glands."""
    if m.arrangement == "gland":
        return 0.9, (0.36, 0.5), (0.3, 0.55), 0.22, _S_GLAND
    return m.normal_glands, (0.14, 0.2), (0.6, 0.68), 0.04, _S_NGLAND


def _glands(m: Morphology, x: np.ndarray, y: np.ndarray, seed: int, grid: bool,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(epithelium, lumen) in [0, 1] for glands on a jittered lattice (ring of epithelium around a lumen)."""
    prob, radius, lumen, wobble, salt = _gland_params(m)
    shape = np.broadcast_shapes(x.shape, y.shape)
    epi = np.zeros(shape, bool)
    lum = np.zeros(shape, bool)
    sites = _gland_sites(x, y, seed, m.structure_um, prob, radius, lumen, salt, m.arrangement == "stroma")
    warp = field(x, y, m.structure_um * 0.35, seed, salt + 100, grid) * (wobble * m.structure_um)
    for cx, cy, rad, rl in sites:
        d = np.sqrt((x - cx) ** 2 + (y - cy) ** 2) + warp
        epi |= d < rad
        lum |= d < rl
    return (epi & ~lum).astype(np.float32), lum.astype(np.float32)


def gland_angle(m: Morphology, x: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Direction (radians) from the nearest gland centre to each point (for radially arranged nuclei)."""
    prob, radius, lumen, _, salt = _gland_params(m)
    sites = _gland_sites(x, y, seed, m.structure_um, prob, radius, lumen, salt, m.arrangement == "stroma")
    if not len(sites) or not np.size(x):
        return np.zeros(np.shape(x))
    d = (x[:, None] - sites[None, :, 0]) ** 2 + (y[:, None] - sites[None, :, 1]) ** 2
    k = np.argmin(d / sites[None, :, 2] ** 2, axis=1)
    return np.arctan2(y - sites[k, 1], x - sites[k, 0])


def _nests(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, spacing: float) -> np.ndarray:
    """Epithelium of large irregular (domain-warped Voronoi) nests separated by fibrous septa."""
    wx = x + field(x, y, 90.0, seed, _S_NEST + 200, grid) * 0.25 * spacing
    wy = y + field(x, y, 90.0, seed, _S_NEST + 300, grid) * 0.25 * spacing
    ii, jj = _site_range(x, y, spacing, 2)
    u = noise.hash_streams(2, seed, _S_NEST, jj, ii)
    cx = (ii + 0.5 + 0.7 * (u[0] - 0.5)) * spacing
    cy = (jj + 0.5 + 0.7 * (u[1] - 0.5)) * spacing
    shape = np.broadcast_shapes(x.shape, y.shape)
    d1 = np.full(shape, np.inf, np.float32)
    d2 = np.full(shape, np.inf, np.float32)
    for k in range(cx.size):
        d = np.sqrt((wx - cx[k]) ** 2 + (wy - cy[k]) ** 2)
        d2 = np.minimum(d2, np.maximum(d1, d))
        d1 = np.minimum(d1, d)
    half_gap = 0.5 * (d2 - d1)
    width = 4.0 + 5.0 * (field(x, y, 50.0, seed, _S_NEST + 100, grid) + 0.5)
    return (half_gap > np.maximum(width, 1.5)).astype(np.float32)


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
    if m.arrangement == "gland" or (m.arrangement == "stroma" and m.normal_glands > 0):
        return _glands(m, x, y, seed, grid)
    if m.arrangement == "nest":
        return _nests(x, y, seed, grid, s), zeros
    if m.arrangement == "sheet":
        return _sheet(x, y, seed, grid, s), zeros
    return zeros, zeros.copy()


def vessels(x: np.ndarray, y: np.ndarray, seed: int, spacing: float, prob: float,
            ) -> tuple[np.ndarray, np.ndarray]:
    """(lumen full of red blood cells, wall) of small vessels on a jittered lattice, booleans as float32."""
    shape = np.broadcast_shapes(x.shape, y.shape)
    lum = np.zeros(shape, bool)
    wall = np.zeros(shape, bool)
    ii, jj = _site_range(x, y, spacing, 1)
    u = noise.hash_streams(5, seed, _S_VESSEL, jj, ii)
    keep = u[0] < prob
    cx = ((ii + 0.5 + 0.8 * (u[1] - 0.5)) * spacing)[keep]
    cy = ((jj + 0.5 + 0.8 * (u[2] - 0.5)) * spacing)[keep]
    rad = (4.0 + 9.0 * u[3] ** 2)[keep]
    ecc = (1.0 + 1.2 * u[4])[keep]
    for k in range(cx.size):
        d = np.sqrt((x - cx[k]) ** 2 * ecc[k] + (y - cy[k]) ** 2 / ecc[k])
        lum |= d < rad[k]
        wall |= d < rad[k] + 1.6
    return lum.astype(np.float32), (wall & ~lum).astype(np.float32)


def _fibre_angles(seed: int) -> tuple[float, float]:
    a1 = float(noise.hash_uniform(seed, _S_FIBRE, 0)) * np.pi
    return a1, a1 + np.pi * (0.35 + 0.3 * float(noise.hash_uniform(seed, _S_FIBRE, 1)))


def _linear_phase(x: np.ndarray, y: np.ndarray, angle: float, k: float, grid: bool) -> np.ndarray:
    """k * (x cos a + y sin a); on a grid computed per axis in float64 and summed in float32 (cheap, exact)."""
    if not grid:
        return k * (x * np.cos(angle) + y * np.sin(angle))
    px = np.mod(k * np.cos(angle) * x, 2 * np.pi).astype(np.float32)
    py = np.mod(k * np.sin(angle) * y, 2 * np.pi).astype(np.float32)
    return px + py


def _phases(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, period: float,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a1, a2 = _fibre_angles(seed)
    warp = field(x, y, 22.0, seed, _S_WARP, grid, octaves=2) * 5.0
    warp += field(x, y, 90.0, seed, _S_WARP + 1, grid, octaves=1) * 14.0
    k = 2 * np.pi / period
    p1 = _linear_phase(x, y, a1, k, grid) + warp
    p2 = _linear_phase(x, y, a2, k, grid) + warp
    w = np.clip(field(x, y, 180.0, seed, _S_FIBRE + 100, grid) * 3.0 + 0.5, 0.0, 1.0)
    return p1, p2, w


def fibres(x: np.ndarray, y: np.ndarray, seed: int, grid: bool, period: float) -> np.ndarray:
    """Wavy collagen-fibre intensity in [0, 1]: two domain-warped stripe sets, broken up by noise."""
    p1, p2, w = _phases(x, y, seed, grid, period)
    s1 = 0.5 + 0.5 * np.sin(p1)
    s2 = 0.5 + 0.5 * np.sin(p2)
    s1 *= s1 * s1
    s2 *= s2 * s2
    breaks = np.clip(0.55 + 1.3 * field(x, y, 9.0, seed, _S_FIBRE + 200, grid, octaves=2), 0.0, 1.0)
    return ((w * s1 + (1 - w) * s2) * breaks).astype(np.float32)


def stroma_density(x: np.ndarray, y: np.ndarray, seed: int, grid: bool) -> np.ndarray:
    """Dense (1) vs loose, oedematous (towards 0) stroma, with occasional clefts."""
    f = field(x, y, 120.0, seed, _S_DENS, grid, octaves=3)
    return np.clip(0.9 + 0.9 * f, 0.15, 1.0).astype(np.float32)


MARGIN_UM = 26.0  # coarse fields extend this far beyond the pixel grid (covers nuclei centred outside it)


@dataclass(frozen=True)
class Coarse:
    """Region fields (and fibre direction) on a globally aligned grid of `step` microns around a render grid.

    Values at a node depend only on the node's global position, so nuclei near the edge of a strip or block get
    the same region test and orientation in every block that draws them.
    """

    x0: float
    y0: float
    step: float
    epi: np.ndarray
    lum: np.ndarray
    angle: np.ndarray | None
    vessel: np.ndarray | None = None  # red-cell-filled vessel lumen (in stroma)
    wall: np.ndarray | None = None  # vessel wall

    def lookup(self, f: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Nearest-node value of field `f` at points (x, y) microns."""
        i = np.clip(np.rint((y - self.y0) / self.step).astype(np.int64), 0, f.shape[0] - 1)
        j = np.clip(np.rint((x - self.x0) / self.step).astype(np.int64), 0, f.shape[1] - 1)
        return f[i, j]


def coarse_fields(m: Morphology, xs: np.ndarray, ys: np.ndarray, seed: int, step: float = 1.0,
                  want_angle: bool = False) -> Coarse:
    """Coarse region fields around the grid xs, ys (plus MARGIN_UM), and the fibre angle when asked."""
    n = np.ceil(MARGIN_UM / step)
    cx = np.arange(np.floor(xs[0] / step) - n, np.ceil(xs[-1] / step) + n + 1) * step
    cy = np.arange(np.floor(ys[0] / step) - n, np.ceil(ys[-1] / step) + n + 1) * step
    epi, lum = regions(m, cx[None, :], cy[:, None], seed, True)
    vessel = wall = None
    if m.vessels > 0:
        vessel, wall = vessels(cx[None, :], cy[:, None], seed, 110.0, m.vessels)
        stroma = (epi < 0.5) & (lum < 0.5)
        vessel *= stroma
        wall *= stroma
    angle = None
    if want_angle:
        gx_ = np.concatenate([cx[:1] - step, cx, cx[-1:] + step])
        gy_ = np.concatenate([cy[:1] - step, cy, cy[-1:] + step])
        p1, p2, w = _phases(gx_[None, :], gy_[:, None], seed, True, m.fibre_period_um)
        p = np.where(w > 0.5, p1, p2)
        dx = np.mod(p[1:-1, 2:] - p[1:-1, :-2] + np.pi, 2 * np.pi) - np.pi
        dy = np.mod(p[2:, 1:-1] - p[:-2, 1:-1] + np.pi, 2 * np.pi) - np.pi
        angle = (np.arctan2(dy, dx) + np.pi / 2).astype(np.float32)
    return Coarse(float(cx[0]), float(cy[0]), step, epi, lum, angle, vessel, wall)
