"""The one backbone registry: names, where their weights live, and the builders (heavy imports inside).

Weights are looked up, first match wins (`resolve_weights`), all offline:

1. the explicit folder (`--weights DIR`), or `hf:OWNER/NAME[@REVISION]` read from the local Hugging Face cache;
2. the environment variable (e.g. `PATHPT_KEEP_WEIGHTS`; a folder or an `hf:` reference);
3. the per-user weights folder `<user data folder>/weights/<name>` (`locate.user_data_dir`), where
   `pathpt weights get NAME` puts them with `--to-user-dir`;
4. the model's repository in the local Hugging Face cache (`HF_HOME`/`HF_HUB_CACHE` honoured), e.g.
   `Astaxanthin/KEEP` for keep;
5. `./base_models/<name>` relative to the working directory (the reference README's layout), only if it exists.

When none exists the per-user folder is reported. The `demo` model ships inside the package
(`resources/models/demo`, installed as `pathpt_engine/resources/models/demo`) and needs no download. Nothing is ever downloaded here (see `download.py`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import BackboneError
from . import locate
from .base import Backbone

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    Attributes:
        name: registry name used on the command line and in feature files.
        adapter: which loader builds it ("keep", "clip", "conch", "musk" or "quiltnet").
        description: one line for listings.
        default_folder: the reference README's folder (relative to the working directory; looked at last), or ""
            for packaged weights.
        env_var: environment variable that overrides the default folder.
        licence: licence / terms of the weights, in one line.
        download: how to obtain the weights, in one line.
        demo: True for the shipped demo model (synthetic slides only).
        hf_repo: its Hugging Face repository (looked up in the local cache; `pathpt weights get` downloads it).
        gated: the repository needs an accepted licence and a Hugging Face log-in to download.
    """

    name: str
    adapter: str
    description: str
    default_folder: str
    env_var: str
    licence: str
    download: str
    demo: bool = False
    hf_repo: str = ""
    gated: bool = False

    def __post_init__(self) -> None:
        if not self.name or self.adapter not in ("keep", "clip", "conch", "musk", "quiltnet"):
            raise ValueError(f"BackboneSpec: bad name/adapter {self.name!r}/{self.adapter!r}")


def _entry(name: str, adapter: str, description: str, licence: str, *, hf_repo: str = "", download: str = "",
           gated: bool = False) -> BackboneSpec:
    """An entry that follows the naming rule: weights in `base_models/<name>`, overridden by
    `PATHPT_<NAME>_WEIGHTS`; without a `download` line, `huggingface-cli download` of `hf_repo` into that folder."""
    folder = f"base_models/{name}"
    return BackboneSpec(
        name=name, adapter=adapter, description=description, default_folder=folder,
        env_var=f"PATHPT_{name.upper()}_WEIGHTS", licence=licence,
        download=download or f"huggingface-cli download {hf_repo} --local-dir {folder}", hf_repo=hf_repo, gated=gated,
    )


_SPECS: tuple[BackboneSpec, ...] = (
    _entry(
        "keep", "keep", "KEEP (ViT-L/16 + BERT, 768-d), the PathPT paper's main backbone; loaded natively",
        "see the model card at huggingface.co/Astaxanthin/KEEP (research use)", hf_repo="Astaxanthin/KEEP",
    ),
    _entry(
        "plip", "clip", "PLIP (CLIP ViT-B/32 fine-tuned on pathology, 512-d), HF CLIPModel folder",
        "no licence declared on huggingface.co/vinid/plip; research use only", hf_repo="vinid/plip",
    ),
    _entry(
        "clip", "clip", "any HF CLIPModel folder (QuiltNet-B-32 HF export, OpenAI CLIP, ...), 512-d typically",
        "that of the checkpoint (OpenAI CLIP: MIT; QuiltNet-B-32: MIT)",
        download="e.g. huggingface-cli download openai/clip-vit-base-patch32 --local-dir base_models/clip",
    ),
    _entry(
        "conch", "conch",
        "CONCH (CoCa ViT-B/16 at 448 px, 512-d), loaded natively; tokenizer JSON from mahmoodlab/CONCH",
        "CC-BY-NC-ND 4.0, gated (non-commercial; never redistribute weights or tokenizer)",
        hf_repo="MahmoodLab/conch", gated=True,
        download="request access at huggingface.co/MahmoodLab/conch, download pytorch_model.bin to base_models/conch "
                 "and copy conch_byte_level_bpe_uncased.json from github.com/mahmoodlab/CONCH next to it",
    ),
    _entry(
        "musk", "musk",
        "MUSK (BEiT-3 large multiway at 384 px, 1024-d), loaded natively; pretrained on TCGA, so not for TCGA "
        "benchmarks",
        "CC-BY-NC-ND 4.0, gated (academic non-commercial; never redistribute weights)",
        hf_repo="xiangjx/musk", gated=True,
        download="accept the terms at huggingface.co/xiangjx/musk, download model.safetensors to base_models/musk "
                 "and copy musk/models/tokenizer.spm from github.com/lilab-stanford/MUSK next to it",
    ),
    _entry(
        "quiltnet", "quiltnet",
        "QuiltNet-B-32 (CLIP ViT-B/32 fine-tuned on Quilt-1M, 512-d), open_clip checkpoint converted to the HF CLIP "
        "implementation",
        "MIT (huggingface.co/wisdomik/QuiltNet-B-32; research output)", hf_repo="wisdomik/QuiltNet-B-32",
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
    from ..assets import resource_root

    return resource_root() / "models" / "demo"


def resolve_weights(name: str, weights: str | Path | None = None) -> Path:
    """Weights folder for `name`, in the order of the module docstring (offline; nothing is downloaded).

    Raises:
        BackboneError: unknown name, or an `hf:` reference that is not in the local cache.
    """
    spec = get_spec(name)
    given = str(weights) if weights else os.environ.get(spec.env_var, "").strip()
    if given:
        return locate.resolve_hf(given) if locate.parse_hf(given) else Path(given).expanduser()
    if spec.demo:
        return demo_folder()
    for folder in weight_candidates(spec):
        if folder.is_dir():
            return folder
    return locate.user_weights_dir(spec.name)


def weight_candidates(spec: BackboneSpec) -> list[Path]:
    """Where `spec`'s weights are looked for when no folder is given: user folder, HF cache, ./base_models."""
    out = [locate.user_weights_dir(spec.name)]
    if spec.hf_repo and (snap := locate.hf_snapshot(spec.hf_repo)) is not None:
        out.append(snap)
    if spec.default_folder:
        out.append(Path(spec.default_folder))
    return out


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
        hf = f", the Hugging Face cache ({spec.hf_repo} in {locate.hf_cache_dir()})" if spec.hf_repo else ""
        raise BackboneError(f"{name} weights folder not found: {folder} (looked in {locate.user_weights_dir(name)}"
                            f"{hf} and ./{spec.default_folder}; get it with `pathpt weights get {name}` or: "
                            f"{spec.download}; or pass --weights DIR / set {spec.env_var})")
    model = _BUILDERS[spec.adapter](folder, name)
    if device == "auto":
        from .encode import resolve_device

        device = str(resolve_device("auto"))
    return model.to(device)
