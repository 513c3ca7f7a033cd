"""The direct JPEG fast path refuses exactly the tiles OpenSlide refuses (libjpeg warnings are errors there).

Each case damages one tile of a real JPEG-tiled slide in place (its TileByteCounts entry rewritten when the
length changes), then reads that tile through OpenSlide and through the fast path: both must fail, or both must
give the same pixels. Before strict decoding the fast path returned partial garbage for most of these.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from slide_fixtures import blob_image, make_slide, write_rgb_jpeg_svs

from pathpt_engine.errors import SlideError
from pathpt_engine.slides import open_slide
from pathpt_engine.slides.tiff_tiles import decode_jpeg_strict

TILE = 5  # column 1, row 1 of a 1024-px-wide level of 256-px tiles


def _scan_start(tile: bytes) -> int:
    sos = tile.find(b"\xff\xda")
    return sos + 2 + int.from_bytes(tile[sos + 2:sos + 4], "big")


def _overwrite(tile: bytes, at: int, junk: bytes) -> bytes:
    b = bytearray(tile)
    b[at:at + len(junk)] = junk
    return bytes(b)


def _mid(tile: bytes) -> int:
    s = _scan_start(tile)
    return s + (len(tile) - s) // 2


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "truncated_10pct": lambda t: t[:_scan_start(t) + (len(t) - _scan_start(t)) // 10],
    "truncated_half": lambda t: t[:_mid(t)],
    "truncated_last_bytes": lambda t: t[:-40],
    "missing_eoi": lambda t: t[:-2],
    "eoi_mid_scan": lambda t: _overwrite(t, _mid(t), b"\xff\xd9"),
    "zeros_mid_scan": lambda t: _overwrite(t, _mid(t), b"\x00" * 64),
    "garbage_mid_scan": lambda t: _overwrite(t, _mid(t), bytes(range(1, 129))),
    "bad_huffman_code": lambda t: _overwrite(t, _mid(t), b"\xff\x00" * 32),  # 256 one-bits: no such code
    "bad_marker_in_scan": lambda t: _overwrite(t, _mid(t), b"\xff\xff\xff\xff"),
    "junk_before_eoi": lambda t: t[:-2] + b"\x00" * 10 + b"\xff\xd9",
}


def _slides(root: Path) -> dict[str, Path]:
    return {"aperio_rgb": write_rgb_jpeg_svs(root / "rgb.svs", blob_image(1024, 768, seed=3), tile=256),
            "tiff_ycbcr": make_slide(root / "ycc.tif", 1024, 768, fmt="tiff", seed=4)}


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _slides(tmp_path_factory.mktemp("clean"))


def _damage(src: Path, dst: Path, how: Callable[[bytes], bytes]) -> None:
    shutil.copy(src, dst)
    with tifffile.TiffFile(dst) as tf:
        page = tf.pages[0]
        offset, count = page.dataoffsets[TILE], page.databytecounts[TILE]
    with open(dst, "r+b") as fh:
        fh.seek(offset)
        tile = fh.read(count)
        bad = how(tile)
        assert bad != tile
        fh.seek(offset)
        fh.write(bad)
    with tifffile.TiffFile(dst, mode="r+b") as tf:
        tag = tf.pages[0].tags["TileByteCounts"]
        counts = list(tag.value)
        counts[TILE] = len(bad)
        tag.overwrite(counts)


def _openslide_tile(path: Path, location: tuple[int, int] = (256, 256), size: int = 256) -> np.ndarray | None:
    """OpenSlide's own read of one level-0 region (RGB), or None when OpenSlide refuses it."""
    osr = openslide.OpenSlide(str(path))
    try:
        return np.asarray(osr.read_region(location, 0, (size, size)))[..., :3]
    except openslide.OpenSlideError:
        return None
    finally:
        osr.close()


@pytest.mark.parametrize("kind", ["aperio_rgb", "tiff_ycbcr"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_fast_path_refuses_what_openslide_refuses(tmp_path: Path, clean: dict[str, Path], kind: str,
                                                  damage: str) -> None:
    path = tmp_path / clean[kind].name
    _damage(clean[kind], path, DAMAGE[damage])
    expected = _openslide_tile(path)
    with open_slide(path) as reader:
        assert reader.native_tile_size(0) == (256, 256)  # the fast path serves this level
        if expected is None:
            with pytest.raises(SlideError, match=rf"{path.name}: cannot decode level 0 tile \(col 1, row 1\)"):
                reader.read_native_tile(0, 1, 1)
            with pytest.raises(SlideError, match=path.name):
                reader.read_region((256, 256), 0, (256, 256))
        else:
            np.testing.assert_array_equal(reader.read_native_tile(0, 1, 1), expected)
        reader.read_native_tile(0, 0, 0)  # the neighbours still read


def test_damage_cases_cover_both_verdicts(tmp_path: Path, clean: dict[str, Path]) -> None:
    """The cases above are not vacuous: OpenSlide refuses the truncations, the missing EOI, the overwritten
    scans and the bad Huffman data, and accepts junk after the scan (and some overwritten scans that still decode
    to the end: OpenSlide returns those pixels, so the fast path does too)."""
    refused = {}
    for kind, damage in (("aperio_rgb", "truncated_half"), ("aperio_rgb", "missing_eoi"),
                         ("aperio_rgb", "eoi_mid_scan"), ("aperio_rgb", "bad_marker_in_scan"),
                         ("tiff_ycbcr", "bad_huffman_code"), ("aperio_rgb", "junk_before_eoi")):
        path = tmp_path / f"{damage}{clean[kind].suffix}"
        _damage(clean[kind], path, DAMAGE[damage])
        refused[damage] = _openslide_tile(path) is None
    assert refused == {"truncated_half": True, "missing_eoi": True, "eoi_mid_scan": True, "bad_marker_in_scan": True,
                       "bad_huffman_code": True, "junk_before_eoi": False}


def test_strict_decoder_messages() -> None:
    with pytest.raises(ValueError, match="not a JPEG stream"):
        decode_jpeg_strict(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="JPEGTables"):
        decode_jpeg_strict(b"\xff\xd8\xff\xd9", tables=b"\x00\x00")


def test_openslide_fixtures_unreadable_and_small() -> None:
    """OpenSlide's own slides: `unreadable.svs` fails on both paths, `small.svs` gives OpenSlide's pixels."""
    from openslide_fixtures import openslide_fixture

    bad, good = openslide_fixture("unreadable.svs"), openslide_fixture("small.svs")
    assert _openslide_tile(bad, (0, 0), 16) is None
    with open_slide(bad) as reader:
        assert reader.has_fast_path
        with pytest.raises(SlideError, match=r"unreadable\.svs: cannot decode level 0 tile \(col 0, row 0\)"):
            reader.read_region((0, 0), 0, (16, 16))
    with open_slide(good) as reader:
        assert reader.has_fast_path
        np.testing.assert_array_equal(reader.read_region((0, 0), 0, (16, 16)), _openslide_tile(good, (0, 0), 16))
