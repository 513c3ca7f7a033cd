"""Write one realistic synthetic slide (`world` layout, `bank` textures, `compose` strips) and its ground truth.

Files (next to the procedural renderer's, same names): the pyramidal slide, `<id>_tumour_ds<D>.png` and
`<id>_tissue_ds<D>.png` masks, `<id>_tiles.npz` (per 112 um tile: x, y, tissue share, tumour-outline share and the
share of each class's pattern, exact at 4 px resolution) and the `<id>.json` sidecar.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import write_bytes_atomic
from .bank import SlideBank
from .compose import Truth, iter_world_strips, tile_px
from .render import Stain
from .subtypes import SUBTYPES
from .world import WorldSpec, make_world
from .writer import write_slide_streamed

if TYPE_CHECKING:  # cohort imports this module
    from .cohort import SynthSlide

# Glass + mounting medium of the reference H&E tile (RGB 245, 243, 243): OD ~0.016.
_BACKGROUND_OD = (0.008, 0.025)


def slide_stain(seed: int) -> Stain:
    """The slide's stain and scanner variation (drawn from its seed, around the measured H&E vectors)."""
    rng = np.random.default_rng([seed, 7001])
    st = Stain.sample(rng)
    return Stain(st.h_vec, st.e_vec, st.h_scale, st.e_scale, float(rng.uniform(*_BACKGROUND_OD)),
                 st.brightness, 0.0)


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    kwds: dict[str, Any] = arrays  # numpy's stub would match a key against the `allow_pickle: bool` keyword
    np.savez_compressed(buf, **kwds)
    return buf.getvalue()


def write_world_slide(path: Path, masks_dir: Path, slide_id: str, spec: WorldSpec, fmt: str = "tiff",
                      cancel: threading.Event | None = None) -> SynthSlide:
    """Render and write one realistic slide (streamed strips), its masks, tile table and sidecar."""
    from .cohort import label_image, macro_image, write_masks, write_sidecar

    t0 = time.perf_counter()
    world = make_world(spec)
    stain = slide_stain(spec.seed)
    bank = SlideBank(world.materials, stain, spec.mpp)
    ds = spec.mask_downsample
    truth = Truth(spec.width, spec.height, ds, tile_px(spec.mpp))
    label = label_image(slide_id, spec.seed)
    macro = None
    if fmt == "svs":
        tissue = world.tissue > 0
        macro = macro_image(tissue, tissue & (world.tumour > 0), label)
    write_slide_streamed(path, spec.width, spec.height, iter_world_strips(world, bank, truth, cancel),
                         mpp=spec.mpp, fmt=fmt, label=label if fmt == "svs" else None, macro=macro)
    masks = write_masks(masks_dir, slide_id, ds, truth.tissue, truth.tumour)
    tiles_path = masks_dir / f"{slide_id}_tiles.npz"
    table = truth.tile_table()
    write_bytes_atomic(tiles_path, _npz_bytes(table))
    fields = {"tile_table": tiles_path.name, "tile_px": int(table["tile_px"]),
              "tissue_tiles": int((table["tissue"] >= 0.5).sum()), "tumour_tiles": int((table["tumour"] > 0.5).sum()),
              "tumour_fraction": round(masks.tumour_fraction, 4),
              "second_pattern": SUBTYPES[world.second_kind].name if world.second_kind else None,
              "seed": spec.seed, "stain": asdict(stain), "renderer": "world", "synthetic": True}
    return write_sidecar(masks_dir, slide_id, spec, path, masks, fields, t0)
