"""Nuclei: hashed jittered-lattice placement and sprite-bank rendering.

Each population (`subtypes.Nuclei`) gets a cached bank of nucleus sprites per pixel size (shapes x angles x with or
without nucleolus, chromatin texture baked in). A rendered nucleus is the sprite picked by its hashed shape index,
its orientation and its nucleolus flag, painted at its (whole-pixel) centre.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

import numpy as np
from scipy.special import ndtri

from . import noise, structure
from .subtypes import Morphology, Nuclei

N_SHAPES = 16
N_ANGLES = 16


@lru_cache(maxsize=128)
def sprite_bank(pop: Nuclei, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, alpha * body) float32 arrays of shape (N_SHAPES * N_ANGLES * 2, K, K).

    Sprite index = (shape * N_ANGLES + angle) * 2 + has_nucleolus; body is the nucleus' hematoxylin density.
    """
    rng = np.random.default_rng(zlib.crc32(repr((pop, round(mpp, 4))).encode()))
    texel = 0.25 if mpp < 0.375 else 0.5
    tex = noise.grain_texture(texel)
    # stratified (not random) sizes and elongations: every bank has the designed distribution
    z = rng.permutation(ndtri((np.arange(N_SHAPES) + 0.5) / N_SHAPES))
    r = pop.radius_um * np.clip(1 + pop.radius_sd * z, 0.55, 1.8)
    el = pop.elongation * rng.permutation(np.linspace(0.87, 1.13, N_SHAPES))
    a_ax, b_ax = r * np.sqrt(el), r / np.sqrt(el)
    half = int(np.ceil(a_ax.max() * 1.1 / mpp)) + 2
    k = 2 * half + 1
    d = (np.arange(k, dtype=np.float32) - half) * mpp
    dx, dy = d[None, :], d[:, None]
    alpha = np.zeros((N_SHAPES * N_ANGLES * 2, k, k), np.float32)
    body = np.zeros_like(alpha)
    for s in range(N_SHAPES):
        wob_f, wob_p = rng.uniform(0.03, 0.09), rng.uniform(0, 2 * np.pi)
        dens = pop.h_od * rng.uniform(0.85, 1.15)
        nuc_off = rng.uniform(-0.3, 0.3, 2) * b_ax[s]
        for a in range(N_ANGLES):
            ang = (a + 0.5) * np.pi / N_ANGLES
            ca, sa = np.cos(ang), np.sin(ang)
            u, v = (dx * ca + dy * sa) / a_ax[s], (-dx * sa + dy * ca) / b_ax[s]
            q = np.sqrt(u * u + v * v) * (1 + wob_f * np.sin(3 * np.arctan2(v, u) + wob_p))
            al = np.clip((1.0 - q) * (b_ax[s] / max(mpp, 0.3)) * 1.3, 0.0, 1.0)
            oy, ox = rng.integers(0, tex.shape[0], 2)
            g = np.roll(tex, (oy, ox), axis=(0, 1))[:k, :k]
            bd = dens * (1 + pop.chromatin * g)
            rim = np.exp(-(((1 - q) / 0.14) ** 2))
            bd = bd * (1 - pop.vesicular * 0.5 * np.clip(1 - q**3, 0, 1)) + 0.18 * dens * rim
            i = (s * N_ANGLES + a) * 2
            alpha[i] = alpha[i + 1] = al
            body[i] = bd
            nx, ny = nuc_off @ np.array([[ca, sa], [-sa, ca]])
            body[i + 1] = bd + 0.7 * np.exp(-((dx - nx) ** 2 + (dy - ny) ** 2) / (0.5**2))
    body *= alpha
    return alpha, body


def sites(pop: Nuclei, m: Morphology, coarse: structure.Coarse, xs: np.ndarray, ys: np.ndarray, seed: int,
          salt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nucleus centres (x, y microns) and sprite indices for one population over the grid (plus a margin)."""
    s = pop.spacing_um
    pad = min(pop.radius_um * pop.elongation * 1.6, structure.MARGIN_UM)
    i = np.arange(np.floor((xs[0] - pad) / s), np.ceil((xs[-1] + pad) / s) + 1).astype(np.int64)
    j = np.arange(np.floor((ys[0] - pad) / s), np.ceil((ys[-1] + pad) / s) + 1).astype(np.int64)
    jj, ii = (a.ravel() for a in np.meshgrid(j, i, indexing="ij"))
    u = noise.hash_streams(6, seed, salt, jj, ii)
    keep = u[0] < pop.fill
    x = ((ii + 0.5 + 0.8 * (u[1] - 0.5)) * s)[keep]
    y = ((jj + 0.5 + 0.8 * (u[2] - 0.5)) * s)[keep]
    u = [v[keep] for v in u[3:]]
    if pop.region != "any" and x.size:
        epi, lum = coarse.lookup(coarse.epi, x, y), coarse.lookup(coarse.lum, x, y)
        ok = (epi > 0.5) if pop.region == "epi" else ((epi < 0.5) & (lum < 0.5))
        if coarse.vessel is not None:
            ok &= coarse.lookup(coarse.vessel, x, y) < 0.5
        x, y, u = x[ok], y[ok], [v[ok] for v in u]
    ang = _angles(pop, m, coarse, x, y, u[0], seed)
    a_bin = np.floor(np.mod(ang, np.pi) / np.pi * N_ANGLES).astype(np.int64) % N_ANGLES
    shape = np.minimum((u[1] * N_SHAPES).astype(np.int64), N_SHAPES - 1)
    idx = (shape * N_ANGLES + a_bin) * 2 + (u[2] < pop.nucleoli)
    return x, y, idx


def _angles(pop: Nuclei, m: Morphology, coarse: structure.Coarse, x: np.ndarray, y: np.ndarray, u: np.ndarray,
            seed: int) -> np.ndarray:
    if not x.size:
        return np.zeros(0)
    if pop.align == "fibre" and coarse.angle is not None:
        return coarse.lookup(coarse.angle, x, y) + (u - 0.5) * 0.5
    if pop.align == "radial" and (m.arrangement == "gland" or m.normal_glands > 0):
        return structure.gland_angle(m, x, y, seed) + (u - 0.5) * 0.4
    return u * np.pi


def splat(h: np.ndarray, e: np.ndarray, pop: Nuclei, x: np.ndarray, y: np.ndarray, idx: np.ndarray,
          x0: float, y0: float, mpp: float) -> None:
    """Composite nuclei (centres in microns, grid origin x0, y0 = first pixel centre) into h, displacing e.

    Nuclei are painted "over" in lattice order, which is the same in every block, so overlaps come out the same
    wherever a slide is cut into blocks.
    """
    if not x.size:
        return
    alpha_b, ab_b = sprite_bank(pop, mpp)
    k = alpha_b.shape[1]
    half = k // 2
    hh, ww = h.shape
    cs = (np.rint((x - x0) / mpp).astype(np.int64) - half).tolist()
    rs = (np.rint((y - y0) / mpp).astype(np.int64) - half).tolist()
    for c, r, i in zip(cs, rs, idx.tolist(), strict=True):
        if c >= ww or r >= hh or c + k <= 0 or r + k <= 0:
            continue
        sc0, sr0 = max(0, -c), max(0, -r)
        sc1, sr1 = min(k, ww - c), min(k, hh - r)
        a = alpha_b[i, sr0:sr1, sc0:sc1]
        hv = h[r + sr0 : r + sr1, c + sc0 : c + sc1]
        hv -= a * hv
        hv += ab_b[i, sr0:sr1, sc0:sc1]
        ev = e[r + sr0 : r + sr1, c + sc0 : c + sc1]
        ev -= (0.55 * a) * ev
