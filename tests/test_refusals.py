"""The shared refusal check (`tests/refusals.py`) can fail: a reader that accepts the file, says something else or
raises another kind of error does not pass it."""

from __future__ import annotations

from pathlib import Path

import pytest
from refusals import assert_refuses

from pathpt_engine.errors import ConfigError, PathPTError


def _strict_reader(path: Path) -> str:
    data = path.read_bytes()
    if data != b"ok":
        raise ConfigError(f"{path.name}: not ok ({data!r})")
    return "read"


def test_passes_on_the_named_refusal_and_writes_text_or_bytes(tmp_path: Path) -> None:
    info = assert_refuses(_strict_reader, tmp_path / "a.txt", "nope", r"a\.txt: not ok \(b'nope'\)")
    assert isinstance(info.value, ConfigError)
    assert_refuses(_strict_reader, tmp_path / "b.bin", b"\x00", r"b\.bin: not ok", ConfigError)
    assert_refuses(_strict_reader, tmp_path / "b.bin", None, r"b\.bin: not ok \(b'\\x00'\)")  # left as it was


@pytest.mark.parametrize(("content", "match", "error", "outcome"), [
    ("ok", "not ok", PathPTError, pytest.fail.Exception),  # the reader accepts the file: "DID NOT RAISE"
    ("nope", "missing columns", PathPTError, AssertionError),  # another message: the regex does not match
    ("nope", "not ok", KeyError, ConfigError),  # another kind of error: it is not caught
])
def test_fails_otherwise(tmp_path: Path, content: str, match: str, error: type[Exception],
                         outcome: type[BaseException]) -> None:
    with pytest.raises(outcome):
        assert_refuses(_strict_reader, tmp_path / "a.txt", content, match, error)
