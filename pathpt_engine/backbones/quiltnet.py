"""QuiltNet-B-32 (wisdomik/QuiltNet-B-32, MIT): the open_clip checkpoint converted to the HF CLIP implementation.

Folder layout (the Hugging Face repository, backbones.md §2): `open_clip_config.json`, `open_clip_pytorch_model.bin`
(the training output, preferred), the CLIP BPE tokenizer files (`vocab.json` + `merges.txt` and/or
`tokenizer.json`, `tokenizer_config.json`). A folder that holds only an HF export (`config.json` + HF weights) is
opened by the `clip` adapter unchanged.

The open_clip keys are mapped onto `transformers.CLIPModel` (packed q,k,v split in three, `text_projection` and
`visual.proj` transposed, ...) and loaded strictly; the model then runs through `ClipBackbone`, the same code as
PLIP (one implementation, backbones.md §2).

Activation: `open_clip_config.json` of QuiltNet-B-32 has no `quick_gelu` flag, so open_clip, which is how the
authors publish and evaluate it (`create_model_and_transforms("hf-hub:wisdomik/QuiltNet-B-32")`), builds exact
GELU; we do the same by default: the activation is what the folder's config says (`model_cfg.quick_gelu` true ->
QuickGELU, else GELU). OpenAI's ViT-B/32, the starting point of the fine-tune, used QuickGELU, so
`load_quiltnet(folder, activation="quick_gelu")` is available to compare both on labelled tiles (open point §5.2).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import BackboneError
from . import _weights as W
from .base import Preprocess, rgb_triple
from .clip import CLIP_MEAN, CLIP_STD, ClipBackbone, load_clip, load_clip_tokenizer
from .clip import OPTIONAL_KEYS as CLIP_OPTIONAL_KEYS

log = logging.getLogger(__name__)

OPENCLIP_CONFIG = "open_clip_config.json"
OPENCLIP_WEIGHTS = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors")
ACTIVATIONS = ("gelu", "quick_gelu")
_VISION_KEYS = {"image_size", "layers", "width", "patch_size", "head_width", "mlp_ratio"}
_TEXT_KEYS = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio"}
_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.(.+)$")
_BLOCK_PARTS = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
                "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
_DIRECT = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight", "ln_final.bias": "text_model.final_layer_norm.bias",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight", "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "logit_scale": "logit_scale",
}
_TRANSPOSED = {"text_projection": "text_projection.weight", "visual.proj": "visual_projection.weight"}
_DROP = ("attn_mask", "visual.attn_mask")


def _section(cfg: dict[str, Any], key: str, allowed: set[str], path: Path) -> dict[str, Any]:
    sec = cfg.get(key)
    if not isinstance(sec, dict):
        raise BackboneError(f"{path}: missing model_cfg.{key}")
    extra = sorted(set(sec) - allowed)
    if extra:
        raise BackboneError(f"{path}: model_cfg.{key}.{extra[0]} is not supported (a plain CLIP ViT is expected)")
    return sec


def clip_config_from_openclip(cfg: dict[str, Any], path: Path, activation: str | None = None,
                              bos_id: int = 49406, eos_id: int = 49407) -> Any:
    """`transformers.CLIPConfig` equivalent to an open_clip ViT CLIP config (`{"model_cfg": ..., ...}`).

    `bos_id`/`eos_id` are the tokenizer's `<|startoftext|>`/`<|endoftext|>` (the text is pooled at the first
    EOT, which is open_clip's argmax rule for CLIP vocabularies, where EOT is the largest id)."""
    from transformers import CLIPConfig

    model_cfg = cfg.get("model_cfg", cfg)
    if not isinstance(model_cfg, dict):
        raise BackboneError(f"{path}: model_cfg must be an object")
    vis = _section(model_cfg, "vision_cfg", _VISION_KEYS, path)
    txt = _section(model_cfg, "text_cfg", _TEXT_KEYS, path)
    act = activation or ("quick_gelu" if model_cfg.get("quick_gelu", False) else "gelu")
    if act not in ACTIVATIONS:
        raise BackboneError(f"{path}: activation {act!r} not in {ACTIVATIONS}")
    try:
        v_width, t_width = int(vis["width"]), int(txt["width"])
        vision = dict(hidden_size=v_width, intermediate_size=int(v_width * float(vis.get("mlp_ratio", 4.0))),
                      num_hidden_layers=int(vis["layers"]), num_attention_heads=v_width // int(vis.get("head_width", 64)),
                      image_size=int(vis["image_size"]), patch_size=int(vis["patch_size"]), hidden_act=act,
                      layer_norm_eps=1e-5)
        text = dict(hidden_size=t_width, intermediate_size=int(t_width * float(txt.get("mlp_ratio", 4.0))),
                    num_hidden_layers=int(txt["layers"]), num_attention_heads=int(txt["heads"]),
                    max_position_embeddings=int(txt["context_length"]), vocab_size=int(txt["vocab_size"]),
                    hidden_act=act, layer_norm_eps=1e-5, bos_token_id=bos_id, eos_token_id=eos_id,
                    pad_token_id=eos_id)
        return CLIPConfig(text_config=text, vision_config=vision, projection_dim=int(model_cfg["embed_dim"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BackboneError(f"{path}: bad open_clip model config ({type(exc).__name__}: {exc})") from exc


def openclip_to_hf(sd: dict[str, torch.Tensor], folder: Path) -> dict[str, torch.Tensor]:
    """Map open_clip CLIP keys to `transformers.CLIPModel` keys (unknown keys are errors)."""
    out: dict[str, torch.Tensor] = {}
    for key, val in sd.items():
        if key in _DROP:
            continue
        if key in _DIRECT:
            out[_DIRECT[key]] = val
        elif key in _TRANSPOSED:
            out[_TRANSPOSED[key]] = val.t().contiguous()
        elif m := _BLOCK.match(key):
            tower = "vision_model" if m.group(1) else "text_model"
            prefix, rest = f"{tower}.encoder.layers.{m.group(2)}.", m.group(3)
            if rest.startswith("attn.in_proj_"):
                kind = rest.rsplit("_", 1)[1]  # weight / bias
                for name, part in zip(("q_proj", "k_proj", "v_proj"), val.chunk(3, dim=0), strict=True):
                    out[f"{prefix}self_attn.{name}.{kind}"] = part.contiguous()
                continue
            base, _, leaf = rest.rpartition(".")
            if base not in _BLOCK_PARTS:
                raise BackboneError(f"{folder}: unexpected open_clip key {key!r}")
            out[f"{prefix}{_BLOCK_PARTS[base]}.{leaf}"] = val
        else:
            raise BackboneError(f"{folder}: unexpected open_clip key {key!r}")
    return out


def _preprocess(cfg: dict[str, Any], image_size: int, path: Path) -> Preprocess:
    pp = cfg.get("preprocess_cfg") or {}
    try:
        return Preprocess(resize=image_size, crop=image_size, mean=rgb_triple(pp.get("mean", CLIP_MEAN)),
                          std=rgb_triple(pp.get("std", CLIP_STD)), interpolation="bicubic")
    except (TypeError, ValueError) as exc:
        raise BackboneError(f"{path}: bad preprocess_cfg ({exc})") from exc


def load_quiltnet(folder: str | Path, name: str = "quiltnet", activation: str | None = None) -> ClipBackbone:
    """Build QuiltNet-B-32 from its open_clip folder (or an HF export through the `clip` adapter), frozen."""
    from transformers import CLIPModel

    folder = W.require_folder(Path(folder), "QuiltNet")
    if not (folder / OPENCLIP_CONFIG).is_file() and (folder / "config.json").is_file():
        if activation:
            raise BackboneError(f"{folder}: an HF export takes its activation from config.json; "
                                f"the activation override needs the open_clip files")
        return load_clip(folder, name=name)
    cfg = W.read_json(folder, OPENCLIP_CONFIG)
    tokenizer = load_clip_tokenizer(folder)
    bos, eos = tokenizer.convert_tokens_to_ids("<|startoftext|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")
    clip_cfg = clip_config_from_openclip(cfg, folder / OPENCLIP_CONFIG, activation, bos_id=bos, eos_id=eos)
    if len(tokenizer) > clip_cfg.text_config.vocab_size:
        raise BackboneError(f"{folder}: tokenizer has {len(tokenizer)} tokens but vocab_size is "
                            f"{clip_cfg.text_config.vocab_size}")
    path = W.find_weights_file(folder, OPENCLIP_WEIGHTS)
    sd = openclip_to_hf(W.load_state_dict(path), folder)
    if "logit_scale" in sd and sd["logit_scale"].numel() == 1:
        sd["logit_scale"] = sd["logit_scale"].reshape(())
    model = CLIPModel(clip_cfg)
    W.load_strict(model, sd, folder, optional=CLIP_OPTIONAL_KEYS)
    backbone = ClipBackbone(model, tokenizer, _preprocess(cfg, clip_cfg.vision_config.image_size, folder), name)
    backbone.weights_hash = W.file_hash(path)
    log.info("loaded %s from %s (%s, activation %s)", name, folder, path.name, clip_cfg.text_config.hidden_act)
    return backbone.freeze()
