"""HF `CLIPModel` folders (PLIP, QuiltNet-B-32 HF export, OpenAI CLIP) behind the `Backbone` contract.

The model is built from the folder's `config.json` and its weights are loaded strictly by our own loader
(safetensors, or `.bin` through `torch.load(weights_only=True)`), which is what `CLIPModel.from_pretrained` does
minus its leniency about missing keys. No remote code, no network. Preprocessing comes from
`preprocessor_config.json` and is done natively. The text forward from `inputs_embeds` composes the text model's
parts without patching transformers (backbones.md §1.3): embeddings (adds position rows) -> encoder with our own
causal + padding mask -> final LayerNorm -> EOT row -> text_projection -> L2.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import BackboneError
from . import _weights as W
from .base import Backbone, Preprocess, PromptLayout, rgb_triple

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
OPTIONAL_KEYS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


class ClipBackbone(Backbone):
    """A HF `CLIPModel` with the projection heads; image and text embeddings are L2-normalised."""

    def __init__(self, model: Any, tokenizer: Any, preprocess: Preprocess, name: str) -> None:
        super().__init__()
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        tc = model.config.text_config
        self.embed_dim = int(model.config.projection_dim)
        self.ctx_dim = int(tc.hidden_size)
        self.max_text_len = int(tc.max_position_embeddings)
        self.eos_token_id = int(tc.eos_token_id)
        self.preprocess = preprocess
        self.tile_size = 224
        self.target_mpp = 0.5
        self.prompt_layout = PromptLayout(ctx_start=1, placeholder="X")

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.model.vision_model(pixel_values=images).pooler_output
        return F.normalize(self.model.visual_projection(pooled), dim=-1)

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        tok = self.tokenizer(list(texts), max_length=max_length or self.max_text_len, padding="max_length",
                             truncation=True, return_tensors="pt")
        return {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}

    def token_embedding(self) -> nn.Embedding:
        return self.model.text_model.embeddings.token_embedding

    def eot_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Pooling position per row, as the HF text model picks it (legacy eos id 2: argmax of the ids)."""
        ids = input_ids.to(torch.int)
        if self.eos_token_id == 2:
            return ids.argmax(dim=-1)
        return (ids == self.eos_token_id).int().argmax(dim=-1)

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                           input_ids: torch.Tensor) -> torch.Tensor:
        tm = self.model.text_model
        h = tm.embeddings(inputs_embeds=inputs_embeds)
        mask = causal_padding_mask(attention_mask.to(h.device), h.dtype)
        h = tm.encoder(inputs_embeds=h, attention_mask=mask).last_hidden_state
        h = tm.final_layer_norm(h)
        pos = self.eot_positions(input_ids).to(h.device)
        pooled = h[torch.arange(h.shape[0], device=h.device), pos]
        return F.normalize(self.model.text_projection(pooled), dim=-1)


def causal_padding_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask [B, 1, L, L]: blocked above the diagonal and on padded key columns (finfo.min, not -inf)."""
    b, n = attention_mask.shape
    lo = torch.finfo(dtype).min
    causal = torch.ones(n, n, dtype=torch.bool, device=attention_mask.device).triu(1)
    blocked = causal[None] | (attention_mask[:, None, :] == 0)
    blocked = blocked & ~torch.eye(n, dtype=torch.bool, device=attention_mask.device)[None]  # never a full row
    mask = torch.zeros(b, n, n, dtype=dtype, device=attention_mask.device).masked_fill(blocked, lo)
    return mask[:, None]


def read_preprocess(folder: Path) -> Preprocess:
    """Preprocessing from `preprocessor_config.json` (CLIP defaults when a field is absent)."""
    cfg = W.read_json(folder, "preprocessor_config.json")
    size, crop = cfg.get("size", 224), cfg.get("crop_size", 224)
    if isinstance(size, dict):
        size = size.get("shortest_edge", size.get("height", 224))
    if isinstance(crop, dict):
        crop = crop.get("height", crop.get("shortest_edge", 224))
    try:
        return Preprocess(
            resize=int(size), crop=int(crop),
            mean=rgb_triple(cfg.get("image_mean", CLIP_MEAN)),
            std=rgb_triple(cfg.get("image_std", CLIP_STD)),
            interpolation=_RESAMPLE.get(int(cfg.get("resample", 3)), "bicubic"),
        )
    except (TypeError, ValueError) as exc:
        raise BackboneError(f"{folder}/preprocessor_config.json: {exc}") from exc


def load_clip_tokenizer(folder: Path) -> Any:
    """The folder's CLIP BPE tokenizer via `from_pretrained` (never from file arguments: transformers-5 trap)."""
    from transformers import CLIPTokenizer

    has_fast = (folder / "tokenizer.json").is_file()
    if not has_fast and not ((folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()):
        raise BackboneError(f"{folder}: missing tokenizer files (tokenizer.json, or vocab.json + merges.txt)")
    try:
        tok = CLIPTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise BackboneError(f"{folder}: cannot load the CLIP tokenizer ({exc})") from exc
    if len(tok) < 10:
        raise BackboneError(f"{folder}: the CLIP tokenizer has only {len(tok)} tokens (broken tokenizer files)")
    return tok


def load_clip(folder: Path, name: str = "clip") -> ClipBackbone:
    """Build a frozen `ClipBackbone` from a HF CLIPModel folder (strict keys, offline)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTextConfig

    folder = W.require_folder(folder, name)
    W.read_model_config(folder, "clip")  # checks model_type; CLIPConfig reads the file below
    weights = W.find_weights_file(folder, WEIGHT_FILES)
    preprocess = read_preprocess(folder)
    tokenizer = load_clip_tokenizer(folder)
    try:
        cfg = CLIPConfig.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError, TypeError) as exc:
        raise BackboneError(f"{folder}/config.json: not a valid CLIP config ({exc})") from exc
    if not isinstance(cfg.text_config, CLIPTextConfig):  # CLIPConfig always builds one; its type says dict | None too
        raise BackboneError(f"{folder}/config.json: no CLIP text_config")
    model = CLIPModel(cfg)
    if len(tokenizer) > cfg.text_config.vocab_size:
        raise BackboneError(f"{folder}: tokenizer has {len(tokenizer)} tokens but text_config.vocab_size is "
                            f"{cfg.text_config.vocab_size}")
    W.load_strict(model, W.load_state_dict(weights), folder, optional=OPTIONAL_KEYS)
    backbone = ClipBackbone(model, tokenizer, preprocess, name)
    backbone.weights_hash = W.file_hash(weights)
    log.info("loaded %s from %s (%s, hash %s)", name, folder, weights.name, backbone.weights_hash)
    return backbone.freeze()
