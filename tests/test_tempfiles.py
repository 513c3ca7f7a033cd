"""The temp-name rule: `is_temp` recognises exactly what `temp_name` makes; cleanup and checks use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from tempfiles import assert_no_temp

from pathpt_engine.atomic import atomic_path, find_temp, is_temp, temp_name
from pathpt_engine.cluster.lock import clean_temp_files


@pytest.mark.parametrize("name", ["s1.h5", "predictions.csv", "archive.tar.gz", "noext", ".hidden.json",
                                  "checkpoint.json", "s1.stage"])
def test_is_temp_matches_every_name_temp_name_makes(tmp_path: Path, name: str) -> None:
    tmp = temp_name(tmp_path / name)
    assert is_temp(tmp), tmp.name
    assert not is_temp(tmp_path / name)


@pytest.mark.parametrize("name", ["s1.h5", "notes.tmp", ".s1.h5", "s1.123.abcdef12.tmp.h5", ".s1.h5.4242.tmp.bak"])
def test_is_temp_leaves_user_files_alone(name: str) -> None:
    assert not is_temp(Path(name))


def test_assert_no_temp_fails_on_a_real_leftover(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    temp_name(tmp_path / "sub" / "s1.h5").write_bytes(b"half")
    with pytest.raises(AssertionError, match="temp files left"):
        assert_no_temp(tmp_path)


def test_assert_no_temp_passes_after_an_atomic_write(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "s1.h5") as tmp:
        tmp.write_bytes(b"done")
    assert_no_temp(tmp_path)
    assert (tmp_path / "s1.h5").read_bytes() == b"done"


def test_clean_temp_files_removes_the_writers_real_temp_names(tmp_path: Path) -> None:
    h5dir = tmp_path / "keep" / "h5_files"
    h5dir.mkdir(parents=True)
    keep = [h5dir / "s1.h5", tmp_path / "coords.h5", tmp_path / "notes.tmp", h5dir / ".s1.h5"]
    junk = [temp_name(h5dir / "s1.h5"), temp_name(tmp_path / "coords" / "s2.h5"), temp_name(tmp_path / "x.svs")]
    for p in keep + junk:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert sorted(clean_temp_files(tmp_path)) == sorted(junk)
    assert all(p.exists() for p in keep) and not any(p.exists() for p in junk)
    assert find_temp(tmp_path) == []
