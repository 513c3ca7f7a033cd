"""The layout of a realistic synthetic slide: tissue fragments on glass, fat, stroma, normal parenchyma, and for a
tumour slide one or more tumour regions with irregular borders, intratumoural stroma and sometimes a minor second
subtype pattern.

Fields live on a coarse grid (one node per `COARSE` level-0 pixels), in microns (> 0 inside). They are refined to
a *fine* grid (one cell per `FINE` pixels: 2 um at 0.5 um/px) with small-scale noise, and every fine cell gets one
material (see `bank`). The fine material map is what is rendered (each cell's pixels come from its material) and
what the ground truth is computed from, so masks and per-tile fractions are exact at fine-cell resolution.
Rows of the fine map can be computed for any strip independently (deterministic from the seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import noise
from .bank import FAT, GLASS, NORMAL, STROMA, material_kind, subtype_material
from .slide import _bilinear, check_slide_spec
from .subtypes import MAX_SUBTYPES

COARSE = 16  # level-0 pixels per coarse node
FINE = 4  # level-0 pixels per fine cell
PIECE = 384  # level-0 pixels between texture-piece sites
PIECE_WARP = 60.0  # level-0 pixels of border waviness between pieces
_S_FRAG, _S_HOLE, _S_TUM, _S_ITS, _S_SEC, _S_FAT, _S_NORM, _S_FINE, _S_PIECE = range(301, 310)


@dataclass(frozen=True)
class WorldSpec:
    """One realistic slide.

    Attributes:
        width, height: level-0 size in pixels.
        kind: 0 normal, k >= 1 tumour regions of SUBTYPES[k].
        seed: everything follows from it.
        mpp: level-0 microns per pixel.
        tumour_fraction: target share of the tissue inside the tumour outline (tumour slides).
        mask_downsample: level-0 pixels per mask pixel (4..64, power of two).
        n_subtypes: subtypes of the cohort (a minor second pattern is drawn from them).
    """

    width: int
    height: int
    kind: int = 0
    seed: int = 0
    mpp: float = 0.5
    tumour_fraction: float = 0.3
    mask_downsample: int = 16
    n_subtypes: int = 3

    def __post_init__(self) -> None:
        check_slide_spec(self.width, self.height, self.kind, self.seed, self.mpp, self.tumour_fraction,
                         self.mask_downsample)
        if not 1 <= self.n_subtypes <= MAX_SUBTYPES:
            raise ValueError(f"n_subtypes must be 1..{MAX_SUBTYPES}, got {self.n_subtypes}")


@dataclass(frozen=True)
class World:
    """Coarse fields of one slide (microns, > 0 inside) and what they mean. Build with `make_world`."""

    spec: WorldSpec
    tissue: np.ndarray
    tumour: np.ndarray
    its: np.ndarray  # intratumoural stroma (inside the tumour outline)
    second: np.ndarray  # minor second subtype pattern (inside the tumour outline)
    fat: np.ndarray
    normal: np.ndarray  # normal parenchyma with glands (else plain stroma)
    second_kind: int
    noise_seed: int

    @property
    def materials(self) -> list[int]:
        """Every material this slide may use."""
        out = [GLASS, STROMA, NORMAL, FAT]
        if self.spec.kind:
            out.append(subtype_material(self.spec.kind))
        if self.second_kind:
            out.append(subtype_material(self.second_kind))
        return out


def _grid_um(spec: WorldSpec) -> tuple[np.ndarray, np.ndarray]:
    gw, gh = -(-spec.width // COARSE), -(-spec.height // COARSE)
    return (np.arange(gw) + 0.5) * COARSE * spec.mpp, (np.arange(gh) + 0.5) * COARSE * spec.mpp


def _fragments(spec: WorldSpec, rng: np.random.Generator, xs: np.ndarray, ys: np.ndarray, seed: int) -> np.ndarray:
    """Signed tissue field (um): 2-5 irregular fragments in a loose grid, with small tears."""
    w_um, h_um = spec.width * spec.mpp, spec.height * spec.mpp
    n = int(rng.choice([2, 3, 3, 4, 5]))
    cols = max(1, int(round(np.sqrt(n * w_um / h_um))))
    rows = -(-n // cols)
    X, Y = xs[None, :], ys[:, None]
    f = np.full((ys.size, xs.size), -1e4, np.float32)
    slots = rng.permutation(rows * cols)[:n]
    for k, slot in enumerate(slots):
        r, c = divmod(int(slot), cols)
        sw, sh = w_um / cols, h_um / rows
        size = 1.0 if k == 0 else rng.uniform(0.55, 1.0)
        rx, ry = sw * rng.uniform(0.36, 0.46) * size, sh * rng.uniform(0.36, 0.46) * size
        cx = sw * (c + 0.5) + rng.uniform(-0.08, 0.08) * sw
        cy = sh * (r + 0.5) + rng.uniform(-0.08, 0.08) * sh
        a = rng.uniform(-0.5, 0.5)
        u = ((X - cx) * np.cos(a) + (Y - cy) * np.sin(a)) / rx
        v = (-(X - cx) * np.sin(a) + (Y - cy) * np.cos(a)) / ry
        rad = min(rx, ry)
        warp = noise.fbm_grid(xs, ys, 0.8 * rad, seed, _S_FRAG * 16 + k, octaves=4)
        f = np.maximum(f, (rad * (1.0 - np.sqrt(u * u + v * v)) + 0.45 * rad * warp).astype(np.float32))
    edge = np.minimum(np.minimum(X, w_um - X), np.minimum(Y, h_um - Y)) - min(40.0, 0.04 * min(w_um, h_um))
    f = np.minimum(f, edge.astype(np.float32))
    holes = noise.fbm_grid(xs, ys, 70.0, seed, _S_HOLE, octaves=2)
    return np.minimum(f, (0.62 - holes) * 120.0).astype(np.float32)


def _tumour(spec: WorldSpec, rng: np.random.Generator, tissue: np.ndarray, xs: np.ndarray, ys: np.ndarray,
            seed: int) -> np.ndarray:
    """Signed tumour-outline field (um): 1-3 foci with irregular borders covering `tumour_fraction` of the tissue."""
    inside = tissue > 0
    if spec.kind == 0 or not inside.any():
        return np.full(tissue.shape, -1e4, np.float32)
    X, Y = xs[None, :], ys[:, None]
    n = int(rng.choice([1, 1, 2, 3]))
    cand = np.flatnonzero((tissue >= np.quantile(tissue[inside], 0.3)) & inside)
    area = inside.sum() * (COARSE * spec.mpp) ** 2
    rad = float(np.sqrt(spec.tumour_fraction * area / (np.pi * n)))
    f: np.ndarray = np.full(tissue.shape, -1e9, np.float32)
    for _ in range(n):
        i = int(rng.choice(cand))
        cy, cx = ys[i // xs.size], xs[i % xs.size]
        f = np.maximum(f, (-np.sqrt((X - cx) ** 2 + (Y - cy) ** 2) * rng.uniform(0.7, 1.3)).astype(np.float32))
    f = f + 0.9 * rad * noise.fbm_grid(xs, ys, max(60.0, 0.9 * rad), seed, _S_TUM, octaves=5)
    thr = float(np.quantile(f[inside], 1.0 - spec.tumour_fraction))
    return (f - thr).astype(np.float32)


def _share(field: np.ndarray, where: np.ndarray, frac: float, scale: float) -> np.ndarray:
    """Field (um) > 0 on a `frac` share of the nodes in `where` (threshold at the quantile), never elsewhere."""
    if frac <= 0 or not where.any():
        return np.full(field.shape, -1e4, np.float32)
    thr = float(np.quantile(field[where], 1.0 - frac))
    return ((field - thr) * scale).astype(np.float32)


def make_world(spec: WorldSpec) -> World:
    """All coarse fields of the slide (deterministic from the seed)."""
    rng = np.random.default_rng([spec.seed, 6007])
    seed = int(rng.integers(0, 2**62))
    xs, ys = _grid_um(spec)
    tissue = _fragments(spec, rng, xs, ys, seed)
    tumour = _tumour(spec, rng, tissue, xs, ys, seed)
    inside, tum = tissue > 0, (tissue > 0) & (tumour > 0)
    normal_t = inside & ~tum

    def fbm(scale: float, salt: int) -> np.ndarray:
        return noise.fbm_grid(xs, ys, scale, seed, salt, octaves=3)

    its = _share(fbm(45.0, _S_ITS), tum, float(rng.uniform(0.1, 0.25)), 45.0)
    others = [k for k in range(1, spec.n_subtypes + 1) if k != spec.kind]
    second_kind = int(rng.choice(others)) if spec.kind and others and rng.random() < 0.35 else 0
    second = _share(fbm(110.0, _S_SEC), tum, float(rng.uniform(0.05, 0.15)) if second_kind else 0.0, 110.0)
    fat = _share(fbm(260.0, _S_FAT), normal_t, float(rng.uniform(0.05, 0.25)), 260.0)
    normal = _share(fbm(380.0, _S_NORM), normal_t, float(rng.uniform(0.3, 0.65)), 380.0)
    return World(spec, tissue, tumour, its, second, fat, normal, second_kind, seed)


def _refine(f: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Coarse field bilinearly interpolated at fine cells (rows fy, columns fx)."""
    gx = (fx + 0.5) * (FINE / COARSE) - 0.5
    gy = (fy + 0.5) * (FINE / COARSE) - 0.5
    return _bilinear(f, gx, gy)


def tissue_span(world: World, fy0: int, fy1: int) -> tuple[int, int]:
    """Fine columns [fx0, fx1) outside which fine rows fy0..fy1 are surely glass.

    A fine cell is tissue only where the interpolated tissue field exceeds -5 (the fine wiggle is 5 * value noise
    in [-1, 1]), so one of its 4 surrounding coarse nodes exceeds -5: columns whose nearby nodes never do are glass.
    """
    r = COARSE // FINE
    nfx = -(-world.spec.width // FINE)
    rows = world.tissue[max(0, fy0 // r - 1) : -(-fy1 // r) + 1]
    cols = np.flatnonzero((rows > -5.0).any(axis=0)) if rows.size else np.zeros(0, np.int64)
    if not cols.size:
        return 0, 0
    return max(0, int(cols[0] - 1) * r), min(nfx, int(cols[-1] + 2) * r)


def fine_materials(world: World, fy0: int, fy1: int) -> tuple[np.ndarray, np.ndarray]:
    """(material uint8, inside-tumour-outline bool) of fine rows fy0..fy1 and every fine column."""
    spec = world.spec
    nfx = -(-spec.width // FINE)
    mat = np.full((fy1 - fy0, nfx), GLASS, np.uint8)
    tum = np.zeros(mat.shape, bool)
    fx0, fx1 = tissue_span(world, fy0, fy1)
    if fx1 > fx0:
        mat[:, fx0:fx1], tum[:, fx0:fx1] = _materials(world, np.arange(fy0, fy1), np.arange(fx0, fx1))
    return mat, tum


def _materials(world: World, fy: np.ndarray, fx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    spec = world.spec
    xs, ys = (fx + 0.5) * FINE * spec.mpp, (fy + 0.5) * FINE * spec.mpp
    wig = noise.value_noise_grid(xs, ys, 12.0, world.noise_seed, _S_FINE)
    tissue = _refine(world.tissue, fy, fx) + 5.0 * wig > 0
    mat = np.full((fy.size, fx.size), GLASS, np.uint8)
    mat[tissue] = STROMA
    mat[tissue & (_refine(world.normal, fy, fx) - 4.0 * wig > 0)] = NORMAL
    mat[tissue & (_refine(world.fat, fy, fx) + 4.0 * wig > 0)] = FAT
    tum = np.zeros(mat.shape, bool)
    if spec.kind:
        tum = tissue & (_refine(world.tumour, fy, fx) + 6.0 * wig > 0)
        mat[tum] = subtype_material(spec.kind)
        if world.second_kind:
            mat[tum & (_refine(world.second, fy, fx) > 0)] = subtype_material(world.second_kind)
        mat[tum & (_refine(world.its, fy, fx) - 3.0 * wig > 0)] = STROMA
    return mat, tum


def classes_of(mat: np.ndarray) -> np.ndarray:
    """Cohort class of each fine cell's pattern (0 = no tumour pattern)."""
    lut = np.array([material_kind(m) for m in range(256 if mat.dtype == np.uint8 else int(mat.max()) + 1)],
                   np.uint8)
    return lut[mat]


@dataclass(frozen=True)
class Pieces:
    """Texture pieces: a jittered lattice of sites every PIECE px; each fine cell copies from its nearest site's
    piece. Per piece: bounding box (fine cells), variant, flips and offset into the texture."""

    ncols: int
    variant: np.ndarray  # texture variant of each piece
    flip_y: np.ndarray  # bool
    flip_x: np.ndarray
    a_y: np.ndarray  # texture row of level-0 row y is a_y + (-y if flip_y else y)
    a_x: np.ndarray  # texture column of level-0 column x is a_x + x (flip_x: in the mirrored copy)
    exact: bool  # every piece fits its texture (no index can leave it)


PIECE_GRID = 2  # fine cells per piece-map cell (piece seams follow an 8 px staircase)


def _sites(spec: WorldSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Jittered site positions (level-0 px) of every lattice cell, padded by one cell on each side."""
    nr, nc = -(-spec.height // PIECE) + 2, -(-spec.width // PIECE) + 2
    u = noise.hash_streams(2, seed, _S_PIECE + 2, np.arange(nr)[:, None], np.arange(nc)[None, :])
    sx = (np.arange(nc)[None, :] - 1 + 0.25 + 0.5 * u[0]) * PIECE
    sy = (np.arange(nr)[:, None] - 1 + 0.25 + 0.5 * u[1]) * PIECE
    return sy.astype(np.float32), sx.astype(np.float32)


def piece_ids(spec: WorldSpec, seed: int, fy0: int, fy1: int, fx0: int = 0, fx1: int | None = None) -> np.ndarray:
    """Piece index (int32) of the fine cells in rows fy0..fy1, columns fx0..fx1 (default: all), from the nearest
    jittered site with warped borders (the same values however the grid is cut)."""
    nfx = -(-spec.width // FINE) if fx1 is None else fx1
    g0, g1 = fy0 // PIECE_GRID, -(-fy1 // PIECE_GRID)
    h0 = fx0 // PIECE_GRID
    px = (np.arange(h0, -(-nfx // PIECE_GRID)) + 0.5) * FINE * PIECE_GRID
    py = (np.arange(g0, g1) + 0.5) * FINE * PIECE_GRID
    um_x, um_y = px * spec.mpp, py * spec.mpp
    wx = PIECE_WARP * noise.fbm_grid(um_x, um_y, 45.0, seed, _S_PIECE, octaves=3)
    wy = PIECE_WARP * noise.fbm_grid(um_x, um_y, 45.0, seed, _S_PIECE + 1, octaves=3)
    X, Y = (px[None, :] + wx).astype(np.float32), (py[:, None] + wy).astype(np.float32)
    sy, sx = _sites(spec, seed)
    gx = (np.floor(px / PIECE).astype(np.int64) + 1)[None, :]
    gy = (np.floor(py / PIECE).astype(np.int64) + 1)[:, None]
    best = np.full(X.shape, np.inf, np.float32)
    out = np.zeros(X.shape, np.int32)
    ncols = sx.shape[1]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cy, cx = np.clip(gy + dy, 0, sy.shape[0] - 1), np.clip(gx + dx, 0, ncols - 1)
            d = (X - sx[cy, cx]) ** 2 + (Y - sy[cy, cx]) ** 2
            closer = d < best
            np.copyto(best, d, where=closer)
            np.copyto(out, (cy * ncols + cx).astype(np.int32), where=closer)
    out = np.repeat(np.repeat(out, PIECE_GRID, axis=0), PIECE_GRID, axis=1)
    r0, c0 = fy0 - g0 * PIECE_GRID, fx0 - h0 * PIECE_GRID
    return out[r0 : r0 + fy1 - fy0, c0 : c0 + nfx - fx0]


def make_pieces(world: World, tex: int, variants: int, strip_fine: int = 256) -> Pieces:
    """Bounding boxes of every piece (one pass over the whole fine grid) and each piece's draw."""
    spec, seed = world.spec, world.noise_seed
    ncols = -(-spec.width // PIECE) + 2
    n = ncols * (-(-spec.height // PIECE) + 2)
    by0, bx0 = np.full(n, 1 << 30, np.int64), np.full(n, 1 << 30, np.int64)
    by1, bx1 = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    fh = -(-spec.height // FINE)
    for f0 in range(0, fh, strip_fine):
        f1 = min(fh, f0 + strip_fine)
        fx0 = 0  # boxes over glass too: a piece's texture offset must not depend on where tissue is
        ids = piece_ids(spec, seed, f0, f1)
        first = np.ones(ids.shape, bool)  # runs of equal ids along each row: their ends bound the boxes
        first[:, 1:] = ids[:, 1:] != ids[:, :-1]
        last = np.ones(ids.shape, bool)
        last[:, :-1] = first[:, 1:]
        r0, c0 = np.nonzero(first)
        r1, c1 = np.nonzero(last)
        np.minimum.at(by0, ids[r0, c0], r0 + f0)
        np.maximum.at(by1, ids[r1, c1], r1 + f0)
        np.minimum.at(bx0, ids[r0, c0], c0 + fx0)
        np.maximum.at(bx1, ids[r1, c1], c1 + fx0)
    u = noise.hash_streams(5, seed, _S_PIECE + 3, np.arange(n))
    ey = np.clip((by1 - by0 + 1) * FINE, 0, tex)
    ex = np.clip((bx1 - bx0 + 1) * FINE, 0, tex)
    oy, ox = (u[3] * (tex - ey + 1)).astype(np.int64), (u[4] * (tex - ex + 1)).astype(np.int64)
    fy, fx = u[0] < 0.5, u[1] < 0.5
    y0, x0 = by0 * FINE, bx0 * FINE
    a_y = np.where(fy, oy + ey - 1 + y0, oy - y0)
    a_x = ox - x0
    exact = bool(((by1 - by0 + 1) * FINE <= tex).all() and ((bx1 - bx0 + 1) * FINE <= tex).all())
    return Pieces(ncols, (u[2] * variants).astype(np.int64), fy, fx, a_y, a_x, exact)
