"""Render H&E-like tissue of one kind on any pixel grid, in optical density, then to RGB (Beer-Lambert).

Hematoxylin stains nuclei (purple-blue), eosin stains stroma and cytoplasm (pink). A kind's architecture comes from
`structure`, its nuclei from a hashed jittered lattice, so every value is a function of (seed, global microns):
slides rendered in strips and patches rendered alone share one look at one scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import noise, nuclei, structure
from .subtypes import SUBTYPES, Morphology

# Stain vectors (optical density per unit stain, R, G, B) measured on real H&E: Macenko's method (principal plane of
# the OD of pixels with OD sum > 0.3, extreme angles at the 1st/99th percentile) on the reference tile
# `resources/reference/he_tile_240.png` (wsidicom-data test tile, Apache-2.0). There, haematoxylin amounts had a
# median of 0.31 (95th percentile 0.86) and eosin 0.51 (95th percentile 1.09); glass was RGB (245, 243, 243).
H_VEC = (0.733, 0.611, 0.300)
E_VEC = (0.269, 0.890, 0.368)
COARSE_UM = 1.0  # region fields and fibre directions are computed on a 1 um grid


@dataclass(frozen=True)
class Stain:
    """Stain and scanner appearance of one slide.

    Attributes:
        h_vec, e_vec: optical-density colour of hematoxylin / eosin (normalised internally).
        h_scale, e_scale: stain amount multipliers.
        background_od: optical density of glass + mounting medium (0 = pure white).
        brightness: multiplier of transmitted light.
        blur_um: Gaussian blur sigma in microns (focus).
    """

    h_vec: tuple[float, float, float] = H_VEC
    e_vec: tuple[float, float, float] = E_VEC
    h_scale: float = 1.0
    e_scale: float = 1.0
    background_od: float = 0.025
    brightness: float = 1.0
    blur_um: float = 0.0

    def __post_init__(self) -> None:
        if min(self.h_scale, self.e_scale, self.brightness) <= 0:
            raise ValueError("Stain h_scale, e_scale and brightness must be > 0")
        if self.background_od < 0 or self.blur_um < 0:
            raise ValueError("Stain background_od and blur_um must be >= 0")
        if len(self.h_vec) != 3 or len(self.e_vec) != 3 or min(*self.h_vec, *self.e_vec) < 0:
            raise ValueError("Stain h_vec and e_vec must be three non-negative numbers")

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Stain:
        """A random slide-to-slide variation (hue, saturation, brightness, blur) around the default."""
        def jit(v: tuple[float, float, float], s: float) -> tuple[float, float, float]:
            a = np.asarray(v) * np.exp(rng.normal(0, s, 3))
            a = a / np.linalg.norm(a)
            return float(a[0]), float(a[1]), float(a[2])

        return cls(h_vec=jit(H_VEC, 0.08), e_vec=jit(E_VEC, 0.12),
                   h_scale=float(np.exp(rng.normal(0, 0.15))), e_scale=float(np.exp(rng.normal(0, 0.2))),
                   background_od=float(rng.uniform(0.005, 0.03)), brightness=float(rng.uniform(0.98, 1.03)),
                   blur_um=float(rng.choice([0.0, 0.0, rng.uniform(0.15, 0.5)])))


def _unit(v: tuple[float, float, float], hue: float = 0.0) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64) + hue * np.array([1.0, 0.0, -1.0])
    a = np.clip(a, 0.01, None)
    return (a / np.linalg.norm(a)).astype(np.float32)


def _interp_axis(f: np.ndarray, c0: float, step: float, coords: np.ndarray, axis: int) -> np.ndarray:
    g = np.clip((coords - c0) / step, 0, f.shape[axis] - 1.001)
    i = np.floor(g).astype(np.int64)
    t = (g - i).astype(np.float32)
    a, b = np.take(f, i, axis=axis), np.take(f, i + 1, axis=axis)
    t = t[None, :] if axis == 1 else t[:, None]
    return a + (b - a) * t


def region_fields(c: structure.Coarse, xs: np.ndarray, ys: np.ndarray) -> list[np.ndarray | None]:
    """[epithelium, lumen, vessel, wall] on the pixel grid, bilinearly interpolated from the coarse grid."""
    out: list[np.ndarray | None] = []
    for f in (c.epi, c.lum, c.vessel, c.wall):
        if f is None or not f.any():
            out.append(None)
            continue
        f = _interp_axis(f, c.x0, c.step, xs, axis=1)
        out.append(_interp_axis(f, c.y0, c.step, ys, axis=0))
    return out


def _background_he(m: Morphology, xs: np.ndarray, ys: np.ndarray, seed: int,
                   epi: np.ndarray, lum: np.ndarray, grain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, E) optical density of stroma + cytoplasm + lumen, before nuclei."""
    X, Y = xs[None, :], ys[:, None]
    e = structure.fibres(X, Y, seed, True, m.fibre_period_um)  # becomes stroma eosin in place
    dens = structure.stroma_density(X, Y, seed, True)
    stroma = 1.0 - epi
    stroma -= lum
    np.clip(stroma, 0.0, 1.0, out=stroma)
    e *= 1.1
    e += 0.45
    e *= dens
    e *= 1 + 0.15 * grain
    e *= stroma * np.float32(m.stroma_e)
    e += epi * (m.cyto_e * (1 + 0.12 * grain))
    if lum.any():  # some lumens hold pale pink secretion
        sec = structure.field(X, Y, 25.0, seed, 18, True, octaves=2)
        e += lum * np.clip(0.02 + 0.5 * sec, 0.02, 0.2)
    h = stroma * (0.035 * dens)
    h += epi * (m.cyto_h * (1 + 0.2 * grain))
    return h.astype(np.float32, copy=False), e.astype(np.float32, copy=False)


def _paint_vessels(h: np.ndarray, e: np.ndarray, vessel: np.ndarray, wall: np.ndarray, grain: np.ndarray,
                   xs: np.ndarray, ys: np.ndarray, seed: int) -> None:
    """Small vessels: lumen packed with bright eosinophilic red cells, and a thin darker wall, in place."""
    cells = structure.field(xs[None, :], ys[:, None], 3.5, seed, 21, True, octaves=1)
    rbc = np.clip(cells * 4.0 + 0.8, 0.25, 1.0)
    keep = 1.0 - vessel - wall
    e *= keep
    e += vessel * rbc * (0.8 * (1 + 0.1 * grain)) + wall * 0.55
    h *= keep
    h += wall * 0.12


def render_he(kind: int, xs: np.ndarray, ys: np.ndarray, seed: int, mpp: float,
              morphology: Morphology | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Hematoxylin and eosin optical densities (h, w) float32 of tissue `kind` on the grid ys x xs (microns).

    `morphology` replaces the kind's own (e.g. normal stroma without glands); salts still follow `kind`.
    """
    m = SUBTYPES[kind].morphology if morphology is None else morphology
    coarse = structure.coarse_fields(m, xs, ys, seed, COARSE_UM, any(p.align == "fibre" for p in m.nuclei))
    epi, lum, vessel, wall = region_fields(coarse, xs, ys)
    zeros = np.zeros((ys.size, xs.size), np.float32)
    epi = zeros if epi is None else epi
    lum = zeros if lum is None else lum
    texel = 0.25 if mpp < 0.375 else 0.5
    tex = noise.grain_texture(texel)
    off = int(noise.hash_u64(seed, 99) % np.uint64(noise.TEXTURE_PERIOD))
    grain = noise.sample_texture(tex, xs, ys, texel, off)
    h, e = _background_he(m, xs, ys, seed, epi, lum, grain)
    if vessel is not None and wall is not None:
        _paint_vessels(h, e, vessel, wall, grain, xs, ys, seed)
    for p, pop in enumerate(m.nuclei):
        x, y, idx = nuclei.sites(pop, m, coarse, xs, ys, seed, 1000 + 37 * p + 101 * kind)
        nuclei.splat(h, e, pop, x, y, idx, xs[0], ys[0], mpp)
    return h, e


def he_to_od(h_parts: list[tuple[np.ndarray, int]], e: np.ndarray, stain: Stain) -> np.ndarray:
    """Optical density (h, w, 3): each hematoxylin map with its kind's hue, plus eosin."""
    od = e[..., None] * (_unit(stain.e_vec) * stain.e_scale)
    for h, kind in h_parts:
        od += h[..., None] * (_unit(stain.h_vec, SUBTYPES[kind].morphology.hue) * stain.h_scale)
    return od


def render_od(kind: int, xs: np.ndarray, ys: np.ndarray, seed: int, mpp: float, stain: Stain) -> np.ndarray:
    """Optical density (h, w, 3) float32 of tissue kind `kind` on the grid of pixel centres ys x xs (microns)."""
    h, e = render_he(kind, xs, ys, seed, mpp)
    return he_to_od([(h, kind)], e, stain)


def od_to_rgb(od: np.ndarray, stain: Stain, mpp: float) -> np.ndarray:
    """Beer-Lambert: RGB uint8 from optical density (+ background and blur)."""
    if stain.blur_um > 0:
        from scipy.ndimage import gaussian_filter

        od = gaussian_filter(od, (stain.blur_um / mpp, stain.blur_um / mpp, 0), mode="nearest")
    od = od.astype(np.float32, copy=False)
    rgb = np.exp(od * np.float32(-np.log(10.0)))
    rgb *= np.float32(255.0 * stain.brightness * 10.0 ** (-stain.background_od))
    rgb += 0.5
    return np.clip(rgb, 0, 255, out=rgb).astype(np.uint8)


def he_to_rgb(h_parts: list[tuple[np.ndarray, int]], e: np.ndarray, stain: Stain, mpp: float) -> np.ndarray:
    """RGB uint8 (h, w, 3) from hematoxylin maps (each with its kind's hue) and eosin, channel by channel.

    Same result as `od_to_rgb(he_to_od(...))`, without (h, w, 3) float intermediates.
    """
    ev = _unit(stain.e_vec) * stain.e_scale
    hvs = [(h, _unit(stain.h_vec, SUBTYPES[k].morphology.hue) * stain.h_scale) for h, k in h_parts]
    out = np.empty((*e.shape, 3), np.uint8)
    gain = np.float32(255.0 * stain.brightness * 10.0 ** (-stain.background_od))
    for c in range(3):
        od = e * ev[c]
        for h, hv in hvs:
            od += h * hv[c]
        if stain.blur_um > 0:
            from scipy.ndimage import gaussian_filter

            od = gaussian_filter(od, stain.blur_um / mpp, mode="nearest")
        od *= np.float32(-np.log(10.0))
        np.exp(od, out=od)
        od *= gain
        od += 0.5
        np.clip(od, 0, 255, out=od)
        out[..., c] = od
    return out


def pixel_centres(x0_um: float, y0_um: float, w: int, h: int, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Micron coordinates of the pixel centres of a w x h grid whose top-left corner is (x0_um, y0_um)."""
    xs = x0_um + (np.arange(w, dtype=np.float64) + 0.5) * mpp
    ys = y0_um + (np.arange(h, dtype=np.float64) + 0.5) * mpp
    return xs, ys


def with_blur(stain: Stain, blur_um: float) -> Stain:
    """A copy of `stain` with another blur."""
    return replace(stain, blur_um=blur_um)
