"""The tiling job: coords files per slide, reuse of valid files, progress, cancellation, name clashes."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from slide_fixtures import make_slide

from pathpt_engine.errors import ConfigError, JobCancelled
from pathpt_engine.features import read_coords
from pathpt_engine.features.tiling import tile_slides
from pathpt_engine.jobs import collect, run_job
from pathpt_engine.slides import GridParams, TissueParams

TISSUE = TissueParams(thumb_size=512)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("cohort")
    return [make_slide(d / "a.svs", 1800, 1400, fmt="svs", seed=1),
            make_slide(d / "b.tif", 1600, 1200, fmt="tiff", seed=2),
            make_slide(d / "blank.tif", 900, 900, blobs=0)]


def test_tiles_a_cohort_and_reuses_valid_files(cohort: list[Path], tmp_path: Path) -> None:
    summary, events = collect(tile_slides(cohort, tmp_path, GridParams(tile_size=112), TISSUE))
    assert [e.done for e in events] == [0, 1, 2, 3] and events[-1].total == 3
    by_name = {s.slide_name: s for s in summary.slides}
    assert set(by_name) == {"a", "b", "blank"}
    for name in ("a", "b"):
        s = by_name[name]
        assert s.n_tiles > 0 and not s.cached and s.message == ""
        c = read_coords(tmp_path / f"{name}.h5")
        assert len(c.coords) == s.n_tiles and c.attrs["slide_id"] == s.slide_id and c.attrs["slide_name"] == name
        assert c.coords_attrs["patch_size_level0"] == 224 and np.all(c.coords % 224 == 0)
    blank = by_name["blank"]
    assert blank.n_tiles == 0 and "no tissue found" in blank.message
    assert read_coords(tmp_path / "blank.h5").coords.shape == (0, 2)
    assert summary.total_tiles == by_name["a"].n_tiles + by_name["b"].n_tiles
    assert summary.to_dict()["params"]["grid"]["tile_size"] == 112

    again, _ = collect(tile_slides(cohort, tmp_path, GridParams(tile_size=112), TISSUE))
    assert all(s.cached for s in again.slides)
    fields = ("slide_name", "slide_id", "n_tiles", "level", "read_size", "size_level0", "slide_mpp", "mpp_source",
              "tissue_fraction", "message")
    assert [[getattr(s, f) for f in fields] for s in again.slides] == \
        [[getattr(s, f) for f in fields] for s in summary.slides]
    changed, _ = collect(tile_slides(cohort[:1], tmp_path, GridParams(tile_size=96), TISSUE))
    assert not changed.slides[0].cached
    assert read_coords(tmp_path / "a.h5").coords_attrs["patch_size_level0"] == 192


def test_cancel_between_slides(cohort: list[Path], tmp_path: Path) -> None:
    cancel = threading.Event()

    def on_progress(ev: object) -> None:
        if getattr(ev, "done", 0) == 1:
            cancel.set()

    with pytest.raises(JobCancelled):
        run_job(tile_slides(cohort, tmp_path, tissue_params=TISSUE, cancel=cancel), on_progress)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5"]


def test_same_slide_name_twice_is_an_error(cohort: list[Path], tmp_path: Path) -> None:
    other = tmp_path / "x"
    other.mkdir()
    dup = make_slide(other / "a.tif", 600, 600)
    with pytest.raises(ConfigError, match=r"a\.tif: same slide name 'a'"):
        collect(tile_slides([cohort[0], dup], tmp_path))
