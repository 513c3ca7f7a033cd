"""The slide reader protocol: what the engine and the GUI viewer may call on an open slide.

Units: every location is level-0 pixels (x, y); sizes are (width, height) at the stated level; arrays are RGB
uint8 of shape (height, width, 3). Implementations are context managers and safe to share across reader threads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class SlideReader(Protocol):
    path: Path

    @property
    def format(self) -> str:
        """Vendor/format name, e.g. "aperio", "generic-tiff"."""

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height)."""

    @property
    def level_count(self) -> int: ...

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]: ...

    @property
    def level_downsamples(self) -> tuple[float, ...]: ...

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Level-0 microns per pixel (x, y), or None when the file does not say or states an implausible value
        (outside 0.05-20 µm/px; `reported_mpp`, where a reader has it, keeps the file's value)."""

    @property
    def objective_power(self) -> float | None: ...

    @property
    def properties(self) -> dict[str, str]: ...

    @property
    def associated_image_names(self) -> tuple[str, ...]: ...

    def associated_image(self, name: str) -> np.ndarray: ...

    def best_level_for_downsample(self, downsample: float) -> int: ...

    def read_region(self, location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        """RGB uint8 (h, w, 3) of `size` at `level`, top-left `location` in level-0 pixels.

        Transparent/outside pixels are white. Raises SlideError on decode failure (and recovers its handle).
        """

    def native_tile_size(self, level: int) -> tuple[int, int] | None:
        """The file's own tile size at `level` when the fast path can serve it, else None."""

    def read_native_tile(self, level: int, col: int, row: int) -> np.ndarray:
        """One native tile (cropped at the level's right/bottom edge), decoded directly when possible."""

    def thumbnail(self, max_size: int) -> np.ndarray:
        """RGB uint8 thumbnail whose longer side is at most `max_size`."""

    @property
    def quickhash(self) -> str:
        """A stable identity of the slide's content (OpenSlide quickhash-1 where available)."""

    def close(self) -> None: ...

    def __enter__(self) -> SlideReader: ...

    def __exit__(self, *exc: object) -> None: ...
