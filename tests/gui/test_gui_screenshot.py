"""`pathpt-gui --screenshot`: a PNG of the requested size with slide content, overlays, and clean failures."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage
from tempfiles import assert_no_temp

from pathpt_engine.colors import class_colors
from pathpt_gui.app import main
from pathpt_gui.screenshot import ViewSpec, parse_size

pytestmark = pytest.mark.gui


def pixel(img: QImage, x: int, y: int) -> tuple[int, int, int]:
    c = img.pixelColor(x, y)
    return (c.red(), c.green(), c.blue())


def test_screenshot_writes_png_of_size_with_slide_content(qapp, slide_file, tmp_path) -> None:
    out = tmp_path / "shot.png"
    # centre (1024, 768) at full resolution: the gradient there is red ~128, green ~128, blue 90
    assert main(["--screenshot", str(out), "--size", "640x400", "--view", "1024,768,1", str(slide_file)]) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (640, 400)
    r, g, b = pixel(img, 320, 200)
    assert abs(r - 128) < 10 and abs(g - 128) < 10 and abs(b - 90) < 10
    r2, _, _ = pixel(img, 600, 200)  # 280 px to the right: red grows with x (255 per 2048 px)
    assert r2 - r == pytest.approx(280 * 255 / 2048, abs=6)
    assert_no_temp(tmp_path)


def test_screenshot_fit_shows_background_around_slide(qapp, slide_file, tmp_path) -> None:
    out = tmp_path / "fit.png"
    assert main(["--screenshot", str(out), "--size", "800x400", str(slide_file)]) == 0
    img = QImage(str(out))
    assert pixel(img, 5, 200) == (43, 45, 48)  # dark-grey viewer background left of the slide
    assert pixel(img, 400, 200)[2] == pytest.approx(90, abs=8)  # slide in the middle


def test_screenshot_with_overlay_and_window(qapp, slide_file, tmp_path) -> None:
    npz = tmp_path / "scores.npz"
    xs, ys = np.meshgrid(np.arange(0, 2048, 256), np.arange(0, 1536, 256))
    coords = np.stack([xs.ravel(), ys.ravel()], 1)
    np.savez(npz, coords=coords, tile_size=256, probs=np.tile([[0.0, 1.0]], (len(coords), 1)),
             class_names=np.array(["normal", "tumour"]))
    out = tmp_path / "overlay.png"
    rc = main(["--screenshot", str(out), "--size", "640x400", "--view", "1024,768,0.5", "--overlay", str(npz),
               "--opacity", "1", str(slide_file)])
    assert rc == 0
    # every tile votes "tumour": its colour in the one engine palette (Normal grey, then tab10), opaque
    assert pixel(QImage(str(out)), 320, 200) == class_colors(["normal", "tumour"])["tumour"] == (31, 119, 180)
    win = tmp_path / "window.png"
    assert main(["--screenshot", str(win), "--window", "--size", "900x600", str(slide_file)]) == 0
    assert QImage(str(win)).size().toTuple() == (900, 600)


def test_screenshot_bad_inputs_fail_cleanly(qapp, tmp_path, capsys, slide_file) -> None:
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"\x00" * 64)
    assert main(["--screenshot", str(tmp_path / "x.png"), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("pathpt-gui: ") and "bad.tif" in err and "\n" not in err
    assert main(["--screenshot", str(tmp_path / "x.png"), "--view", "1,2", str(slide_file)]) == 2
    assert not (tmp_path / "x.png").exists()


def test_view_and_size_parsing() -> None:
    assert ViewSpec.parse("10,20,0.5") == ViewSpec(10, 20, 0.5)
    assert ViewSpec.parse("fit") is None and ViewSpec.parse(None) is None
    assert parse_size("1600x1000") == (1600, 1000)
    with pytest.raises(ValueError, match='zoom must be > 0'):
        ViewSpec.parse("1,2,-1")
    with pytest.raises(ValueError, match='--size must look like 1600x1000'):
        parse_size("big")
