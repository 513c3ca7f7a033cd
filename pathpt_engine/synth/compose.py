"""Render a realistic slide (`world`) from the texture bank, strip by strip, and its exact ground truth.

Each level-0 pixel copies one texel: the texture of its fine cell's material, in the piece its fine cell belongs
to (variant, flips, offset). The texel index is linear in (x, y) within a piece, so a strip is a few vectorised
integer operations and one gather from the slide's packed-RGBA bank; blocks of pure glass are a fill.
Ground truth is accumulated from the same fine material map: tumour and tissue masks at the mask downsample
(majority of fine cells) and, per 224 px tile at 0.5 um/px (112 um), the share of tissue, of the tumour outline
and of each class's pattern.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..jobs import check_cancel
from .bank import GLASS, TEX, VARIANTS, SlideBank
from .subtypes import MAX_SUBTYPES
from .world import FINE, Pieces, World, classes_of, fine_materials, make_pieces, piece_ids, tissue_span

STRIP = 1024  # level-0 rows per strip (a multiple of the JPEG tile and of every mask downsample)
COL_BLOCK = 1024  # level-0 columns per glass test
TILE_UM = 112.0  # ground-truth tiles: 224 px at 0.5 um/px
N_CLASSES = MAX_SUBTYPES + 1


def tile_px(mpp: float) -> int:
    """Level-0 edge of a ground-truth tile (112 um), rounded to whole fine cells."""
    return max(FINE, int(round(TILE_UM / mpp / FINE)) * FINE)


@dataclass
class Truth:
    """Ground truth accumulated strip by strip (fine-cell counts)."""

    width: int
    height: int
    ds: int
    tile: int
    tumour: np.ndarray = field(init=False)
    tissue: np.ndarray = field(init=False)
    tile_counts: np.ndarray = field(init=False)  # (rows, cols, 2 + N_CLASSES): tissue, outline, class patterns

    def __post_init__(self) -> None:
        mh, mw = -(-self.height // self.ds), -(-self.width // self.ds)
        self.tumour = np.zeros((mh, mw), bool)
        self.tissue = np.zeros((mh, mw), bool)
        th, tw = -(-self.height // self.tile), -(-self.width // self.tile)
        self.tile_counts = np.zeros((th, tw, 2 + N_CLASSES), np.int64)

    def add(self, fy0: int, mat: np.ndarray, tum: np.ndarray) -> None:
        """Add fine rows fy0.. (full width); fy0 must be a multiple of ds / FINE."""
        tis = mat != GLASS
        k = self.ds // FINE
        r0 = fy0 // k
        for dst, src in ((self.tissue, tis), (self.tumour, tum)):
            m = _block_mean(src, k)
            dst[r0 : r0 + m.shape[0]] = m[:, : dst.shape[1]] > 0.5
        tf = self.tile // FINE
        fy = np.arange(fy0, fy0 + mat.shape[0]) // tf
        fx = np.arange(mat.shape[1]) // tf
        th, tw, nc = self.tile_counts.shape
        cell = (fy[:, None] * tw + fx[None, :]).ravel()
        cls = classes_of(mat).ravel()
        counts = np.bincount(cell * nc + 2 + cls, weights=tis.ravel(), minlength=th * tw * nc)
        counts[0::nc] = np.bincount(cell, weights=tis.ravel(), minlength=th * tw)
        counts[1::nc] = np.bincount(cell, weights=tum.ravel(), minlength=th * tw)
        self.tile_counts += counts.reshape(th, tw, nc).astype(np.int64)

    def tile_table(self) -> dict[str, np.ndarray]:
        """Per tile: level-0 x, y, tissue share, tumour-outline share, per-class pattern share (of the tile)."""
        th, tw, _ = self.tile_counts.shape
        area = (self.tile // FINE) ** 2
        yy, xx = np.mgrid[0:th, 0:tw]
        frac = self.tile_counts.reshape(th * tw, -1) / area
        return {"tile_px": np.int64(self.tile), "x": (xx.ravel() * self.tile).astype(np.int64),
                "y": (yy.ravel() * self.tile).astype(np.int64), "tissue": frac[:, 0].astype(np.float32),
                "tumour": frac[:, 1].astype(np.float32), "classes": frac[:, 2:].astype(np.float32)}


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape
    ph, pw = -h % k, -w % k
    if ph or pw:
        a = np.pad(a, ((0, ph), (0, pw)))
    return a.reshape((h + ph) // k, k, (w + pw) // k, k).mean(axis=(1, 3))


def _fine_index(bank: SlideBank, pieces: Pieces, mat: np.ndarray, ids: np.ndarray,
                y0: int) -> tuple[np.ndarray, np.ndarray]:
    """Per fine cell: (flat index of the texel at row y0, column 0 under the cell's linear map; row step)."""
    glass = mat == GLASS  # glass is uniform: any texel of it, row 0 (x < width < the glass block's size)
    ky = np.where(pieces.flip_y[ids], -TEX, TEX).astype(np.int32)
    ky[glass] = 0
    tex = (pieces.variant[ids] * 2 + pieces.flip_x[ids]) * (TEX * TEX)  # mirrored copies follow each variant
    a = bank.base[mat] + tex + pieces.a_y[ids] * TEX + pieces.a_x[ids] + ky * y0
    a[glass] = bank.base[GLASS]
    return a.astype(np.int32), ky


def render_strip(world: World, bank: SlideBank, pieces: Pieces, y0: int, h: int, mat: np.ndarray,
                 ids: np.ndarray) -> np.ndarray:
    """RGB uint8 (h, width, 3) of level-0 rows y0..y0+h (y0 a multiple of FINE) from their fine rows."""
    width = world.spec.width
    out = np.empty((h, width), bank.flat.dtype)
    glass = bank.glass
    a, ky = _fine_index(bank, pieces, mat, ids, y0)
    dy = np.arange(h, dtype=np.int32)[:, None]
    dx = np.arange(FINE, dtype=np.int32)
    step = COL_BLOCK // FINE
    mode: Literal["raise", "clip"] = "raise" if pieces.exact else "clip"
    for c0 in range(0, mat.shape[1], step):
        c1 = min(mat.shape[1], c0 + step)
        x0, x1 = c0 * FINE, min(width, c1 * FINE)
        if not (mat[:, c0:c1] != GLASS).any():
            out[:, x0:x1] = glass
            continue
        xs = np.arange(c0, c1, dtype=np.int32) * FINE
        rowidx = np.repeat(a[:, c0:c1] + xs, FINE, axis=0)[:h]
        rowidx += dy * np.repeat(ky[:, c0:c1], FINE, axis=0)[:h]
        idx = (rowidx[:, :, None] + dx).reshape(h, -1)[:, : x1 - x0]
        out[:, x0:x1] = np.take(bank.flat, idx, mode=mode)
    return out.view(np.uint8).reshape(h, width, 3)


def iter_world_strips(world: World, bank: SlideBank, truth: Truth | None = None,
                      cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
    """Level-0 strips of STRIP rows (the last may be shorter), top to bottom; fills `truth` on the way."""
    spec = world.spec
    pieces = make_pieces(world, TEX, VARIANTS)
    for y0 in range(0, spec.height, STRIP):
        check_cancel(cancel)
        h = min(STRIP, spec.height - y0)
        fy0, fy1 = y0 // FINE, -(-(y0 + h) // FINE)
        mat, tum = fine_materials(world, fy0, fy1)
        if truth is not None:
            truth.add(fy0, mat, tum)
        ids = np.zeros(mat.shape, np.int32)  # pieces only where tissue may be (glass ignores them)
        fx0, fx1 = tissue_span(world, fy0, fy1)
        if fx1 > fx0:
            ids[:, fx0:fx1] = piece_ids(spec, world.noise_seed, fy0, fy1, fx0, fx1)
        yield render_strip(world, bank, pieces, y0, h, mat, ids)
