"""KEEP loaded natively: our ViT + `transformers.BertModel` + the visual head, strict, no remote code.

A KEEP folder (method.md §7.1) holds `config.json` (`model_type: keep`, `vision_config`, `text_config`,
`projection_dim`), `model.safetensors` or `pytorch_model.bin`, `vocab.txt` and optionally
`tokenizer_config.json`. The remote-code file `modeling_keep.py` is never imported. The same loader opens the
shipped demo model and the tiny test folders (same schema, small widths).

Optional `config.json` fields read by this project (absent in the published KEEP config): `preprocess`
({resize, crop, mean, std, interpolation, resampler}), `tile_size`, `target_mpp`, `max_text_len`.

Preprocessing: without a `preprocess` block (the published KEEP folder) the transform is KEEP's own,
torchvision's Resize(224, bicubic) + CenterCrop(224) on a PIL image, reproduced exactly (`resampler: "pil"`:
Pillow resizes the uint8 tile, with rounding and clamping between its passes). Tiles already at 224 px are not
resized. A folder written by this project (the demo model) carries a `preprocess` block; its resampler defaults to
"torch" (the float antialiased resize it was trained with) unless the block names one.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import BackboneError
from . import _weights as W
from .base import Backbone, Preprocess, PromptLayout, rgb_triple
from .vit import VisionTransformer, ViTConfig

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Buffers that some transformers versions saved and others do not: accepted when present, never required.
OPTIONAL_KEYS = ("text.embeddings.position_ids", "text.embeddings.token_type_ids")
KEEP_MAX_TEXT_LEN = 256
_LS_KEY = re.compile(r"^(visual\.blocks\.\d+\.ls[12])\.weight$")
_LS_GAMMA = re.compile(r"^(visual\.blocks\.\d+\.ls[12])\.gamma$")
# Unicode White_Space (Rust's `str::trim_end`, which the `tokenizers` vocab reader applies to each line)
_UNICODE_WHITE_SPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
                        + "\u2028\u2029\u202f\u205f\u3000")


class KeepBackbone(Backbone):
    """KEEP-format vision-language model (vision ViT + visual head, BERT text tower pooled by the pooler)."""

    def __init__(self, config: dict[str, Any], folder: Path, name: str = "keep") -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        self.name = name
        self.folder = folder
        vis_cfg = _vision_config(config, folder)
        text_cfg = dict(config.get("text_config") or {})
        text_cfg.pop("model_type", None)
        if not text_cfg:
            raise BackboneError(f"{folder}/config.json: missing text_config")
        proj = int(config.get("projection_dim", 768))
        self.visual = VisionTransformer(vis_cfg)
        self.visual_head = nn.Sequential(
            nn.Linear(vis_cfg.hidden_size, proj), nn.GELU(), nn.Linear(proj, proj)
        )
        try:
            bert_cfg = BertConfig(**text_cfg)
        except (TypeError, ValueError) as exc:
            raise BackboneError(f"{folder}/config.json: bad text_config ({exc})") from exc
        if bert_cfg.hidden_size != proj:
            raise BackboneError(f"{folder}/config.json: text hidden_size {bert_cfg.hidden_size} must equal "
                                f"projection_dim {proj} (KEEP has no text projection)")
        self.text = BertModel(bert_cfg, add_pooling_layer=True)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.04)))

        self.embed_dim = proj
        self.ctx_dim = bert_cfg.hidden_size
        self.max_text_len = min(int(config.get("max_text_len", KEEP_MAX_TEXT_LEN)),
                                bert_cfg.max_position_embeddings)
        self.tile_size = int(config.get("tile_size", 224))
        self.target_mpp = float(config.get("target_mpp", 0.5))
        self.preprocess = _preprocess(config, vis_cfg, folder)
        self.prompt_layout = PromptLayout(ctx_start=1, placeholder="X")
        self.tokenizer: Any = None

    # --- image ----------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual_head(self.visual(images)), dim=-1)

    # --- text -----------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        tok = self.tokenizer(list(texts), max_length=max_length or self.max_text_len, padding="max_length",
                             truncation=True, return_tensors="pt")
        return {"input_ids": tok["input_ids"], "attention_mask": tok["attention_mask"]}

    def token_embedding(self) -> nn.Embedding:
        return self.text.get_input_embeddings()

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                           input_ids: torch.Tensor) -> torch.Tensor:
        out = self.text(inputs_embeds=inputs_embeds, attention_mask=attention_mask)
        return F.normalize(out.pooler_output, dim=-1)


def _vision_config(config: dict[str, Any], folder: Path) -> ViTConfig:
    vc = config.get("vision_config")
    if not isinstance(vc, dict):
        raise BackboneError(f"{folder}/config.json: missing vision_config")
    try:
        return ViTConfig.from_dict(vc)
    except ValueError as exc:
        raise BackboneError(f"{folder}/config.json: {exc}") from exc


def _preprocess(config: dict[str, Any], vis: ViTConfig, folder: Path) -> Preprocess:
    pp = dict(config.get("preprocess") or {})
    try:
        return Preprocess(
            resize=int(pp.get("resize", vis.img_size)),
            crop=int(pp.get("crop", vis.img_size)),
            mean=rgb_triple(pp.get("mean", (0.485, 0.456, 0.406))),
            std=rgb_triple(pp.get("std", (0.229, 0.224, 0.225))),
            interpolation=str(pp.get("interpolation", "bicubic")),
            resampler=str(pp.get("resampler", "torch" if "preprocess" in config else "pil")),
        )
    except (TypeError, ValueError) as exc:
        raise BackboneError(f"{folder}/config.json: bad preprocess ({exc})") from exc


def map_keep_keys(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint keys -> our module's keys (`ls*.weight` -> `ls*.gamma`; a 1-element logit_scale -> scalar)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        m = _LS_KEY.match(k)
        out[f"{m.group(1)}.gamma" if m else k] = v
    if "logit_scale" in out and out["logit_scale"].numel() == 1:
        out["logit_scale"] = out["logit_scale"].reshape(())
    return out


def keep_key_speller(file_keys: list[str]) -> Callable[[str], str]:
    """Our key -> the key as this checkpoint spells it, for error messages.

    Keys present in the file keep their own spelling. A missing LayerScale key is named `ls*.weight` (the
    published spelling) unless the file spells LayerScale `ls*.gamma` (timm's).
    """
    origin = {(f"{m.group(1)}.gamma" if (m := _LS_KEY.match(k)) else k): k for k in file_keys}
    gamma_style = any(_LS_GAMMA.match(k) for k in file_keys) and not any(_LS_KEY.match(k) for k in file_keys)

    def spell(key: str) -> str:
        if key in origin:
            return origin[key]
        m = _LS_GAMMA.match(key)
        return f"{m.group(1)}.weight" if m and not gamma_style else key

    return spell


def read_wordpiece_vocab(path: Path) -> dict[str, int]:
    """`vocab.txt` -> {token: id}, the id being the token's line number (0-based), as transformers assigns it.

    Lines are split at "\n" only (a U+2028, U+0085 or lone "\r" inside a line does not start a new line);
    trailing Unicode white space is trimmed, as the `tokenizers` WordPiece file reader (transformers 5) does;
    empty lines and duplicates keep their line (a later duplicate owns the token), so they shift no later id.
    transformers 4's Python reader differs only for tokens ending in white space or holding a lone "\r"; the
    published KEEP vocabulary has neither.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BackboneError(f"{path}: cannot read the vocabulary ({exc})") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline after the last token
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        vocab[line.rstrip(_UNICODE_WHITE_SPACE)] = i
    return vocab


def load_keep_tokenizer(folder: Path) -> Any:
    """BERT WordPiece tokenizer from `vocab.txt` (passed as a dict: `vocab_file=` is ignored by transformers 5)."""
    from transformers import BertTokenizer

    path = folder / "vocab.txt"
    if not path.is_file():
        raise BackboneError(f"{folder}: missing file vocab.txt")
    vocab = read_wordpiece_vocab(path)
    for special in ("[PAD]", "[UNK]", "[CLS]", "[SEP]"):
        if special not in vocab:
            raise BackboneError(f"{path}: vocabulary lacks the special token {special}")
    tcfg = W.read_json(folder, "tokenizer_config.json") if (folder / "tokenizer_config.json").is_file() else {}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=bool(tcfg.get("do_lower_case", True)))
    tokenizer.vocab_rows = max(vocab.values()) + 1  # ids run to the last line, whatever len(tokenizer) says
    return tokenizer


def load_keep(folder: Path, name: str = "keep") -> KeepBackbone:
    """Build a `KeepBackbone` from a KEEP-format folder (strict, offline, no remote code); returns it frozen."""
    folder = W.require_folder(folder, name)
    config = W.read_model_config(folder, "keep")
    weights = W.find_weights_file(folder, WEIGHT_FILES)
    tokenizer = load_keep_tokenizer(folder)
    model = KeepBackbone(config, folder, name=name)
    vocab_rows = model.token_embedding().num_embeddings
    if tokenizer.vocab_rows > vocab_rows:
        raise BackboneError(f"{folder}/vocab.txt: {tokenizer.vocab_rows} lines but text_config.vocab_size is "
                            f"{vocab_rows}")
    raw = W.load_state_dict(weights)
    W.load_strict(model, map_keep_keys(raw), folder, optional=OPTIONAL_KEYS, spell=keep_key_speller(list(raw)))
    model.tokenizer = tokenizer
    model.weights_hash = W.file_hash(weights)
    log.info("loaded %s from %s (%s, hash %s)", name, folder, weights.name, model.weights_hash)
    return model.freeze()
