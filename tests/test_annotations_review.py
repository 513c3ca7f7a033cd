"""Where to look next: disagreeing regions first, then the least certain tiles (zero-shot disagreement counts)."""

from __future__ import annotations

import numpy as np

from pathpt_engine.annotations import IGNORE_CLASS, Region, rectangle
from pathpt_engine.annotations.review import review_items

NAMES = ("normal", "a", "b")


def test_review_ranks_disagreeing_regions_then_unsure_tiles():
    coords = np.array([[0, 0], [100, 0], [200, 0], [300, 0]])
    probs = np.array([[0.9, 0.05, 0.05], [0.34, 0.33, 0.33], [0.1, 0.55, 0.35], [0.5, 0.45, 0.05]])
    zs = np.array([[0.9, 0.05, 0.05], [0.4, 0.3, 0.3], [0.1, 0.1, 0.8], [0.6, 0.3, 0.1]])
    regions = [Region("s", "b", rectangle(0, 0, 100, 100)),  # model says normal there: listed
               Region("s", "normal", rectangle(0, 0, 100, 100)),  # agrees: not listed
               Region("s", IGNORE_CLASS, rectangle(100, 0, 200, 100))]  # ignore: never listed
    items = review_items(coords, 100, probs, NAMES, zs, regions, k=3)
    assert [i.kind for i in items] == ["region", "tile", "tile", "tile"]
    assert items[0].region_id == regions[0].region_id and "disagrees on 100% of its 1 tiles" in items[0].reason
    # tile 2 (margin 0.2) disagrees with zero-shot (+0.5): above tile 1 (margin 0.01) and tile 3 (margin 0.05)
    assert [(i.x, i.y) for i in items[1:]] == [(200.0, 0.0), (100.0, 0.0), (300.0, 0.0)]
    assert "zero-shot said b" in items[1].reason and "zero-shot" not in items[2].reason
    assert review_items(coords, 100, probs, NAMES, None, (), k=2)[0].x == 100.0
    assert review_items(coords[:0], 100, probs[:0], NAMES) == []
