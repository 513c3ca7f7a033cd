"""Slide prediction by tile vote (method.md §5.3).

The vote's slide-level numbers are shares of tile votes, not probabilities: "65%" means that 65% of the tiles
that voted (normally the tumour tiles, i.e. those whose most likely class is a subtype) voted for that subtype.
`vote_summary` also says which tiles voted, so that the number can be shown as what it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TUMOUR = "tumour"  # the tiles whose argmax over all classes is a subtype voted
ALL = "all"  # fallback: no such tile, or a tie among subtypes; every tile voted with its argmax over subtypes


@dataclass(frozen=True)
class VoteSummary:
    """The outcome of a tile vote.

    Attributes:
        subtype: the winning subtype, 0-based.
        shares: [C-1] share of the voting tiles that voted for each subtype (sums to 1).
        basis: TUMOUR or ALL (which tiles voted).
        n_voters: how many tiles voted.
    """

    subtype: int
    shares: np.ndarray
    basis: str
    n_voters: int


def vote_summary(probs: np.ndarray) -> VoteSummary:
    """Vote over tile argmaxes.

    Args:
        probs: [N, C] tile scores (class 0 = Normal, C >= 2).

    Rule: counts of the argmax over all C classes; if no tile is non-Normal or the largest non-Normal count is
    tied, recount with the argmax over the subtype columns only. Ties go to the first index.
    """
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise ValueError(f"tile_vote: need [N, C>=2] scores, got {probs.shape}")
    n_sub = probs.shape[1] - 1
    if probs.shape[0] == 0:
        return VoteSummary(0, np.full(n_sub, 1.0 / n_sub), ALL, 0)
    counts = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])[1:]
    top = counts.max()
    basis = TUMOUR
    if top == 0 or int((counts == top).sum()) > 1:
        counts = np.bincount(probs[:, 1:].argmax(axis=1), minlength=n_sub)
        basis = ALL
    return VoteSummary(int(counts.argmax()), counts / counts.sum(), basis, int(counts.sum()))


def tile_vote(probs: np.ndarray) -> tuple[int, np.ndarray]:
    """(subtype index 0-based, share of the voting tiles per subtype [C-1]); see `vote_summary`."""
    v = vote_summary(probs)
    return v.subtype, v.shares

