"""Write one realistic synthetic slide (`world` layout, `bank` textures, `compose` strips) and its ground truth.

Files (next to the procedural renderer's, same names): the pyramidal slide, `<id>_tumour_ds<D>.png` and
`<id>_tissue_ds<D>.png` masks, `<id>_tiles.npz` (per 112 um tile: x, y, tissue share, tumour-outline share and the
share of each class's pattern, exact at 4 px resolution) and the `<id>.json` sidecar.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np

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
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def write_world_slide(path: Path, masks_dir: Path, slide_id: str, spec: WorldSpec, fmt: str = "tiff",
                      cancel: threading.Event | None = None) -> SynthSlide:
    """Render and write one realistic slide (streamed strips), its masks, tile table and sidecar."""
    from .cohort import SynthSlide, _png_bytes, atomic_write_bytes, label_image, macro_image

    t0 = time.perf_counter()
    world = make_world(spec)
    stain = slide_stain(spec.seed)
    bank = SlideBank(world.materials, stain, spec.mpp)
    ds = spec.mask_downsample
    truth = Truth(spec.width, spec.height, ds, tile_px(spec.mpp))
    label = label_image(slide_id, spec.seed)
    macro = None
    if fmt == "svs":
        lay = SimpleNamespace(tissue_mask=world.tissue > 0, tumour_mask=(world.tissue > 0) & (world.tumour > 0))
        macro = macro_image(lay, label)
    write_slide_streamed(path, spec.width, spec.height, iter_world_strips(world, bank, truth, cancel),
                         mpp=spec.mpp, fmt=fmt, label=label if fmt == "svs" else None, macro=macro)
    tum_path = masks_dir / f"{slide_id}_tumour_ds{ds}.png"
    tis_path = masks_dir / f"{slide_id}_tissue_ds{ds}.png"
    tiles_path = masks_dir / f"{slide_id}_tiles.npz"
    atomic_write_bytes(tum_path, _png_bytes(truth.tumour.astype(np.uint8) * 255))
    atomic_write_bytes(tis_path, _png_bytes(truth.tissue.astype(np.uint8) * 255))
    table = truth.tile_table()
    atomic_write_bytes(tiles_path, _npz_bytes(table))
    n_tis = int(truth.tissue.sum())
    frac = float(truth.tumour.sum() / n_tis) if n_tis else 0.0
    sub = SUBTYPES[spec.kind]
    side = {"slide_id": slide_id, "label": sub.name, "kind": spec.kind, "display": sub.display,
            "file": path.name, "width": spec.width, "height": spec.height, "mpp": spec.mpp,
            "mask_downsample": ds, "tumour_mask": tum_path.name, "tissue_mask": tis_path.name,
            "tile_table": tiles_path.name, "tile_px": int(table["tile_px"]),
            "tissue_tiles": int((table["tissue"] >= 0.5).sum()), "tumour_tiles": int((table["tumour"] > 0.5).sum()),
            "tumour_fraction": round(frac, 4), "second_pattern": SUBTYPES[world.second_kind].name
            if world.second_kind else None, "seed": spec.seed, "stain": asdict(stain), "renderer": "world",
            "synthetic": True}
    side_path = masks_dir / f"{slide_id}.json"
    atomic_write_bytes(side_path, json.dumps(side, indent=1).encode())
    return SynthSlide(slide_id, sub.name, spec.kind, path, tum_path, tis_path, side_path, frac,
                      time.perf_counter() - t0)
