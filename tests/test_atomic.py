"""The one atomic-write helper: replace on success, old file intact and no temp left on failure."""

from __future__ import annotations

import pytest

from pathpt_engine.atomic import atomic_path, write_bytes_atomic, write_text_atomic


def test_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_text_atomic(target, "new\r\n")
    assert target.read_bytes() == b"new\r\n"  # newlines written as given
    write_bytes_atomic(target, b"\x00\x01", fsync=True)
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "labels.csv"
    target.write_text("precious")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:  # noqa: PT012 - raised inside the writer
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.csv"]


def test_temp_is_hidden_unique_and_keeps_the_suffix(tmp_path):
    target = tmp_path / "slide.svs"
    with atomic_path(target) as a, atomic_path(tmp_path / "slide.svs") as b:
        assert a != b and a.parent == tmp_path
        assert a.name.startswith(".slide.") and a.suffix == ".svs"
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    assert target.read_bytes() == b"a"  # the outer context finished last
    assert [p.name for p in tmp_path.iterdir()] == ["slide.svs"]


def test_nothing_written_means_nothing_replaced(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("keep")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass  # the writer never created the temp file: the rename fails, the old file stays
    assert target.read_text() == "keep"
