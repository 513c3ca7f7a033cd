"""AppSettings' ranged integers (tile-cache budget, reader threads): defaults, clipping of stored values, refusals."""

from __future__ import annotations

import pytest

from pathpt_gui.settings import CACHE_MB_RANGE, THREADS_RANGE, AppSettings

pytestmark = pytest.mark.gui


def test_ranged_ints_default_clip_and_refuse(tmp_path):
    s = AppSettings.at(tmp_path / "settings.ini")
    assert (s.cache_mb, s.reader_threads) == (512, 4)  # nothing stored yet
    s.cache_mb, s.reader_threads = 1024, 8
    s.sync()
    again = AppSettings.at(tmp_path / "settings.ini")
    assert (again.cache_mb, again.reader_threads) == (1024, 8)
    with pytest.raises(ValueError, match=r"^cache size must be 64\.\.16384 MiB, got 63$"):
        s.cache_mb = CACHE_MB_RANGE[0] - 1
    with pytest.raises(ValueError, match=r"^reader threads must be 1\.\.16, got 17$"):
        s.reader_threads = THREADS_RANGE[1] + 1
    assert (s.cache_mb, s.reader_threads) == (1024, 8)  # a refused value changes nothing
    s.q.setValue("viewer/cache_mb", 10**6)  # edited by hand: read as the nearest bound
    s.q.setValue("viewer/reader_threads", 0)
    assert (s.cache_mb, s.reader_threads) == (CACHE_MB_RANGE[1], THREADS_RANGE[0])
    s.q.setValue("viewer/cache_mb", "lots")  # not a number: the default
    s.q.setValue("viewer/reader_threads", "")
    assert (s.cache_mb, s.reader_threads) == (512, 4)


def test_unreadable_opacity_and_recent_files_fall_back(tmp_path):
    s = AppSettings.at(tmp_path / "settings.ini")
    assert s.overlay_opacity == 0.45 and s.recent_files() == []  # nothing stored yet
    s.overlay_opacity = 0.7
    assert s.overlay_opacity == pytest.approx(0.7)
    with pytest.raises(ValueError, match="overlay opacity must be in"):
        s.overlay_opacity = 1.5
    for bad in ("thick", "2.0", None):
        s.q.setValue("overlay/opacity", bad)
        assert s.overlay_opacity == 0.45
    s.q.setValue("recent/files", "/a/one.svs")  # a lone string (some backends store a 1-list so)
    assert s.recent_files() == ["/a/one.svs"]
    s.add_recent(tmp_path / "two.svs")
    assert s.recent_files() == [str((tmp_path / "two.svs").resolve()), "/a/one.svs"]
    s.clear_recent()
    assert s.recent_files() == []
