"""A small bank of pre-rendered tissue textures ("materials") that whole slides are composed from.

Rendering H&E-like tissue pixel by pixel (`render.render_he`) costs ~0.3 us per pixel; a realistic slide has
10^8 pixels. So each material (glass, stroma, normal parenchyma with glands, fat, and every tumour subtype) is
rendered once as a few `TEX` x `TEX` textures of hematoxylin and eosin optical density, quantised to uint8 (1/100
OD per step), and slides copy pieces of them (see `compose`). A slide's own stain (hue, amounts, brightness) is
applied to the bank through a 64k-entry lookup table per material (exact Beer-Lambert on the quantised densities),
so the bank is shared by every slide at one mpp.

The bank depends only on (mpp, BANK_VERSION); it is cached on disk (`PATHPT_SYNTH_CACHE`, default
`~/.cache/pathpt/synth`) so that later processes skip the rendering.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic
from . import noise
from .render import Stain, _unit, pixel_centres, render_he
from .subtypes import SUBTYPES

log = logging.getLogger(__name__)

BANK_VERSION = 1
TEX = 1024  # texture edge in pixels (512 um at 0.5 um/px)
VARIANTS = 2  # textures per material
Q = 100.0  # quantisation steps per unit optical density
GLASS, STROMA, NORMAL, FAT = 0, 1, 2, 3
N_BASE = 4  # materials before the subtypes: material 3 + k is subtype k (k >= 1)
MATERIAL_NAMES = ("glass", "stroma", "normal", "fat") + tuple(s.name for s in SUBTYPES[1:])


def subtype_material(kind: int) -> int:
    """Material index of tumour subtype `kind` (>= 1)."""
    return N_BASE - 1 + kind


def material_kind(material: int) -> int:
    """Cohort class of a material's pattern: 0 for non-tumour tissue and glass, else the subtype index."""
    return material - (N_BASE - 1) if material >= N_BASE else 0


def _design_seed(material: int, variant: int) -> int:
    return int(noise.hash_u64(4242, BANK_VERSION, material, variant) % np.uint64(2**62))


def _fat(xs: np.ndarray, ys: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Adipose tissue: large empty cells (~40-90 um) with thin eosinophilic membranes and rare flat nuclei."""
    spacing = 62.0
    X, Y = xs[None, :], ys[:, None]
    gx, gy = np.floor(X / spacing).astype(np.int64), np.floor(Y / spacing).astype(np.int64)
    d1 = np.full(np.broadcast_shapes(X.shape, Y.shape), np.inf, np.float32)
    d2 = d1.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            u = noise.hash_streams(2, seed, 61, gy + dy, gx + dx)
            px = (gx + dx + 0.15 + 0.7 * u[0]) * spacing
            py = (gy + dy + 0.15 + 0.7 * u[1]) * spacing
            d = np.sqrt((X - px) ** 2 + (Y - py) ** 2).astype(np.float32)
            d2 = np.minimum(d2, np.maximum(d1, d))
            d1 = np.minimum(d1, d)
    gap = 0.5 * (d2 - d1)  # distance to the cell border
    wobble = noise.fbm_grid(xs, ys, 20.0, seed, 62, octaves=2)
    membrane = np.exp(-((gap / (0.9 + 0.4 * wobble)) ** 2)).astype(np.float32)
    e = 0.42 * membrane + 0.015
    nuc = noise.fbm_grid(xs, ys, 6.0, seed, 63, octaves=1) > 0.62
    h = (0.45 * membrane * nuc + 0.01).astype(np.float32)
    return h, e.astype(np.float32)


def _render_material(material: int, variant: int, mpp: float) -> tuple[np.ndarray, np.ndarray]:
    """(h, e) optical densities float32 (TEX, TEX) of one texture."""
    seed = _design_seed(material, variant)
    xs, ys = pixel_centres(1e5 * (variant + 1), 2e5 * (material + 1), TEX, TEX, mpp)
    if material == GLASS:
        z = np.zeros((TEX, TEX), np.float32)
        return z, z.copy()
    if material == FAT:
        return _fat(xs, ys, seed)
    if material == STROMA:
        m = replace(SUBTYPES[0].morphology, normal_glands=0.0)
        return render_he(0, xs, ys, seed, mpp, morphology=m)
    kind = 0 if material == NORMAL else material_kind(material)
    m = SUBTYPES[kind].morphology
    if variant % 2 == 1 and kind > 0:  # a second growth of the same subtype: structures a little larger
        m = replace(m, structure_um=m.structure_um * 1.25)
    return render_he(kind, xs, ys, seed, mpp, morphology=m)


def _quantise(a: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(a * Q), 0, 255).astype(np.uint8)


def _cache_dir() -> Path | None:
    d = os.environ.get("PATHPT_SYNTH_CACHE")
    if d == "":
        return None
    return Path(d) if d else Path.home() / ".cache" / "pathpt" / "synth"


def _cache_path(material: int, mpp: float) -> Path | None:
    d = _cache_dir()
    if d is None:
        return None
    key = hashlib.sha256(f"{BANK_VERSION}|{TEX}|{VARIANTS}|{mpp:.6f}|{MATERIAL_NAMES[material]}".encode())
    return d / f"bank-{MATERIAL_NAMES[material]}-{key.hexdigest()[:16]}.npy"


@lru_cache(maxsize=32)
def material_textures(material: int, mpp: float) -> np.ndarray:
    """uint8 (VARIANTS, TEX, TEX, 2) quantised (h, e) optical densities of one material (memory + disk cache)."""
    if not 0 <= material < len(MATERIAL_NAMES):
        raise ValueError(f"material must be 0..{len(MATERIAL_NAMES) - 1}, got {material}")
    path = _cache_path(material, mpp)
    if path is not None and path.is_file():
        try:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (VARIANTS, TEX, TEX, 2) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            log.warning("ignoring unreadable synth texture cache %s", path)
    out = np.empty((VARIANTS, TEX, TEX, 2), np.uint8)
    for v in range(VARIANTS):
        h, e = _render_material(material, v, mpp)
        out[v, ..., 0], out[v, ..., 1] = _quantise(h), _quantise(e)
    if path is not None:
        try:
            buf = io.BytesIO()
            np.save(buf, out, allow_pickle=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, buf.getvalue())
        except OSError as exc:  # a read-only home must not stop synthesis
            log.warning("could not cache synth textures in %s: %s", path.parent, exc)
    return out


def stain_lut(stain: Stain, kind: int) -> np.ndarray:
    """uint32 (65536,) packed RGBA (little-endian R, G, B, 255) for every quantised (h, e) pair under `stain`."""
    hq = np.arange(256, dtype=np.float32)[:, None] / Q
    eq = np.arange(256, dtype=np.float32)[None, :] / Q
    hv = _unit(stain.h_vec, SUBTYPES[kind].morphology.hue) * stain.h_scale
    ev = _unit(stain.e_vec) * stain.e_scale
    gain = 255.0 * stain.brightness * 10.0 ** (-stain.background_od)
    out = np.full((256, 256), 255 << 24, np.uint32)
    for c in range(3):
        od = hq * hv[c] + eq * ev[c]
        v = np.clip(np.exp(od * -np.log(10.0)) * gain + 0.5, 0, 255).astype(np.uint32)
        out |= v << (8 * c)
    return out.reshape(-1)


class SlideBank:
    """The textures of the materials a slide uses, as RGB texels (3-byte void) under the slide's stain, flat.

    `base[m]` is the flat index of material m's first texture; then come, at TEX*TEX strides, variant 0, its mirror
    image (columns reversed), variant 1, its mirror, ...; materials a slide does not use point at glass.
    """

    def __init__(self, materials: list[int], stain: Stain, mpp: float) -> None:
        used = sorted(set(materials) | {GLASS})
        self.base = np.zeros(len(MATERIAL_NAMES), np.int64)
        per = VARIANTS * 2 * TEX * TEX
        # 3-byte RGB texels ("V3"): gathers write contiguous RGB strips directly
        self.flat = np.empty(per * len(used), "V3")
        self.size = self.flat.size
        for i, m in enumerate(used):
            self.base[m] = i * per
            dst = self.flat[i * per : (i + 1) * per].reshape(VARIANTS, 2, TEX, TEX)
            lut = _rgb_texels(stain_lut(stain, material_kind(m) if m != GLASS else 0))
            if m == GLASS:  # uniform: a fill instead of a lookup
                dst[...] = lut[0]
                continue
            tex = material_textures(m, mpp)
            he = tex[..., 0].astype(np.uint16) << 8 | tex[..., 1]
            np.take(lut, he, out=dst[:, 0])
            dst[:, 1] = dst[:, 0, :, ::-1]  # each variant's mirror image follows it
        self.glass = self.flat[self.base[GLASS]]
        self.glass_rgb = self.flat[self.base[GLASS] : self.base[GLASS] + 1].view(np.uint8).copy()


def _rgb_texels(rgba: np.ndarray) -> np.ndarray:
    """Packed little-endian RGBA uint32 -> 3-byte void RGB texels."""
    return np.ascontiguousarray(rgba.view(np.uint8).reshape(-1, 4)[:, :3]).view("V3").reshape(-1)
