"""QuPath GeoJSON export: structure, exact round trip, tissue union, legacy import, regions, bad input."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from refusals import assert_refuses

from pathpt_engine.export import read_geojson, to_geojson, write_geojson
from pathpt_engine.export.polygons import ring_area, tile_union
from pathpt_engine.results import SlidePrediction, TileScores

NAMES = ("Normal", "LUAD", "LUSC")


def _scores(skip: tuple[int, int] | None = (2, 1), t: int = 224, seed: int = 0) -> TileScores:
    coords = np.array([[100 + x * t, 50 + y * t] for y in range(4) for x in range(5) if (x, y) != skip])
    probs = np.random.default_rng(seed).dirichlet(np.ones(3), len(coords)).astype(np.float32)
    return TileScores("slide-1", coords, probs, t, NAMES)


PRED = SlidePrediction("slide-1", "LUSC", {"LUAD": 0.25, "LUSC": 0.75}, 19)


def _check_ring(ring: list) -> None:
    assert len(ring) >= 4 and ring[0] == ring[-1]
    assert all(len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in ring)


def _check_geometry(geom: dict) -> list:
    assert geom["type"] in ("Polygon", "MultiPolygon")
    polys = [geom["coordinates"]] if geom["type"] == "Polygon" else geom["coordinates"]
    if geom["type"] == "MultiPolygon":
        assert len(polys) > 1  # a one-part MultiPolygon must be written as a Polygon
    for poly in polys:
        for ring in poly:
            _check_ring(ring)
        assert ring_area(poly[0]) > 0 and all(ring_area(h) < 0 for h in poly[1:])
    return polys


def test_structure_is_qupath_v04(tmp_path: Path) -> None:
    scores = _scores()
    path = write_geojson(tmp_path / "s.geojson", scores, PRED, colors={"LUSC": "#00ff00"})
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    feats = doc["features"]
    assert len(feats) == 1 + len(scores.coords)
    ids = [f["id"] for f in feats]
    assert len(set(ids)) == len(ids) and all(str(uuid.UUID(i)) == i for i in ids)
    summary, tiles = feats[0], feats[1:]
    for f, (x, y), row in zip(tiles, scores.coords.tolist(), scores.probs, strict=True):
        assert f["type"] == "Feature"
        (poly,) = _check_geometry(f["geometry"])
        assert poly == [[[x, y], [x + 224, y], [x + 224, y + 224], [x, y + 224], [x, y]]]
        props = f["properties"]
        assert props["objectType"] == "tile"
        best = NAMES[int(np.argmax(row))]
        assert props["classification"]["name"] == best
        color = props["classification"]["color"]
        assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
        if best == "LUSC":
            assert color == [0, 255, 0]
        assert list(props["measurements"]) == list(NAMES)
        assert np.allclose([props["measurements"][n] for n in NAMES], row)
    sp = summary["properties"]
    assert sp["objectType"] == "annotation" and sp["classification"]["name"] == "LUSC"
    assert sp["measurements"] == {"vote share: LUAD": 0.25, "vote share: LUSC": 0.75, "n_tiles": 19}
    assert sp["metadata"]["pathpt.slide_score"] == "tile_votes"
    assert sp["name"] == "slide-1: LUSC (tile votes: 75% of the voting tiles)"
    assert all(isinstance(v, str) for v in sp["metadata"].values())
    polys = _check_geometry(summary["geometry"])
    # union of 19 squares with one interior tile missing -> one polygon with one hole, exact area
    assert len(polys) == 1 and len(polys[0]) == 2
    assert sum(ring_area(r) for r in polys[0]) == pytest.approx(19 * 224 * 224)


def test_round_trip_is_exact(tmp_path: Path) -> None:
    scores = _scores(seed=3)
    back = read_geojson(write_geojson(tmp_path / "s.geojson", scores, PRED))
    assert back.scores is not None and back.prediction == PRED
    assert back.scores.slide_id == "slide-1" and back.scores.class_names == NAMES
    assert back.scores.tile_size_level0 == 224
    np.testing.assert_array_equal(back.scores.coords, scores.coords)
    np.testing.assert_allclose(back.scores.probs, scores.probs, rtol=1e-7, atol=0)
    assert back.scores.probs.dtype == np.float32 and back.regions == []


def test_disjoint_tissue_is_multipolygon_and_given_outline_is_used(tmp_path: Path) -> None:
    coords = np.array([[0, 0], [256, 0], [2048, 2048]])
    scores = TileScores("s", coords, np.full((3, 2), 0.5, np.float32), 256, ("Normal", "T"))
    summary = to_geojson(scores)["features"][0]
    polys = _check_geometry(summary["geometry"])
    assert summary["geometry"]["type"] == "MultiPolygon" and len(polys) == 2
    assert "classification" not in summary["properties"]  # no slide prediction given
    outline = [[[[0, 0], [3000, 0], [3000, 3000], [0, 3000], [0, 0]]]]
    summary = to_geojson(scores, tissue=outline)["features"][0]
    assert summary["geometry"] == {"type": "Polygon", "coordinates": outline[0]}
    back = read_geojson(write_geojson(tmp_path / "x.json", scores, tissue=outline))
    assert back.prediction is None and back.scores is not None and back.scores.tile_size_level0 == 256


def test_tile_union_property_on_random_masks() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = rng.random((9, 11)) < 0.55
        ys, xs = np.nonzero(mask)
        polys = tile_union(np.stack([xs * 16 + 8, ys * 16], 1), 16)
        assert sum(ring_area(r) for p in polys for r in p) == pytest.approx(mask.sum() * 256)
        for p in polys:
            for ring in p:
                _check_ring(ring)
                assert len({tuple(v) for v in ring[:-1]}) == len(ring) - 1  # simple rings
    # overlapping tiles (stride half the tile) are unioned exactly too
    polys = tile_union(np.array([[0, 0], [8, 0], [16, 0]]), 16)
    assert polys == [[[[0, 0], [32, 0], [32, 16], [0, 16], [0, 0]]]]


LEGACY = {
    "type": "FeatureCollection",
    "features": [
        {"type": "Feature", "id": "PathTileObject",
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [0, 100], [100, 100], [100, 0], [0, 0]]]},
         "properties": {"classification": {"name": "B", "colorRGB": -16776961},
                        "measurements": [{"name": "A", "value": 0.2}, {"name": "B", "value": 0.8}]}},
        {"type": "Feature", "id": "PathTileObject",
         "geometry": {"type": "Polygon", "coordinates": [[[100, 0], [200, 0], [200, 100], [100, 100], [100, 0]]]},
         "properties": {"measurements": [{"name": "A", "value": 0.6}, {"name": "B", "value": 0.4}]}},
        {"type": "Feature", "id": "PathAnnotationObject",
         "geometry": {"type": "Polygon", "coordinates": [[[5, 5], [50, 5], [50, 50], [5, 5]]]},
         "properties": {"classification": {"name": "Tumor", "colorRGB": -3670016}, "isLocked": False}},
        {"type": "Feature",
         "geometry": {"type": "MultiPolygon", "coordinates": [
             [[[0, 0], [10, 0], [10, 10], [0, 10]]], [[[20, 20], [30, 20], [30, 30], [20, 30], [20, 20]]]]},
         "properties": {"object_type": "annotation", "name": "st",
                        "classification": {"names": ["Stroma", "Dense"], "color": [1, 2, 3]}}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [1, 2]},
         "properties": {"type": "annotation", "classification": {"name": "Dot"}}},
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]},
         "properties": {"type": "annotation"}},
    ],
}


def test_legacy_v02_v03_import(tmp_path: Path) -> None:
    path = tmp_path / "legacy.geojson"
    path.write_text(json.dumps(LEGACY))
    got = read_geojson(path)
    assert got.scores is not None and got.scores.class_names == ("A", "B")
    np.testing.assert_array_equal(got.scores.coords, [[0, 0], [100, 0]])
    np.testing.assert_allclose(got.scores.probs, [[0.2, 0.8], [0.6, 0.4]], rtol=1e-6)
    assert got.scores.tile_size_level0 == 100 and got.prediction is None
    tumor, stroma = got.regions  # the Point and the unclassified polygon are not regions
    assert (tumor.classification, tumor.color) == ("Tumor", (200, 0, 0))
    assert tumor.polygons == [[[[5.0, 5.0], [50.0, 5.0], [50.0, 50.0], [5.0, 5.0]]]]
    assert (stroma.classification, stroma.color, stroma.name) == ("Stroma: Dense", (1, 2, 3), "st")
    assert len(stroma.polygons) == 2 and stroma.polygons[0][0][-1] == [0.0, 0.0]  # ring closed on import
    # a bare list of features is accepted too
    path.write_text(json.dumps(LEGACY["features"][:2]))
    assert read_geojson(path).scores is not None


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    assert_refuses(read_geojson, tmp_path / "missing.geojson", None, "missing.geojson")
    bad = tmp_path / "bad.geojson"
    assert_refuses(read_geojson, bad, "{not json", "bad.geojson: cannot read GeoJSON")
    assert_refuses(read_geojson, bad, json.dumps({"type": "Topology"}), "bad.geojson: not GeoJSON")
    doc = json.loads(json.dumps(LEGACY))
    doc["features"][1]["properties"]["measurements"] = [{"name": "A", "value": 0.6}]
    assert_refuses(read_geojson, bad, json.dumps(doc), r"bad.geojson: tile feature 1 lacks measurements \['B'\]")


def test_regions_label_tiles_by_centre(tmp_path: Path) -> None:
    from pathpt_engine.export import tile_labels_from_regions

    doc = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": str(uuid.uuid4()),
         "geometry": {"type": "Polygon", "coordinates": [
             [[0, 0], [400, 0], [400, 400], [0, 400], [0, 0]],
             [[100, 100], [300, 100], [300, 300], [100, 300], [100, 100]]]},  # hole in the middle
         "properties": {"objectType": "annotation", "classification": {"name": "LUAD", "color": [255, 0, 0]}}},
        {"type": "Feature", "id": str(uuid.uuid4()),
         "geometry": {"type": "Polygon", "coordinates": [[[350, 0], [600, 0], [600, 100], [350, 100], [350, 0]]]},
         "properties": {"objectType": "annotation", "classification": {"name": "LUSC", "color": [0, 255, 0]}}},
    ]}
    path = tmp_path / "ann.geojson"
    path.write_text(json.dumps(doc))
    regions = read_geojson(path).regions
    coords = np.array([[0, 0], [150, 150], [300, 300], [400, 0], [700, 700]])
    assert tile_labels_from_regions(regions, coords, 50) == ["LUAD", None, "LUAD", "LUSC", None]


def test_cells_are_not_tiles_and_read_regions(tmp_path: Path) -> None:
    from pathpt_engine.export import read_regions

    cell = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 5], [0, 0]]]},
            "properties": {"objectType": "detection", "measurements": {"Nucleus: Area": 12.0}}}
    cell2 = json.loads(json.dumps(cell))
    cell2["properties"]["measurements"] = {"Nucleus: Area": 9.0, "Hematoxylin OD mean": 0.3}
    doc = {"type": "FeatureCollection", "features": [cell, cell2, LEGACY["features"][2]]}
    path = tmp_path / "cells.geojson"
    path.write_text(json.dumps(doc))
    got = read_geojson(path)
    assert got.scores is None and [r.classification for r in got.regions] == ["Tumor"]
    path.write_text(json.dumps(LEGACY))
    assert [r.classification for r in read_regions(path)] == ["Tumor", "Stroma: Dense"]
