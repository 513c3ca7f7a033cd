"""Deterministic, seamless noise in global (micron) coordinates.

Everything here is a pure function of (seed, salt, position), so a slide rendered block by block, strip by strip
or as one patch gives the same pixels at the same place with no seams. Two evaluation modes give identical
values: `*_grid` for a pixel grid given as 1-D x and y coordinate vectors (fast: separable interpolation), and
`*_points` for scattered points (nucleus centres).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on a uint64 array (wrapping arithmetic; callers silence overflow warnings)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_u64(*keys: int | np.ndarray) -> np.ndarray:
    """Hash integer keys (broadcast together) to uint64."""
    h = np.zeros((), dtype=np.uint64) + np.uint64(0x243F6A8885A308D3)
    with np.errstate(over="ignore"):
        for k in keys:
            k64 = np.asarray(k).astype(np.int64).astype(np.uint64)
            h = _mix(h ^ (k64 + _GOLDEN))
    return np.asarray(h)


def _to_unit(h: np.ndarray) -> np.ndarray:
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def hash_uniform(*keys: int | np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) (float64) from integer keys."""
    return _to_unit(hash_u64(*keys))


def hash_streams(n: int, *keys: int | np.ndarray) -> list[np.ndarray]:
    """`n` independent uniform [0, 1) arrays from one hash of `keys` (cheaper than n full hashes)."""
    base = hash_u64(*keys)
    out = []
    with np.errstate(over="ignore"):
        for k in range(n):
            out.append(_to_unit(_mix(base + np.uint64(k + 1) * _GOLDEN)))
    return out


def _smooth(t: np.ndarray) -> np.ndarray:
    return t * t * (3.0 - 2.0 * t)


def _axis_weights(coords: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per-coordinate lattice cell (relative to the first), smoothstep weight, first lattice index, lattice count."""
    g = np.asarray(coords, dtype=np.float64) / scale
    i = np.floor(g).astype(np.int64)
    i0 = int(i.min())
    return i - i0, _smooth(g - i).astype(np.float32), i0, int(i.max()) - i0 + 2


def value_noise_grid(xs: np.ndarray, ys: np.ndarray, scale: float, seed: int, salt: int) -> np.ndarray:
    """Value noise in [-1, 1] on the grid ys x xs (microns), feature size `scale` microns. Shape (len(ys), len(xs)).

    Separable interpolation with element-wise arithmetic only (no BLAS), so results do not depend on thread count.
    """
    jx, tx, ix0, nx = _axis_weights(xs, scale)
    jy, ty, iy0, ny = _axis_weights(ys, scale)
    iy = np.arange(iy0, iy0 + ny)[:, None]
    ix = np.arange(ix0, ix0 + nx)[None, :]
    lattice = (hash_uniform(seed, salt, iy, ix) * 2.0 - 1.0).astype(np.float32)
    rows = lattice[jy] * (1 - ty)[:, None] + lattice[jy + 1] * ty[:, None]
    out = rows[:, jx]
    out *= 1 - tx
    out += rows[:, jx + 1] * tx
    return out


def value_noise_points(x: np.ndarray, y: np.ndarray, scale: float, seed: int, salt: int) -> np.ndarray:
    """Value noise at scattered points (same values as `value_noise_grid` at the same positions)."""
    gx = np.asarray(x, dtype=np.float64) / scale
    gy = np.asarray(y, dtype=np.float64) / scale
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    tx, ty = _smooth(gx - ix), _smooth(gy - iy)

    def v(dy: int, dx: int) -> np.ndarray:
        return hash_uniform(seed, salt, iy + dy, ix + dx) * 2.0 - 1.0

    top = v(0, 0) * (1 - tx) + v(0, 1) * tx
    bot = v(1, 0) * (1 - tx) + v(1, 1) * tx
    return (top * (1 - ty) + bot * ty).astype(np.float32)


def _fbm(octave: Callable[[float, int], np.ndarray], shape: tuple[int, ...], scale: float, salt: int,
         octaves: int) -> np.ndarray:
    """Sum `octave(scale / 2**o, salt * 16 + o)` over the octaves (gain 0.5), normalised: the one fBm rule."""
    out = np.zeros(shape, dtype=np.float32)
    amp, norm = 1.0, 0.0
    for o in range(octaves):
        out += amp * octave(scale / 2**o, salt * 16 + o)
        norm += amp
        amp *= 0.5
    return out / np.float32(norm)


def fbm_grid(xs: np.ndarray, ys: np.ndarray, scale: float, seed: int, salt: int, octaves: int = 3) -> np.ndarray:
    """Fractal sum of value-noise octaves (halving scale, gain 0.5), roughly in [-1, 1]."""
    return _fbm(lambda s, k: value_noise_grid(xs, ys, s, seed, k), (len(ys), len(xs)), scale, salt, octaves)


def fbm_points(x: np.ndarray, y: np.ndarray, scale: float, seed: int, salt: int, octaves: int = 3) -> np.ndarray:
    """`fbm_grid` at scattered points."""
    return _fbm(lambda s, k: value_noise_points(x, y, s, seed, k), np.shape(x), scale, salt, octaves)


TEXTURE_PERIOD = 256  # texels; the fine-grain texture repeats every TEXTURE_PERIOD texels


@lru_cache(maxsize=8)
def grain_texture(texel_um: float) -> np.ndarray:
    """A periodic, zero-mean, unit-variance fine-grain texture (float32, PERIOD x PERIOD texels of `texel_um`).

    Built at 0.25 um texels and box-averaged to coarser texels so that a slide rendered at 0.25 um/px and
    downsampled matches a patch rendered directly at 0.5 um/px.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(20240917)
    factor = max(1, round(texel_um / 0.25))
    n = TEXTURE_PERIOD * factor
    base = gaussian_filter(rng.standard_normal((n, n)).astype(np.float32), 1.2, mode="wrap")
    base /= base.std()
    if factor > 1:
        base = base.reshape(TEXTURE_PERIOD, factor, TEXTURE_PERIOD, factor).mean(axis=(1, 3))
    return base.astype(np.float32)


def sample_texture(tex: np.ndarray, xs: np.ndarray, ys: np.ndarray, texel_um: float, offset: int) -> np.ndarray:
    """Nearest-texel lookup of a periodic texture on the grid ys x xs (microns), shifted by `offset` texels."""
    p = tex.shape[0]
    ix = (np.floor(np.asarray(xs) / texel_um).astype(np.int64) + offset) % p
    iy = (np.floor(np.asarray(ys) / texel_um).astype(np.int64) + 7 * offset) % p
    return tex[np.ix_(iy, ix)]
