"""Render H&E-like tissue of one kind on any pixel grid, in optical density, then to RGB (Beer-Lambert).

Hematoxylin stains nuclei (purple-blue), eosin stains stroma and cytoplasm (pink). A kind's architecture comes from
`structure`, its nuclei from a hashed jittered lattice, so every value is a function of (seed, global microns):
slides rendered in strips and patches rendered alone share one look at one scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from . import noise, structure
from .subtypes import SUBTYPES, Morphology, Nuclei

H_VEC = (0.56, 0.78, 0.28)
E_VEC = (0.12, 0.88, 0.46)
COARSE_UM = 1.0  # region fields are computed on a 1 um grid and interpolated


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
            return tuple(float(t) for t in a / np.linalg.norm(a))

        return cls(h_vec=jit(H_VEC, 0.08), e_vec=jit(E_VEC, 0.12),
                   h_scale=float(np.exp(rng.normal(0, 0.15))), e_scale=float(np.exp(rng.normal(0, 0.2))),
                   background_od=float(rng.uniform(0.01, 0.05)), brightness=float(rng.uniform(0.96, 1.04)),
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


def _coarse(xs: np.ndarray, ys: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    cx = np.arange(np.floor(xs[0] / step) - 1, np.ceil(xs[-1] / step) + 2) * step
    cy = np.arange(np.floor(ys[0] / step) - 1, np.ceil(ys[-1] / step) + 2) * step
    return cx, cy


def region_fields(m: Morphology, xs: np.ndarray, ys: np.ndarray, seed: int, mpp: float,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(epithelium, lumen) on the pixel grid, computed on a 1 um grid and interpolated (soft edges)."""
    if mpp >= COARSE_UM:
        return structure.regions(m, xs[None, :], ys[:, None], seed, True)
    cx, cy = _coarse(xs, ys, COARSE_UM)
    epi, lum = structure.regions(m, cx[None, :], cy[:, None], seed, True)
    out = []
    for f in (epi, lum):
        f = _interp_axis(f, cx[0], COARSE_UM, xs, axis=1)
        out.append(_interp_axis(f, cy[0], COARSE_UM, ys, axis=0))
    return out[0], out[1]


def _background_od(m: Morphology, xs: np.ndarray, ys: np.ndarray, seed: int, mpp: float,
                   epi: np.ndarray, lum: np.ndarray, grain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(H, E) optical density of stroma + cytoplasm + lumen, before nuclei."""
    X, Y = xs[None, :], ys[:, None]
    fib = structure.fibres(X, Y, seed, True, m.fibre_period_um)
    dens = structure.stroma_density(X, Y, seed, True)
    e_str = m.stroma_e * dens * (0.3 + 0.7 * fib) * (1 + 0.15 * grain)
    h_str = 0.035 * dens
    stroma = np.clip(1.0 - epi - lum, 0.0, 1.0)
    e_epi = m.cyto_e * (1 + 0.12 * grain)
    e = stroma * e_str + epi * e_epi + lum * 0.02
    h = stroma * h_str + epi * m.cyto_h * (1 + 0.2 * grain)
    return h.astype(np.float32), e.astype(np.float32)


def _nuclei_sites(pop: Nuclei, m: Morphology, xs: np.ndarray, ys: np.ndarray, seed: int, salt: int,
                  ) -> dict[str, np.ndarray]:
    """Nucleus centres and shape parameters for one population on the grid's extent (plus a margin)."""
    s = pop.spacing_um
    pad = pop.radius_um * pop.elongation * 1.6
    i = np.arange(np.floor((xs[0] - pad) / s), np.ceil((xs[-1] + pad) / s) + 1).astype(np.int64)
    j = np.arange(np.floor((ys[0] - pad) / s), np.ceil((ys[-1] + pad) / s) + 1).astype(np.int64)
    jj, ii = (a.ravel() for a in np.meshgrid(j, i, indexing="ij"))
    u = [noise.hash_uniform(seed, salt, k, jj, ii) for k in range(8)]
    keep = u[0] < pop.fill
    x = (ii + 0.5 + 0.8 * (u[1] - 0.5)) * s
    y = (jj + 0.5 + 0.8 * (u[2] - 0.5)) * s
    sites = {"x": x[keep], "y": y[keep], "u": np.stack([v[keep] for v in u[3:]], axis=1)}
    if pop.region != "any" and sites["x"].size:
        epi, lum = structure.regions(m, sites["x"], sites["y"], seed, False)
        ok = (epi > 0.5) if pop.region == "epi" else ((epi < 0.5) & (lum < 0.5))
        sites = {k: v[ok] for k, v in sites.items()}
    return sites


def _nucleus_angles(pop: Nuclei, m: Morphology, sites: dict[str, np.ndarray], seed: int) -> np.ndarray:
    x, y, u = sites["x"], sites["y"], sites["u"]
    if pop.align == "fibre" and x.size:
        return structure.fibre_angle(x, y, seed, m.fibre_period_um) + (u[:, 2] - 0.5) * 0.5
    if pop.align == "radial" and x.size:
        # radial to the nearest lumen: approximate with the gradient of the epithelium field
        eps = 1.0
        e0, _ = structure.regions(m, x, y, seed, False)
        ex, _ = structure.regions(m, x + eps * 2, y, seed, False)
        ey, _ = structure.regions(m, x, y + eps * 2, seed, False)
        exm, _ = structure.regions(m, x - eps * 2, y, seed, False)
        eym, _ = structure.regions(m, x, y - eps * 2, seed, False)
        gx, gy = ex - exm, ey - eym
        flat = (np.abs(gx) + np.abs(gy)) == 0
        ang = np.arctan2(gy, gx)
        return np.where(flat, u[:, 2] * np.pi, ang + (u[:, 2] - 0.5) * 0.4)
    return u[:, 2] * np.pi


def _draw_nuclei(h: np.ndarray, e: np.ndarray, pop: Nuclei, sites: dict[str, np.ndarray], ang: np.ndarray,
                 xs: np.ndarray, ys: np.ndarray, mpp: float, grain_fine: np.ndarray) -> None:
    """Composite one population's nuclei into h (hematoxylin OD), displacing e, in place."""
    x0, y0 = xs[0], ys[0]
    hh, ww = h.shape
    u = sites["u"]
    r = pop.radius_um * np.clip(1 + pop.radius_sd * 2.0 * (u[:, 0] - 0.5) * 1.7, 0.5, 2.0)
    el = pop.elongation * (0.85 + 0.3 * u[:, 1])
    a_ax, b_ax = r * np.sqrt(el), r / np.sqrt(el)
    dens = pop.h_od * (0.85 + 0.3 * u[:, 3])
    nucleolus = u[:, 4] < pop.nucleoli
    for k in range(sites["x"].size):
        cx, cy = (sites["x"][k] - x0) / mpp, (sites["y"][k] - y0) / mpp
        ext = a_ax[k] / mpp + 1.5
        c0, c1 = max(int(cx - ext), 0), min(int(cx + ext) + 2, ww)
        r0, r1 = max(int(cy - ext), 0), min(int(cy + ext) + 2, hh)
        if c0 >= c1 or r0 >= r1:
            continue
        dx = (np.arange(c0, c1, dtype=np.float32) - cx)[None, :] * mpp
        dy = (np.arange(r0, r1, dtype=np.float32) - cy)[:, None] * mpp
        ca, sa = np.cos(ang[k]), np.sin(ang[k])
        q = np.sqrt(((dx * ca + dy * sa) / a_ax[k]) ** 2 + ((-dx * sa + dy * ca) / b_ax[k]) ** 2)
        alpha = np.clip((1.0 - q) * (b_ax[k] / max(mpp, 0.35)) * 1.2, 0.0, 1.0)
        body = dens[k] * (1 + pop.chromatin * grain_fine[r0:r1, c0:c1])
        if pop.vesicular:
            body = body * (1 - pop.vesicular * 0.55 * np.clip(1 - q * q * q, 0, 1))
        if nucleolus[k]:
            body = body + 0.6 * np.exp(-((dx - 0.3 * a_ax[k] * (u[k, 2] - 0.5)) ** 2 + dy**2) / (0.45**2))
        sl = (slice(r0, r1), slice(c0, c1))
        h[sl] = h[sl] * (1 - alpha) + alpha * body
        e[sl] = e[sl] * (1 - 0.55 * alpha)


def render_od(kind: int, xs: np.ndarray, ys: np.ndarray, seed: int, mpp: float, stain: Stain) -> np.ndarray:
    """Optical density (h, w, 3) float32 of tissue kind `kind` on the grid of pixel centres ys x xs (microns)."""
    m = SUBTYPES[kind].morphology
    epi, lum = region_fields(m, xs, ys, seed, mpp)
    texel = 0.25 if mpp < 0.375 else 0.5
    tex = noise.grain_texture(texel)
    off = int(noise.hash_u64(seed, 99) % np.uint64(noise.TEXTURE_PERIOD))
    grain = noise.sample_texture(tex, xs, ys, texel, off)
    h, e = _background_od(m, xs, ys, seed, mpp, epi, lum, grain)
    for p, pop in enumerate(m.nuclei):
        salt = 1000 + 37 * p + 101 * kind
        sites = _nuclei_sites(pop, m, xs, ys, seed, salt)
        ang = _nucleus_angles(pop, m, sites, seed)
        _draw_nuclei(h, e, pop, sites, ang, xs, ys, mpp, grain)
    hv = _unit(stain.h_vec, m.hue) * stain.h_scale
    ev = _unit(stain.e_vec) * stain.e_scale
    return h[..., None] * hv + e[..., None] * ev


def od_to_rgb(od: np.ndarray, stain: Stain, mpp: float) -> np.ndarray:
    """Beer-Lambert: RGB uint8 from optical density (+ background and blur)."""
    if stain.blur_um > 0:
        from scipy.ndimage import gaussian_filter

        od = gaussian_filter(od, (stain.blur_um / mpp, stain.blur_um / mpp, 0), mode="nearest")
    rgb = (255.0 * stain.brightness) * np.power(10.0, -(od + stain.background_od), dtype=np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def pixel_centres(x0_um: float, y0_um: float, w: int, h: int, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """Micron coordinates of the pixel centres of a w x h grid whose top-left corner is (x0_um, y0_um)."""
    xs = x0_um + (np.arange(w, dtype=np.float64) + 0.5) * mpp
    ys = y0_um + (np.arange(h, dtype=np.float64) + 0.5) * mpp
    return xs, ys


def with_blur(stain: Stain, blur_um: float) -> Stain:
    """A copy of `stain` with another blur."""
    return replace(stain, blur_um=blur_um)
