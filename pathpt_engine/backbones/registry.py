"""The one backbone registry: names, where their weights live, and the builders (heavy imports inside).

Weights are resolved as: explicit folder > environment variable (e.g. `PATHPT_KEEP_WEIGHTS`) > the default
folder relative to the working directory (`./base_models/keep`, as in the reference README). The `demo` model
ships inside the package (`resources/models/demo`) and needs no download.
"""

from __future__ import annotations

import importlib.resources
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError
from .base import Backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    Attributes:
        name: registry name used on the command line and in feature files.
        adapter: which loader builds it ("keep", "clip", "conch", "musk" or "quiltnet").
        description: one line for listings.
        default_folder: default weights folder (relative to the working directory), or "" for packaged weights.
        env_var: environment variable that overrides the default folder.
        licence: licence / terms of the weights, in one line.
        download: how to obtain the weights, in one line.
        demo: True for the shipped demo model (synthetic slides only).
    """

    name: str
    adapter: str
    description: str
    default_folder: str
    env_var: str
    licence: str
    download: str
    demo: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.adapter not in ("keep", "clip", "conch", "musk", "quiltnet"):
            raise ValueError(f"BackboneSpec: bad name/adapter {self.name!r}/{self.adapter!r}")


_SPECS: tuple[BackboneSpec, ...] = (
    BackboneSpec(
        name="keep", adapter="keep",
        description="KEEP (ViT-L/16 + BERT, 768-d), the PathPT paper's main backbone; loaded natively",
        default_folder="base_models/keep", env_var="PATHPT_KEEP_WEIGHTS",
        licence="see the model card at huggingface.co/Astaxanthin/KEEP (research use)",
        download="huggingface-cli download Astaxanthin/KEEP --local-dir base_models/keep",
    ),
    BackboneSpec(
        name="plip", adapter="clip",
        description="PLIP (CLIP ViT-B/32 fine-tuned on pathology, 512-d), HF CLIPModel folder",
        default_folder="base_models/plip", env_var="PATHPT_PLIP_WEIGHTS",
        licence="no licence declared on huggingface.co/vinid/plip; research use only",
        download="huggingface-cli download vinid/plip --local-dir base_models/plip",
    ),
    BackboneSpec(
        name="clip", adapter="clip",
        description="any HF CLIPModel folder (QuiltNet-B-32 HF export, OpenAI CLIP, ...), 512-d typically",
        default_folder="base_models/clip", env_var="PATHPT_CLIP_WEIGHTS",
        licence="that of the checkpoint (OpenAI CLIP: MIT; QuiltNet-B-32: MIT)",
        download="e.g. huggingface-cli download openai/clip-vit-base-patch32 --local-dir base_models/clip",
    ),
    BackboneSpec(
        name="conch", adapter="conch",
        description="CONCH (CoCa ViT-B/16 at 448 px, 512-d), loaded natively; tokenizer JSON from mahmoodlab/CONCH",
        default_folder="base_models/conch", env_var="PATHPT_CONCH_WEIGHTS",
        licence="CC-BY-NC-ND 4.0, gated (non-commercial; never redistribute weights or tokenizer)",
        download="request access at huggingface.co/MahmoodLab/conch, download pytorch_model.bin to base_models/conch "
                 "and copy conch_byte_level_bpe_uncased.json from github.com/mahmoodlab/CONCH next to it",
    ),
    BackboneSpec(
        name="musk", adapter="musk",
        description="MUSK (BEiT-3 large multiway at 384 px, 1024-d), loaded natively; pretrained on TCGA, so not for "
                    "TCGA benchmarks",
        default_folder="base_models/musk", env_var="PATHPT_MUSK_WEIGHTS",
        licence="CC-BY-NC-ND 4.0, gated (academic non-commercial; never redistribute weights)",
        download="accept the terms at huggingface.co/xiangjx/musk, download model.safetensors to base_models/musk "
                 "and copy musk/models/tokenizer.spm from github.com/lilab-stanford/MUSK next to it",
    ),
    BackboneSpec(
        name="quiltnet", adapter="quiltnet",
        description="QuiltNet-B-32 (CLIP ViT-B/32 fine-tuned on Quilt-1M, 512-d), open_clip checkpoint converted to "
                    "the HF CLIP implementation",
        default_folder="base_models/quiltnet", env_var="PATHPT_QUILTNET_WEIGHTS",
        licence="MIT (huggingface.co/wisdomik/QuiltNet-B-32; research output)",
        download="huggingface-cli download wisdomik/QuiltNet-B-32 --local-dir base_models/quiltnet",
    ),
    BackboneSpec(
        name="demo", adapter="keep",
        description="DEMO model trained by this project on synthetic tiles (KEEP format); synthetic slides only, "
                    "never for diagnosis",
        default_folder="", env_var="PATHPT_DEMO_WEIGHTS",
        licence="MIT (this project)", download="shipped with PathPT Studio (resources/models/demo)", demo=True,
    ),
)


def available_backbones() -> list[BackboneSpec]:
    """All registry entries, in listing order."""
    return list(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The entry called `name`; unknown names raise `BackboneError` listing the known ones."""
    for spec in _SPECS:
        if spec.name == name:
            return spec
    known = ", ".join(s.name for s in _SPECS)
    raise BackboneError(f"unknown backbone {name!r}; known backbones: {known}")


def demo_folder() -> Path:
    """The packaged demo model folder (works from a source checkout and from an installed wheel)."""
    return Path(str(importlib.resources.files("resources") / "models" / "demo"))


def resolve_weights(name: str, weights: str | Path | None = None) -> Path:
    """Weights folder for `name`: `weights` if given, else `$<ENV_VAR>`, else the default folder."""
    spec = get_spec(name)
    if weights:
        return Path(weights).expanduser()
    env = os.environ.get(spec.env_var, "").strip()
    if env:
        return Path(env).expanduser()
    if spec.demo:
        return demo_folder()
    return Path(spec.default_folder)


def _build_keep(folder: Path, name: str) -> Backbone:
    from .keep import load_keep

    return load_keep(folder, name=name)


def _build_clip(folder: Path, name: str) -> Backbone:
    from .clip import load_clip

    return load_clip(folder, name=name)


def _build_conch(folder: Path, name: str) -> Backbone:
    from .conch import load_conch

    return load_conch(folder, name=name)


def _build_musk(folder: Path, name: str) -> Backbone:
    from .musk import load_musk

    return load_musk(folder, name=name)


def _build_quiltnet(folder: Path, name: str) -> Backbone:
    from .quiltnet import load_quiltnet

    return load_quiltnet(folder, name=name)


_BUILDERS: dict[str, Callable[[Path, str], Backbone]] = {
    "keep": _build_keep, "clip": _build_clip, "conch": _build_conch, "musk": _build_musk,
    "quiltnet": _build_quiltnet,
}


def load_backbone(name: str, weights: str | Path | None = None, device: str = "cpu") -> Backbone:
    """Build the frozen backbone `name` from its weights folder and move it to `device` ("auto": CUDA if any).

    Raises:
        BackboneError: unknown name, missing folder/file, wrong format, key or shape mismatch.
    """
    spec = get_spec(name)
    folder = resolve_weights(name, weights)
    if not folder.is_dir():
        raise BackboneError(f"{name} weights folder not found: {folder} (get it with: {spec.download}; "
                            f"or pass --weights DIR / set {spec.env_var})")
    model = _BUILDERS[spec.adapter](folder, name)
    if device == "auto":
        from .encode import resolve_device

        device = str(resolve_device("auto"))
    return model.to(device)
