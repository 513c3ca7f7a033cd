"""Feature h5 store: round trips, CLAM/TRIDENT/PathPT compatibility, stale-cache detection, errors, atomicity."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from pathpt_engine.errors import FeatureFileError
from pathpt_engine.features import (
    feature_attrs,
    is_valid,
    read_coords,
    read_features,
    stale_reason,
    write_coords,
    write_features,
)
from pathpt_engine.slides import GridParams, TileGrid

COORDS = np.array([[0, 0], [448, 0], [0, 448]], np.int64)


def _grid() -> TileGrid:
    return TileGrid(coords=COORDS, tissue=np.ones(3, np.float32), params=GridParams(), slide_mpp=0.25,
                    mpp_source="slide", level=1, level_downsample=2.0, read_size=224, size_level0=448,
                    slide_dimensions=(1000, 900), level_dimensions=(500, 450))


def _h5(path: Path, **datasets: np.ndarray) -> Path:
    with h5py.File(path, "w") as f:
        for name, data in datasets.items():
            f.create_dataset(name, data=data)
    return path


def test_coords_round_trip_with_clam_and_trident_attrs(tmp_path: Path) -> None:
    path = write_coords(tmp_path / "s1.h5", _grid(), {"slide_id": "abc", "slide_name": "s1", "tile_params": "{}"})
    c = read_coords(path)
    assert np.array_equal(c.coords, COORDS) and c.coords.dtype == np.int64
    a = c.coords_attrs
    assert (a["patch_size"], a["patch_level"], a["patch_size_level0"], a["tile_size"]) == (224, 1, 448, 224)
    assert a["downsample"] == [2.0, 2.0] and a["target_mpp"] == 0.5 and a["name"] == "s1"
    assert a["level0_magnification"] == 40.0 and a["target_magnification"] == 20.0
    assert c.attrs["slide_id"] == "abc"
    with h5py.File(path) as f:  # what CLAM/TRIDENT readers look at
        assert f["coords"].attrs["patch_size_level0"] == 448 and f["coords"].shape == (3, 2)
    assert [p.name for p in tmp_path.iterdir()] == ["s1.h5"]  # no temp files left


def test_features_round_trip_and_overwrite(tmp_path: Path) -> None:
    feats = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    attrs = {"backbone": "keep", "weights_hash": "w1", "slide_id": "abc", "tile_params": {"mpp": 0.5}}
    path = write_features(tmp_path / "s1.h5", COORDS, feats, attrs, coords_attrs={"patch_size_level0": 448})
    ff = read_features(path)
    assert np.array_equal(ff.features, feats) and np.array_equal(ff.coords, COORDS)
    assert ff.slide_id == "abc" and ff.attrs["backbone"] == "keep" and ff.labels is None
    assert ff.coords_attrs["patch_size_level0"] == 448
    write_features(path, COORDS[:2], feats[:2], attrs)
    assert read_features(path).features.shape == (2, 8)


def test_is_valid_detects_stale_cache(tmp_path: Path) -> None:
    feats = np.zeros((3, 4), np.float32)
    attrs = {"backbone": "keep", "weights_hash": "w1", "slide_id": "abc", "tile_params": {"mpp": 0.5}, "n": 3}
    path = write_features(tmp_path / "s.h5", COORDS, feats, attrs)
    assert is_valid(path, attrs)
    assert is_valid(path, {"backbone": "keep", "n": 3.0})
    assert not is_valid(path, {**attrs, "weights_hash": "w2"})
    assert not is_valid(path, {**attrs, "slide_id": "other"})
    assert not is_valid(path, {**attrs, "tile_params": {"mpp": 0.25}})
    assert stale_reason(path, {"extra": 1}) == "attribute 'extra' missing"
    assert stale_reason(tmp_path / "none.h5", attrs) == "missing"
    coords_only = write_coords(tmp_path / "c.h5", _grid(), {"slide_id": "abc"})
    assert is_valid(coords_only, {"slide_id": "abc"}, need_features=False)
    assert "no 'features' dataset" in stale_reason(coords_only, {"slide_id": "abc"})


def test_reads_clam_trident_and_pathpt_files(tmp_path: Path) -> None:
    feats = np.ones((3, 5), np.float32)
    clam = read_features(_h5(tmp_path / "clam.h5", features=feats, coords=COORDS))
    assert clam.attrs == {} and clam.slide_id is None and clam.features.shape == (3, 5)
    tri = tmp_path / "trident.h5"
    _h5(tri, features=feats.astype(np.float16), coords=COORDS.astype(np.int32))
    with h5py.File(tri, "a") as f:
        f["coords"].attrs.update({"patch_size": 256, "patch_size_level0": 512, "level0_magnification": 40,
                                  "target_magnification": 20, "overlap": 0, "name": "x"})
    t = read_features(tri)
    assert t.features.dtype == np.float32 and t.coords.dtype == np.int64
    assert t.coords_attrs["patch_size_level0"] == 512
    ref = read_features(_h5(tmp_path / "ref.h5", features=feats[None], coords=COORDS.astype(np.float64),
                            labels=np.array([0, 1, 2])))
    assert ref.features.shape == (3, 5) and list(ref.labels) == [0, 1, 2]


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"coords": COORDS}, "no 'features' dataset"),
        ({"features": np.ones((3, 2), np.float32)}, "no 'coords' dataset"),
        ({"features": np.ones((4, 2), np.float32), "coords": COORDS}, "4 feature rows but 3 coords"),
        ({"features": np.ones((3, 2), np.int32), "coords": COORDS}, "must be floating point"),
        ({"features": np.ones((3, 2), np.float32), "coords": COORDS + 0.5}, "'coords' must hold integers"),
        ({"features": np.ones((3, 2), np.float32), "coords": COORDS[:, :1]}, r"'coords' must be \[N, 2\]"),
        ({"features": np.array([[1.0, np.nan], [0, 0], [0, 0]]), "coords": COORDS}, "NaN/inf values in 1 of 3"),
        ({"features": np.ones((3, 2), np.float32), "coords": COORDS, "labels": np.ones(2, np.int64)}, "'labels'"),
    ],
)
def test_malformed_files_raise_feature_file_error(tmp_path: Path, datasets: dict, message: str) -> None:
    path = _h5(tmp_path / "bad.h5", **datasets)
    with pytest.raises(FeatureFileError, match=rf"bad\.h5: .*{message}"):
        read_features(path)
    assert not is_valid(path, {})


def test_missing_and_non_hdf5_files(tmp_path: Path) -> None:
    with pytest.raises(FeatureFileError, match=r"nope\.h5: no such feature file"):
        read_features(tmp_path / "nope.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(FeatureFileError, match=r"text\.h5: not a readable HDF5 file"):
        read_coords(tmp_path / "text.h5")


def test_bad_write_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_features(tmp_path / "s.h5", COORDS, np.ones((3, 4), np.float32), {"v": 1})
    with pytest.raises(FeatureFileError, match=r"s\.h5: .*NaN"):
        write_features(path, COORDS, np.full((3, 4), np.nan, np.float32), {"v": 2})
    with pytest.raises(FeatureFileError, match="feature rows"):
        write_features(path, COORDS, np.ones((2, 4), np.float32), {"v": 2})

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(FeatureFileError, match=r"s\.h5: cannot write \(disk full\)"):
        write_features(path, COORDS, np.zeros((3, 4), np.float32), {"v": 3})
    monkeypatch.undo()
    assert read_features(path).attrs["v"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.h5"]


def test_feature_attrs_carry_tiling_identity(tmp_path: Path) -> None:
    coords = read_coords(write_coords(tmp_path / "c.h5", _grid(), {"slide_id": "q1", "slide_name": "s",
                                                                    "tile_params": "{}", "slide_path": "/x"}))
    attrs = feature_attrs(coords, "keep", "sha256:1", proj_contrast=True)
    assert attrs == {"slide_id": "q1", "slide_name": "s", "tile_params": "{}", "backbone": "keep",
                     "weights_hash": "sha256:1", "proj_contrast": True}
    path = write_features(tmp_path / "f.h5", coords.coords, np.zeros((3, 2), np.float32), attrs,
                          coords.coords_attrs)
    assert is_valid(path, attrs)
    assert not is_valid(path, feature_attrs(coords, "keep", "sha256:2", proj_contrast=True))
    assert not is_valid(path, {**attrs, "proj_contrast": False})


def test_grid_from_our_and_clam_coords_files(tmp_path: Path) -> None:
    from slide_fixtures import make_slide

    from pathpt_engine.features import grid_from_coords
    from pathpt_engine.slides import TissueParams, make_grid, open_slide, read_tile, tissue_mask

    slide = make_slide(tmp_path / "s.svs", 1400, 1000, fmt="svs")
    with open_slide(slide) as r:
        grid = make_grid(r, tissue_mask(r, TissueParams(thumb_size=512)), GridParams(tile_size=100, min_tissue=0.2))
        back = grid_from_coords(read_coords(write_coords(tmp_path / "s.h5", grid)), r)
        for name in ("level", "level_downsample", "read_size", "size_level0", "tile_size", "slide_mpp",
                     "mpp_source", "slide_dimensions", "level_dimensions"):
            assert getattr(back, name) == getattr(grid, name), name
        assert back.params.target_mpp == grid.params.target_mpp and np.array_equal(back.coords, grid.coords)
        assert np.array_equal(read_tile(r, back, 0), read_tile(r, grid, 0))
        clam = tmp_path / "clam.h5"
        _h5(clam, coords=np.array([[0, 0], [512, 512]]))
        with h5py.File(clam, "a") as f:
            f["coords"].attrs.update({"patch_size": 256, "patch_level": 1, "downsample": [2.0, 2.0]})
        g = grid_from_coords(read_coords(clam), r)
        assert (g.level, g.read_size, g.size_level0, g.tile_size) == (1, 256, 512, 256)
        assert g.params.target_mpp == pytest.approx(0.5)
        assert read_tile(r, g, 1).shape == (256, 256, 3)
        with h5py.File(clam, "a") as f:
            f["coords"].attrs["patch_level"] = 7
        with pytest.raises(FeatureFileError, match=r"clam\.h5: patch_level 7 does not exist"):
            grid_from_coords(read_coords(clam), r)
