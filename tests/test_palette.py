"""One class palette (`pathpt_engine.colors`): the GUI's class map shows each class in the colour the exports
(PNG overlay, heatmap figure, GeoJSON) give it."""

from __future__ import annotations

import numpy as np

from pathpt_engine.colors import class_colors, class_rgb
from pathpt_engine.export.png import OverlayStyle, tile_colors
from pathpt_engine.results import TileScores
from pathpt_gui.viewer.overlay import OverlayModel

NAMES = ("normal", "luad", "lusc", "sclc")


def _scores() -> TileScores:
    coords = np.array([[x * 256, 0] for x in range(4)], np.int64)
    return TileScores("s1", coords, np.eye(4, dtype=np.float32), 256, NAMES)


def _screen_rgb(model: OverlayModel) -> list[tuple[int, ...]]:
    img = model.colorize()
    assert img is not None
    return [tuple(int(v) for v in img[0, c, :3]) for c in range(4)]


def _export_rgb(scores: TileScores, colors: dict[str, str]) -> list[tuple[int, ...]]:
    rgba = tile_colors(scores, OverlayStyle(alpha=1.0, colors=colors))  # Normal: RGB set, alpha 0
    return [tuple(int(v) for v in c[:3]) for c in rgba]


def test_class_map_default_colours_are_the_export_palette():
    model = OverlayModel()
    model.set_tile_scores(_scores())
    assert _screen_rgb(model) == [class_colors(NAMES)[n] for n in NAMES]
    assert _screen_rgb(model) == _export_rgb(_scores(), {})
    assert _screen_rgb(model)[0] == (127, 127, 127)  # Normal grey, as in the exports


def test_a_class_without_a_project_colour_gets_the_export_colour():
    project = {"normal": "#00ff00", "luad": "#ff0000"}  # 'lusc' and 'sclc' are not in the project's class set
    model = OverlayModel()
    model.set_tile_scores(_scores(), None, class_rgb(NAMES, project))
    assert _screen_rgb(model) == _export_rgb(_scores(), project)
