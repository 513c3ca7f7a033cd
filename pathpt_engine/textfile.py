"""Reading small text files users make in other programs (labels CSVs): UTF-8, UTF-8 with a BOM, UTF-16 with
a BOM (Excel's "Unicode text"), and Windows-1252 / latin-1 (Excel's plain "CSV" on Windows), so an encoding
never reaches the user as a traceback."""

from __future__ import annotations

import codecs
import logging
import os
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger(__name__)


def read_user_text(path: str | os.PathLike[str], what: str = "file") -> str:
    """The text of `path`, decoded as UTF-8/UTF-16 (by BOM) or, failing UTF-8, Windows-1252/latin-1.

    Raises:
        ConfigError: the file cannot be read, is UTF-16 without a BOM, or holds NUL characters.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what} ({exc.strerror or exc})") from None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{p}: {what} starts as UTF-16 but is not valid UTF-16 ({exc.reason})") from None
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = _legacy(raw)
            log.warning("%s: %s is not UTF-8; read it as Windows-1252/latin-1 (save it as UTF-8 to be sure)", p,
                        what)
    if "\0" in text:
        raise ConfigError(f"{p}: {what} holds NUL characters (UTF-16 without a byte-order mark, or not a text "
                          "file?); save it as UTF-8 CSV")
    return text


def _legacy(raw: bytes) -> str:
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # the five bytes cp1252 leaves undefined
        return raw.decode("latin-1")
