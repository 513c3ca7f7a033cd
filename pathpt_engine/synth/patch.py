"""Fast patch-level generator: one tile of one tissue kind, in the slides' style and scale."""

from __future__ import annotations

import numpy as np

from .render import Stain, he_to_rgb, pixel_centres, render_he
from .subtypes import kind_index

PATCH_MPP = 0.5


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        return np.random.default_rng(rng)
    raise ValueError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")


def render_patch(
    kind: str | int,
    size: int = 224,
    rng: np.random.Generator | int | None = None,
    stain: Stain | str = "random",
    mpp: float = PATCH_MPP,
) -> np.ndarray:
    """Render a square tissue patch of one kind.

    Args:
        kind: "normal", a subtype name from `SUBTYPES`, or its index (0 = normal).
        size: edge in pixels (8..4096).
        rng: numpy Generator, int seed or None (fresh entropy). The same int seed gives the same pixels.
        stain: "random" (slide-to-slide variation drawn from rng), "default" (no variation) or a `Stain`.
        mpp: microns per pixel (default 0.5: a 224 px patch covers 112 um, like a 0.25 um/px slide at level 1).

    Returns:
        uint8 array (size, size, 3), RGB, fully covered by tissue.
    """
    k = kind_index(kind)
    if not isinstance(size, (int, np.integer)) or not 8 <= size <= 4096:
        raise ValueError(f"patch size must be an int in 8..4096, got {size!r}")
    if not 0.1 <= mpp <= 4.0:
        raise ValueError(f"patch mpp must be in 0.1..4.0 um/px, got {mpp}")
    g = _as_rng(rng)
    seed = int(g.integers(0, 2**62))
    x0, y0 = g.uniform(0, 1e6, 2)
    if isinstance(stain, Stain):
        st = stain
    elif stain == "random":
        st = Stain.sample(g)
    elif stain == "default":
        st = Stain()
    else:
        raise ValueError(f"stain must be 'random', 'default' or a Stain, got {stain!r}")
    xs, ys = pixel_centres(float(x0), float(y0), int(size), int(size), mpp)
    h, e = render_he(k, xs, ys, seed, mpp)
    return he_to_rgb([(h, k)], e, st, mpp)
