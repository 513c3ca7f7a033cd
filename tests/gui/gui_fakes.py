"""Test doubles for the viewer tests: an in-memory slide reader that counts calls, gates reads and fails tiles."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from pathpt_engine.errors import SlideError
from pathpt_engine.synth.writer import build_pyramid


def flush_events() -> None:
    """Run every event already posted (queued calls, resizes, layout and paint requests): no timing involved."""
    from PySide6.QtCore import QCoreApplication

    QCoreApplication.sendPostedEvents()
    QCoreApplication.processEvents()


def gradient_image(w: int, h: int) -> np.ndarray:
    """A smooth, position-coded RGB image: red grows with x, green with y, blue constant."""
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
    return np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)), np.full((h, w), 90.0)],
                    -1).astype(np.uint8)


class FakeReader:
    """SlideReader over an in-memory pyramid, safe across threads, with call logs for assertions."""

    def __init__(self, w: int = 4096, h: int = 3072, tile: int | None = 256, mpp: float | None = 0.25,
                 bad: set[tuple[int, int, int]] | None = None) -> None:
        self.path = Path("/fake/slide.tif")
        self.pyramid = build_pyramid(gradient_image(w, h), min_size=300)
        self.tile = tile
        self._mpp = mpp
        self.bad = bad or set()
        self.gate = threading.Event()
        self.gate.set()
        self.lock = threading.Lock()
        self.tile_calls: list[tuple[int, int, int]] = []
        self.region_calls: list[tuple[tuple[int, int], int, tuple[int, int]]] = []
        self.closed = False

    format = "fake"

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    @property
    def level_count(self) -> int:
        return len(self.pyramid)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple((a.shape[1], a.shape[0]) for a in self.pyramid)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        return tuple(self.pyramid[0].shape[1] / a.shape[1] for a in self.pyramid)

    @property
    def mpp(self) -> tuple[float, float] | None:
        return None if self._mpp is None else (self._mpp, self._mpp)

    objective_power = None
    properties = {"openslide.vendor": "fake"}
    associated_image_names: tuple[str, ...] = ()
    quickhash = "fake"

    def associated_image(self, name: str) -> np.ndarray:
        raise SlideError(f"{self.path}: no associated image {name!r}")

    def best_level_for_downsample(self, downsample: float) -> int:
        return max(i for i, d in enumerate(self.level_downsamples) if d <= max(downsample, 1.0))

    @property
    def all_calls(self) -> int:
        return len(self.tile_calls) + len(self.region_calls)

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        with self.lock:
            self.region_calls.append((location, level, size))
        self.gate.wait(10)
        ds = self.level_downsamples[level]
        x, y = round(location[0] / ds), round(location[1] / ds)
        out = np.full((size[1], size[0], 3), 255, np.uint8)
        src = self.pyramid[level][y:y + size[1], x:x + size[0]]
        out[:src.shape[0], :src.shape[1]] = src
        return out

    def native_tile_size(self, level: int) -> tuple[int, int] | None:
        return None if self.tile is None else (self.tile, self.tile)

    def read_native_tile(self, level: int, col: int, row: int) -> np.ndarray:
        with self.lock:
            self.tile_calls.append((level, col, row))
        self.gate.wait(10)
        if (level, col, row) in self.bad:
            raise SlideError(f"{self.path}: corrupt JPEG tile at level {level} ({col}, {row})")
        t = self.tile
        return self.pyramid[level][row * t:(row + 1) * t, col * t:(col + 1) * t].copy()

    def thumbnail(self, max_size: int) -> np.ndarray:
        return self.pyramid[-1].copy()

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
