"""One reader of a QuPath feature's object type (`annotations.qupath.object_type`) for the annotation importer,
`read_geojson` and the streaming GeoJSON reader the GUI uses."""

from __future__ import annotations

import json

from pathpt_engine.export import read_geojson
from pathpt_engine.export.geojson_stream import read_geojson_job
from pathpt_engine.jobs import collect

SQUARE = {"type": "Polygon", "coordinates": [[[0, 0], [100, 0], [100, 100], [0, 100], [0, 0]]]}


def _feature(fid: str, name: str) -> dict:
    return {"type": "Feature", "id": fid, "geometry": SQUARE,
            "properties": {"classification": {"name": name, "colorRGB": -16776961}}}


def test_legacy_cells_are_not_read_as_annotations_by_either_reader(tmp_path):
    """A QuPath v0.2 file: the object class is the feature id. Cells are not annotation regions (the streaming
    reader knew only tiles and detections, so it read a cell as an annotation)."""
    path = tmp_path / "v02.geojson"
    path.write_text(json.dumps([_feature("PathAnnotationObject", "Tumor"), _feature("PathCellObject", "Cell")]))
    streamed, _events = collect(read_geojson_job(path))
    assert [r.classification for r in streamed.imported.regions] == ["Tumor"]
    assert [r.classification for r in read_geojson(path).regions] == ["Tumor"]
