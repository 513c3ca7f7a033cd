"""Whole synthetic slides: tissue pieces on glass, tumour regions of one subtype, ground-truth masks, strips.

A slide is laid out on a coarse "mask grid" (one node per `mask_downsample` level-0 pixels): a signed tissue field
(irregular pieces with soft edges and a few tears) and, for tumour slides, a tumour field thresholded so that a
chosen fraction of the tissue is tumour. Level-0 pixels are rendered block by block from those fields
(bilinearly interpolated, so the boundary is smooth) with `render.render_od` for normal tissue and for the
subtype, composited in optical density. Every block depends only on the seed and its position, so strips can be
rendered one at a time for slides far larger than memory.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..jobs import check_cancel
from . import noise
from .render import Stain, he_to_rgb, od_to_rgb, pixel_centres, render_he
from .subtypes import SUBTYPES

log = logging.getLogger(__name__)

BLOCK = 1024  # level-0 pixels per render block edge
_S_TISSUE, _S_HOLES, _S_TUMOUR, _S_UNEVEN = 201, 202, 203, 204


@dataclass(frozen=True)
class SlideSpec:
    """What to generate.

    Attributes:
        width, height: level-0 size in pixels.
        kind: 0 for a normal slide, k >= 1 for a slide with tumour regions of SUBTYPES[k].
        seed: everything (layout, stain, texture) follows from it.
        mpp: level-0 microns per pixel.
        tumour_fraction: target fraction of the tissue area that is tumour (tumour slides).
        mask_downsample: level-0 pixels per ground-truth mask pixel (power of two, 4..64).
        stain: fixed stain, or None to draw the slide's stain/scanner variation from the seed.
    """

    width: int
    height: int
    kind: int = 0
    seed: int = 0
    mpp: float = 0.25
    tumour_fraction: float = 0.3
    mask_downsample: int = 16
    stain: Stain | None = field(default=None)

    def __post_init__(self) -> None:
        check_slide_spec(self.width, self.height, self.kind, self.seed, self.mpp, self.tumour_fraction,
                         self.mask_downsample)


def check_slide_spec(width: int, height: int, kind: int, seed: int, mpp: float, tumour_fraction: float,
                     mask_downsample: int) -> None:
    """The checks every synthetic slide spec shares; ValueError naming the first bad value."""
    if not (256 <= width <= 250_000 and 256 <= height <= 250_000):
        raise ValueError(f"slide size must be 256..250000 px per side, got {width}x{height}")
    if not 0 <= kind < len(SUBTYPES):
        raise ValueError(f"slide kind must be 0..{len(SUBTYPES) - 1}, got {kind}")
    if not 0.1 <= mpp <= 2.0:
        raise ValueError(f"slide mpp must be in 0.1..2.0, got {mpp}")
    if not 0.02 <= tumour_fraction <= 0.9:
        raise ValueError(f"tumour_fraction must be in 0.02..0.9, got {tumour_fraction}")
    if mask_downsample not in (4, 8, 16, 32, 64):
        raise ValueError(f"mask_downsample must be one of 4, 8, 16, 32, 64, got {mask_downsample}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")


@dataclass(frozen=True)
class Layout:
    """A slide's fields on the mask grid and its stain. Build with `make_layout`."""

    spec: SlideSpec
    tissue_field: np.ndarray  # signed, > 0 inside tissue; scaled so that 1 unit ~ `edge_um` microns
    tumour_field: np.ndarray  # signed, > 0 inside tumour (all <= 0 for normal slides)
    stain: Stain
    texture_seed: int

    @property
    def tissue_mask(self) -> np.ndarray:
        """Boolean tissue mask on the mask grid."""
        return self.tissue_field > 0

    @property
    def tumour_mask(self) -> np.ndarray:
        """Boolean ground-truth tumour mask on the mask grid (tumour within tissue)."""
        return (self.tumour_field > 0) & self.tissue_mask

    def alphas(self, x0: int, y0: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """(tissue, tumour) weights in [0, 1] at the level-0 pixels of the block (x0, y0, w, h)."""
        ds = self.spec.mask_downsample
        gx = (np.arange(x0, x0 + w) + 0.5) / ds - 0.5
        gy = (np.arange(y0, y0 + h) + 0.5) / ds - 0.5
        out = []
        for f in (self.tissue_field, self.tumour_field):
            v = _bilinear(f, gx, gy)
            out.append(np.clip(v + 0.5, 0.0, 1.0).astype(np.float32))
        return out[0], out[1]


def _bilinear(f: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Separable bilinear interpolation of the small grid `f` at fractional node coordinates gy x gx."""
    gx = np.clip(gx, 0, f.shape[1] - 1.0001)
    gy = np.clip(gy, 0, f.shape[0] - 1.0001)
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    tx, ty = (gx - ix).astype(np.float32), (gy - iy).astype(np.float32)
    r0 = int(iy.min())
    rows = f[r0 : int(iy.max()) + 2]
    fx = rows[:, ix] * (1 - tx) + rows[:, ix + 1] * tx
    j = iy - r0
    return fx[j] * (1 - ty)[:, None] + fx[j + 1] * ty[:, None]


def _tissue_field(spec: SlideSpec, rng: np.random.Generator, gxs: np.ndarray, gys: np.ndarray,
                  seed: int) -> np.ndarray:
    """Signed tissue field in microns-ish units (positive inside), 1 unit = one edge width."""
    w_um, h_um = spec.width * spec.mpp, spec.height * spec.mpp
    X, Y = gxs[None, :], gys[:, None]
    f: np.ndarray = np.full((gys.size, gxs.size), -np.inf, np.float32)  # float64 once a piece is laid in
    n = int(rng.integers(1, 4))
    cell_w = w_um / n
    radii = []
    for i in range(n):
        cx = cell_w * (i + 0.5) + rng.uniform(-0.06, 0.06) * cell_w
        cy = h_um * rng.uniform(0.45, 0.55)
        rx, ry = cell_w * rng.uniform(0.3, 0.45), h_um * rng.uniform(0.3, 0.45)
        a = rng.uniform(0, np.pi)
        half_w = np.hypot(rx * np.cos(a), ry * np.sin(a))
        half_h = np.hypot(rx * np.sin(a), ry * np.cos(a))
        shrink = min(1.0, 0.36 * cell_w / half_w, 0.36 * h_um / half_h)
        rx, ry = rx * shrink, ry * shrink
        radii.append(min(rx, ry))
        u = ((X - cx) * np.cos(a) + (Y - cy) * np.sin(a)) / rx
        v = (-(X - cx) * np.sin(a) + (Y - cy) * np.cos(a)) / ry
        piece = 1.0 - np.sqrt(u * u + v * v)
        f = np.maximum(f, piece)
    scale = min(w_um, h_um) * 0.25
    f = f + 0.4 * noise.fbm_grid(gxs, gys, scale, seed, _S_TISSUE, octaves=4)
    edge = np.minimum(np.minimum(X, w_um - X), np.minimum(Y, h_um - Y)) / (0.04 * min(w_um, h_um)) - 1.0
    f = np.minimum(f, 0.25 * edge + 0.3 * noise.fbm_grid(gxs, gys, scale * 0.5, seed, _S_TISSUE + 1, octaves=3))
    holes = noise.fbm_grid(gxs, gys, max(scale * 0.3, 40.0), seed, _S_HOLES, octaves=2)
    f = f - np.clip((holes - 0.72) * 6.0, 0.0, 1.0)
    f_um = f * float(np.mean(radii)) + _wiggle(gxs, gys, seed, _S_TISSUE + 2, 30.0)
    edge_um = 6.0  # soft tissue edge width
    return (f_um / edge_um).astype(np.float32)


def _wiggle(gxs: np.ndarray, gys: np.ndarray, seed: int, salt: int, amp_um: float) -> np.ndarray:
    """Small-scale boundary irregularity in microns (keeps mm-sized outlines from looking straight up close)."""
    return amp_um * noise.fbm_grid(gxs, gys, 4.0 * amp_um, seed, salt, octaves=3)


def _tumour_field(spec: SlideSpec, tissue: np.ndarray, gxs: np.ndarray, gys: np.ndarray, seed: int) -> np.ndarray:
    if spec.kind == 0:
        return np.full(tissue.shape, -1e3, np.float32)
    w_um, h_um = spec.width * spec.mpp, spec.height * spec.mpp
    scale = float(np.clip(min(w_um, h_um) * 0.3, 80.0, 1500.0))
    inside = tissue > 0
    if not inside.any():
        return np.full(tissue.shape, -1e3, np.float32)
    t = noise.fbm_grid(gxs, gys, scale, seed, _S_TUMOUR, octaves=3)
    t_um = t * scale + _wiggle(gxs, gys, seed, _S_TUMOUR + 1, min(25.0, 0.05 * scale))  # fbm slope ~ 1/scale
    thr = float(np.quantile(t_um[inside], 1.0 - spec.tumour_fraction))
    edge_um = 4.0
    return ((t_um - thr) / edge_um).astype(np.float32)


def make_layout(spec: SlideSpec) -> Layout:
    """Tissue and tumour fields on the mask grid, and the slide's stain (all from the seed)."""
    rng = np.random.default_rng([spec.seed, 7919])
    seed = int(rng.integers(0, 2**62))
    ds, mpp = spec.mask_downsample, spec.mpp
    gw, gh = -(-spec.width // ds), -(-spec.height // ds)
    gxs = (np.arange(gw) + 0.5) * ds * mpp
    gys = (np.arange(gh) + 0.5) * ds * mpp
    tissue = _tissue_field(spec, rng, gxs, gys, seed)
    tumour = _tumour_field(spec, tissue, gxs, gys, seed)
    stain = spec.stain if spec.stain is not None else Stain.sample(rng)
    return Layout(spec, tissue, tumour, stain, seed)


def render_block(layout: Layout, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """RGB uint8 (h, w, 3) of the level-0 block at (x0, y0); identical wherever blocks are cut."""
    spec, st = layout.spec, layout.stain
    m = int(np.ceil(3 * st.blur_um / spec.mpp)) + 1 if st.blur_um > 0 else 0
    a_t, a_u = layout.alphas(x0 - m, y0 - m, w + 2 * m, h + 2 * m)
    if not a_t.any():
        return np.broadcast_to(od_to_rgb(np.zeros((1, 1, 3), np.float32), st, spec.mpp), (h, w, 3)).copy()
    xs, ys = pixel_centres((x0 - m) * spec.mpp, (y0 - m) * spec.mpp, w + 2 * m, h + 2 * m, spec.mpp)
    uneven = 1.0 + 0.12 * noise.value_noise_grid(xs, ys, 900.0, layout.texture_seed, _S_UNEVEN)
    w_norm = a_t * (1 - a_u) * uneven
    w_tum = a_t * a_u * uneven
    e = np.zeros(a_t.shape, np.float32)
    h_parts = []
    for kind, wgt in ((0, w_norm), (spec.kind, w_tum)):
        if not wgt.any():
            continue
        h_k, e_k = render_he(kind, xs, ys, layout.texture_seed, spec.mpp)
        h_k *= wgt
        e_k *= wgt
        e += e_k
        h_parts.append((h_k, kind))
    rgb = he_to_rgb(h_parts, e, st, spec.mpp)
    return rgb[m : m + h, m : m + w]


def iter_strips(layout: Layout, strip_height: int = BLOCK, cancel: threading.Event | None = None,
                ) -> Iterator[np.ndarray]:
    """Level-0 strips (strip_height rows, full width; the last may be shorter), top to bottom."""
    spec = layout.spec
    for y0 in range(0, spec.height, strip_height):
        check_cancel(cancel)
        h = min(strip_height, spec.height - y0)
        strip = np.empty((h, spec.width, 3), np.uint8)
        for x0 in range(0, spec.width, BLOCK):
            w = min(BLOCK, spec.width - x0)
            strip[:, x0 : x0 + w] = render_block(layout, x0, y0, w, h)
        yield strip


def render_slide(layout: Layout) -> np.ndarray:
    """The whole level-0 image in memory (small slides and tests only)."""
    return np.concatenate(list(iter_strips(layout)), axis=0)
