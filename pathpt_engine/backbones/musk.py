"""MUSK (xiangjx/musk: BEiT-3 large, multiway) implemented natively; weights from the user's folder.

Folder layout (the gated Hugging Face download, backbones.md §4):
- `model.safetensors` (or `pytorch_model.bin`): a flat state dict (`beit3.*`, `language_head`, `vision_head`,
  `logit_scale`); a top-level `model`/`module` entry is unwrapped.
- `tokenizer.spm`: the XLM-R style SentencePiece model (read without `sentencepiece`, see `musk_tokenizer`).
- optional `musk_config.json`: overrides of `MuskConfig` fields (tiny test folders; the real folder has none).

Every sub-layer has two experts: A (vision) and B (language). A block is pre-LN with sub-LN: h = LN(x); q,k,v;
softmax(q k^T / sqrt(d)) in fp32 with padded keys masked; `inner_attn_ln`; `out_proj`; residual; LN; fc1; GELU
(fp32); `ffn_layernorm`; fc2; residual. Positions are fairseq-style: rows 2.. of `embed_positions.A` (vision)
or `.B` (text). No embedding scale, no embedding LayerNorm, no relative position bias.

Text: token rows + positions, padded rows zeroed, 24 B-expert blocks, `layer_norm.B`, row 0 -> `language_head`
-> L2 (1024-d). Image (384 px, mean = std = 0.5): conv 16/16, cls, positions, 24 A-expert blocks,
`layer_norm.A`, cls -> `vision_head` -> L2 (`with_head=True, out_norm=True, ms_aug=False`).

Prompt learner notes (method.md §3.5): context after `<s>` (`PromptLayout(1, "X")`, "X" = one piece), `ctx_dim`
1024, `max_text_len` 100 (MUSK's `xlm_tokenizer(max_len=100)`: at most 98 pieces between `<s>` and `</s>`, pad 1).
The PathPT MUSK learner uses the real token table (no quirk); its attention mask is the placeholder's, with the
context positions taken from the template's padding mask (all real for the default 32-word template). Attention
is bidirectional with padded keys masked, so inputs may be cut to the longest real prompt exactly
(the base `min_exact_length`).

Known optional key: `beit3.vision_embed.mask_token` (unused at inference; accepted when absent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from . import _weights as W
from .base import Preprocess
from .musk_tokenizer import load_musk_tokenizer
from .native import FolderConfig, NativeBackbone, load_native

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CONFIG_FILE = "musk_config.json"
OPTIONAL_KEYS = ("beit3.vision_embed.mask_token",)
POS_OFFSET = 2  # fairseq: positions start at row 2


@dataclass(frozen=True)
class MuskConfig(FolderConfig):
    """MUSK architecture (`musk_large_patch16_384`); small values only for test folders."""

    config_file: ClassVar[str] = CONFIG_FILE
    image_size: int = 384
    patch_size: int = 16
    width: int = 1024
    layers: int = 24
    heads: int = 16
    ffn_dim: int = 4096
    vocab_size: int = 64010
    max_source_positions: int = 1024
    max_text_len: int = 100
    layernorm_eps: float = 1e-5
    tile_size: int = 384
    target_mpp: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) <= 0:
                raise ValueError(f"MuskConfig: {f.name} must be positive, got {getattr(self, f.name)}")
        if self.image_size % self.patch_size or self.width % self.heads:
            raise ValueError("MuskConfig: image_size/patch_size and width/heads must divide")
        if self.max_text_len + POS_OFFSET > self.max_source_positions:
            raise ValueError("MuskConfig: max_text_len + 2 must fit in max_source_positions")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class _Multiway(nn.Module):
    """Two copies of a module: `A` for vision tokens, `B` for language tokens."""

    def __init__(self, make: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.A = make()
        self.B = make()

    def expert(self, which: str) -> nn.Module:
        return self.A if which == "A" else self.B


class _FFN(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.ffn_dim)
        self.ffn_layernorm = nn.LayerNorm(cfg.ffn_dim, eps=cfg.layernorm_eps)
        self.fc2 = nn.Linear(cfg.ffn_dim, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.fc1(x)
        h = F.gelu(h.float()).type_as(h)
        return self.fc2(self.ffn_layernorm(h))


class _Attention(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.heads = cfg.heads
        w = cfg.width
        self.q_proj = _Multiway(lambda: nn.Linear(w, w))
        self.k_proj = _Multiway(lambda: nn.Linear(w, w))
        self.v_proj = _Multiway(lambda: nn.Linear(w, w))
        self.out_proj = _Multiway(lambda: nn.Linear(w, w))
        self.inner_attn_ln = _Multiway(lambda: nn.LayerNorm(w, eps=cfg.layernorm_eps))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, which: str) -> torch.Tensor:
        b, n, d = x.shape
        hd = d // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.heads, hd).transpose(1, 2)

        q = split(self.q_proj.expert(which)(x)) * hd**-0.5
        k = split(self.k_proj.expert(which)(x))
        v = split(self.v_proj.expert(which)(x))
        scores = (q @ k.transpose(-1, -2)).float()
        if pad is not None:
            scores = scores.masked_fill(pad[:, None, None, :], float("-inf"))
        attn = scores.softmax(dim=-1).type_as(v)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.out_proj.expert(which)(self.inner_attn_ln.expert(which)(out))


class _Layer(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.self_attn = _Attention(cfg)
        self.self_attn_layer_norm = _Multiway(lambda: nn.LayerNorm(cfg.width, eps=cfg.layernorm_eps))
        self.ffn = _Multiway(lambda: _FFN(cfg))
        self.final_layer_norm = _Multiway(lambda: nn.LayerNorm(cfg.width, eps=cfg.layernorm_eps))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, which: str) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm.expert(which)(x), pad, which)
        return x + self.ffn.expert(which)(self.final_layer_norm.expert(which)(x))


class _Positions(nn.Module):
    """Learned position tables: `A` for vision tokens (cls + patches), `B` for text tokens."""

    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.A = nn.Embedding(cfg.num_patches + 1 + POS_OFFSET, cfg.width)
        self.B = nn.Embedding(cfg.max_source_positions, cfg.width)


class _Encoder(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.embed_positions = _Positions(cfg)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))
        self.layer_norm = _Multiway(lambda: nn.LayerNorm(cfg.width, eps=cfg.layernorm_eps))

    def forward(self, x: torch.Tensor, pad: torch.Tensor | None, which: str) -> torch.Tensor:
        """Token rows [B, L, W] (+ positions here) -> final hidden states [B, L, W]."""
        table = self.embed_positions.A if which == "A" else self.embed_positions.B
        n = x.shape[1]
        if n + POS_OFFSET > table.num_embeddings:
            raise ValueError(f"MUSK {which}: {n} tokens exceed the {table.num_embeddings - POS_OFFSET} positions")
        x = x + table.weight[POS_OFFSET:POS_OFFSET + n].to(x.dtype)
        if pad is not None:
            x = x * (1 - pad.unsqueeze(-1).to(x.dtype))
        for layer in self.layers:
            x = layer(x, pad, which)
        return self.layer_norm.expert(which)(x)


class _VisionEmbed(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.width, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.width))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.proj(images).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)


class _Beit3(nn.Module):
    def __init__(self, cfg: MuskConfig) -> None:
        super().__init__()
        self.text_embed = nn.Embedding(cfg.vocab_size, cfg.width)
        self.vision_embed = _VisionEmbed(cfg)
        self.encoder = _Encoder(cfg)


class MuskBackbone(NativeBackbone):
    """MUSK behind the `Backbone` contract (see the module docstring)."""

    def __init__(self, cfg: MuskConfig, name: str = "musk") -> None:
        super().__init__(name, cfg.tile_size, cfg.target_mpp)
        self.cfg = cfg
        self.beit3 = _Beit3(cfg)
        self.language_head = nn.Linear(cfg.width, cfg.width, bias=False)
        self.vision_head = nn.Linear(cfg.width, cfg.width, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.embed_dim = cfg.width
        self.ctx_dim = cfg.width
        self.max_text_len = cfg.max_text_len
        self.preprocess = Preprocess(resize=cfg.image_size, crop=cfg.image_size, mean=(0.5, 0.5, 0.5),
                                     std=(0.5, 0.5, 0.5), interpolation="bicubic")

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        size = self.cfg.image_size
        if tuple(images.shape[-2:]) != (size, size):
            raise ValueError(f"MUSK takes {size}x{size} images, got {tuple(images.shape[-2:])}")
        x = self.beit3.encoder(self.beit3.vision_embed(images), None, "A")
        return F.normalize(self.vision_head(x[:, 0]), dim=-1)

    def token_embedding(self) -> nn.Embedding:
        return self.beit3.text_embed

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                           input_ids: torch.Tensor) -> torch.Tensor:
        """Rows [B, L, 1024] with `attention_mask` (1 = token; MUSK's pad mask is its inverse) -> [B, 1024]."""
        pad = attention_mask.to(inputs_embeds.device) == 0
        x = self.beit3.encoder(inputs_embeds, pad, "B")
        return F.normalize(self.language_head(x[:, 0]), dim=-1)


def load_musk(folder: str | Path, name: str = "musk") -> MuskBackbone:
    """Build MUSK from `folder` (weights strict, `tokenizer.spm` from the folder), frozen, fp32, CPU."""
    folder = W.require_folder(Path(folder), "MUSK")
    cfg = MuskConfig.from_folder(folder)
    tokenizer = load_musk_tokenizer(folder, max_length=cfg.max_text_len)
    return load_native(folder, "MUSK", lambda: MuskBackbone(cfg, name=name), tokenizer, cfg.vocab_size,
                       WEIGHT_FILES, optional=OPTIONAL_KEYS)
