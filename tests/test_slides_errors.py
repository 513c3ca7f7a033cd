"""Bad input always surfaces as SlideError naming the file and the reason, never a raw OpenSlide/PIL error."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from slide_fixtures import blob_image, corrupt_tile, make_slide, write_plain_tiff

from pathpt_engine.errors import PathPTError, SlideError
from pathpt_engine.slides import open_slide


@pytest.fixture(scope="module")
def good_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_slide(tmp_path_factory.mktemp("good") / "good.tif", 1024, 768, fmt="tiff")


def _read_everything(path: Path) -> None:
    with open_slide(path) as r:
        for level in range(r.level_count):
            w, h = r.level_dimensions[level]
            ds = r.level_downsamples[level]
            for y in range(0, h, 256):
                for x in range(0, w, 256):
                    r.read_region((int(x * ds), int(y * ds)), level, (256, 256))


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(SlideError, match=r"nope\.svs: no such file"):
        open_slide(tmp_path / "nope.svs")


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SlideError, match="is a directory"):
        open_slide(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.svs").write_bytes(b"")
    with pytest.raises(SlideError, match=r"empty\.svs: empty file"):
        open_slide(tmp_path / "empty.svs")


def test_text_file_with_slide_extension(tmp_path: Path) -> None:
    (tmp_path / "notes.svs").write_text("these are not pixels\n" * 50)
    with pytest.raises(SlideError, match=r"notes\.svs: not a slide format"):
        open_slide(tmp_path / "notes.svs")


def test_format_openslide_cannot_open(tmp_path: Path) -> None:
    path = write_plain_tiff(tmp_path / "stripped.tif", blob_image(300, 200), tiled=False)
    with pytest.raises(SlideError, match=r"stripped\.tif: a TIFF file OpenSlide cannot open as a slide"):
        open_slide(path)


def test_truncated_file(tmp_path: Path, good_tiff: Path) -> None:
    path = tmp_path / "truncated.tif"
    data = good_tiff.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideError, match=r"truncated\.tif"):
        _read_everything(path)


def test_garbage_after_tiff_header(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.tif"
    rng = np.random.default_rng(0)
    path.write_bytes(b"II*\x00" + rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(SlideError, match=r"corrupt\.tif: "):
        open_slide(path)


def test_corrupt_ifd_offsets(tmp_path: Path, good_tiff: Path) -> None:
    path = tmp_path / "badifd.tif"
    data = bytearray(good_tiff.read_bytes())
    data[8:16] = (len(data) * 4).to_bytes(8, "little")  # BigTIFF first-IFD offset beyond the end
    path.write_bytes(bytes(data))
    with pytest.raises(SlideError, match=r"badifd\.tif: "):
        open_slide(path)


@pytest.mark.parametrize("fast", [True, False])
def test_tile_that_fails_to_decode(tmp_path: Path, good_tiff: Path, fast: bool) -> None:
    path = tmp_path / "badtile.tif"
    shutil.copy(good_tiff, path)
    corrupt_tile(path, page=0, index=2)  # level 0, col 2, row 0
    with open_slide(path, fast_path=fast) as r:
        with pytest.raises(SlideError, match=r"badtile\.tif: cannot decode .*(col 2, row 0|\(512, 0\))") as info:
            r.read_region((512, 0), 0, (256, 256))
        assert isinstance(info.value, PathPTError)
        # The reader recovers: neighbouring tiles still read, and the same bad tile fails the same way again.
        assert r.read_region((256, 0), 0, (256, 256)).shape == (256, 256, 3)
        with pytest.raises(SlideError, match=r"badtile\.tif"):
            r.read_region((400, 10), 0, (200, 100))
        assert r.read_region((0, 256), 0, (256, 256)).shape == (256, 256, 3)
        assert r.thumbnail(64).shape[1] == 64


def test_bad_level_and_size(good_tiff: Path) -> None:
    with open_slide(good_tiff) as r:
        with pytest.raises(SlideError, match="level 9 out of range"):
            r.read_region((0, 0), 9, (10, 10))
        with pytest.raises(SlideError, match="size must be positive"):
            r.read_region((0, 0), 0, (0, 10))
        with pytest.raises(SlideError, match="outside level 0"):
            r.read_native_tile(0, 99, 0)


def test_repeated_bad_tiles_do_not_pile_up_handles(tmp_path: Path, good_tiff: Path) -> None:
    path = tmp_path / "leak.tif"
    shutil.copy(good_tiff, path)
    corrupt_tile(path, page=0, index=0)
    with open_slide(path, fast_path=False) as r:
        for _ in range(30):
            with pytest.raises(SlideError):
                r.read_region((0, 0), 0, (256, 256))
        # white-box: replaced handles are closed once no thread uses them (OpenSlide holds no fds to count)
        assert r._retired == [] and r._users == {}
        assert r.read_region((256, 0), 0, (256, 256)).shape == (256, 256, 3)
