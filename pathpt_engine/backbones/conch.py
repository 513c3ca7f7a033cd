"""CONCH (MahmoodLab/conch, CoCa ViT-B/16 at 448 px) implemented natively; weights from the user's folder.

Folder layout (the gated Hugging Face repository plus the tokenizer, see backbones.md §3):
- `pytorch_model.bin` (or `model.safetensors`): the open_clip CoCa state dict (`visual.*`, `text.*`, `logit_scale`).
- `conch_byte_level_bpe_uncased.json`: the tokenizer, copied by the user from github.com/mahmoodlab/CONCH.
- optional `conch_config.json`: overrides of `ConchConfig` fields (tiny test folders use it; the real folder has
  no config file, the constants below are CONCH's).

Image: timm-layout ViT-B/16 trunk (LayerNorm eps 1e-6, all 785 tokens after the final norm) -> attentional pooler
(one learned 512-d query, 8 heads, keys/values 768 -> 512) -> `ln_contrast` -> `@ proj_contrast` -> L2: the
`encode_image(proj_contrast=True, normalize=True)` variant, recorded as `image_variant` in `describe()`.

Text: 127 token rows + the learned `cls_emb` appended as row 127, learned positions, 12 pre-LN causal blocks; the cls
row additionally sees column j >= 1 only if id[j-1] != pad (so it sees SOT..EOT, the first pad, and not itself:
open_clip CoCa's off-by-one, reproduced exactly). Output `ln_final(h[:, cls]) @ text_projection` -> L2.

Prompt learner notes (method.md §3.5): the context goes at positions 1..n_ctx after SOT (`PromptLayout(1, "X")`),
`ctx_dim` = 768, `max_text_len` = 127 text ids (the cls is appended inside the tower, always at positional row
127, so inputs may be cut to `min_exact_length(ids)` rows without changing the result; inputs cut to the
longest real prompt get the needed pad row appended). The paper recipe's CONCH
quirk, prefix/suffix/template rows taken from the last block's hidden states instead of the token table, is
available as `paper_prompt_rows(ids)`; the clean recipe uses `token_embedding()`.

Known optional keys (dropped when present): the captioning pooler `visual.attn_pool_caption.*`,
`visual.ln_caption.*`, and the multimodal decoder `text_decoder.*` (absent from the public release).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from . import _weights as W
from .base import Preprocess
from .conch_tokenizer import load_conch_tokenizer
from .native import FolderConfig, NativeBackbone, StateDict, load_native
from .vit import VisionTransformer, ViTConfig

log = logging.getLogger(__name__)

WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")
CONFIG_FILE = "conch_config.json"
OPTIONAL_PREFIXES = ("visual.attn_pool_caption.", "visual.ln_caption.", "text_decoder.")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ConchConfig(FolderConfig):
    """CONCH architecture (mahmoodlab/CONCH `conch_ViT-B-16.json`); small values only for test folders."""

    config_file: ClassVar[str] = CONFIG_FILE
    image_size: int = 448
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    mlp_ratio: float = 4.0
    embed_dim: int = 512
    pooler_heads: int = 8
    context_length: int = 128
    vocab_size: int = 32007
    text_width: int = 768
    text_heads: int = 12
    text_layers: int = 12
    pad_id: int = 0
    tile_size: int = 448
    target_mpp: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) is None or (f.name != "pad_id" and getattr(self, f.name) <= 0):
                raise ValueError(f"ConchConfig: {f.name} must be positive, got {getattr(self, f.name)}")
        if self.image_size % self.patch_size:
            raise ValueError("ConchConfig: image_size must be a multiple of patch_size")
        if self.text_width % self.text_heads or self.embed_dim % self.pooler_heads:
            raise ValueError("ConchConfig: text_width/text_heads and embed_dim/pooler_heads must divide")
        if self.context_length < 3:
            raise ValueError("ConchConfig: context_length must be at least 3 (SOT, EOT, cls)")


class _AttentionalPooler(nn.Module):
    """Learned queries cross-attending to LayerNormed image tokens (open_clip CoCa key names)."""

    def __init__(self, d_model: int, context_dim: int, n_head: int, n_queries: int) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_queries, d_model))
        self.attn = nn.MultiheadAttention(d_model, n_head, kdim=context_dim, vdim=context_dim, batch_first=True)
        self.ln_q = nn.LayerNorm(d_model)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kv = self.ln_k(x)
        q = self.ln_q(self.query).unsqueeze(0).expand(x.shape[0], -1, -1)
        return self.attn(q, kv, kv, need_weights=False)[0]


class ConchVisual(nn.Module):
    """Trunk + contrastive attentional pooler + `ln_contrast` + `proj_contrast` (keys `visual.*`)."""

    def __init__(self, cfg: ConchConfig) -> None:
        super().__init__()
        self.trunk = VisionTransformer(ViTConfig(
            img_size=cfg.image_size, patch_size=cfg.patch_size, hidden_size=cfg.vision_width,
            num_heads=cfg.vision_heads, num_layers=cfg.vision_layers, mlp_ratio=cfg.mlp_ratio, qkv_bias=True,
            init_values=None, layer_norm_eps=1e-6, dynamic_img_size=False,
        ))
        self.attn_pool_contrast = _AttentionalPooler(cfg.embed_dim, cfg.vision_width, cfg.pooler_heads, 1)
        self.ln_contrast = nn.LayerNorm(cfg.embed_dim)
        self.proj_contrast = nn.Parameter(torch.randn(cfg.embed_dim, cfg.embed_dim) * cfg.vision_width**-0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # every token after the final norm (timm-layout ViT), pooled with attention
        pooled = self.attn_pool_contrast(self.trunk.forward_tokens(images))[:, 0]
        return self.ln_contrast(pooled) @ self.proj_contrast


class _TextAttention(nn.Module):
    """Packed-projection self-attention (nn.MultiheadAttention key names) with an additive float mask."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.randn(3 * width, width) * width**-0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask.to(q.dtype))
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class _TextBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = _TextAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, hidden))
        self.mlp.add_module("gelu", nn.GELU())
        self.mlp.add_module("c_proj", nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class _TextTransformer(nn.Module):
    def __init__(self, width: int, heads: int, layers: int, mlp_ratio: float) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_TextBlock(width, heads, mlp_ratio) for _ in range(layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        for blk in self.resblocks:
            x = blk(x, mask)
        return x


class ConchText(nn.Module):
    """CoCa text tower with the appended cls (keys `text.*`)."""

    def __init__(self, cfg: ConchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.token_embedding = nn.Embedding(cfg.vocab_size, cfg.text_width)
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        self.positional_embedding = nn.Parameter(torch.randn(cfg.context_length, cfg.text_width) * 0.01)
        self.cls_emb = nn.Parameter(torch.randn(cfg.text_width) * 0.01)
        self.transformer = _TextTransformer(cfg.text_width, cfg.text_heads, cfg.text_layers, 4.0)
        self.ln_final = nn.LayerNorm(cfg.text_width)
        self.text_projection = nn.Parameter(torch.randn(cfg.text_width, cfg.embed_dim) * cfg.text_width**-0.5)

    def attention_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Additive mask [B, 1, L+1, L+1]: causal everywhere; the cls row (last) opens column j >= 1 only if
        id[j-1] != pad (column 0 always), as open_clip's CoCa `build_cls_mask`."""
        b, n = input_ids.shape
        dev = input_ids.device
        neg = torch.full((n + 1, n + 1), float("-inf"), device=dev)
        mask = torch.triu(neg, diagonal=1).expand(b, n + 1, n + 1).clone()
        cls_open = torch.ones(b, n + 1, dtype=torch.bool, device=dev)
        cls_open[:, 1:] = input_ids != self.cfg.pad_id
        mask[:, n, :] = torch.where(cls_open, 0.0, float("-inf"))
        return mask.unsqueeze(1)

    def hidden(self, rows: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        """Last block's output [B, L+1, W] for text rows [B, L, W] (+ positions 0..L-1) and the cls (+ row C-1)."""
        b, n, _ = rows.shape
        c = self.cfg.context_length
        if n > c - 1:
            raise ValueError(f"CONCH text takes at most {c - 1} ids, got {n}")
        if input_ids.shape != (b, n):
            raise ValueError(f"input_ids {tuple(input_ids.shape)} must match inputs_embeds {(b, n)}")
        pos = torch.cat([self.positional_embedding[:n], self.positional_embedding[c - 1:c]], dim=0)
        x = torch.cat([rows, self.cls_emb.to(rows.dtype).expand(b, 1, -1)], dim=1) + pos.to(rows.dtype)
        return self.transformer(x, self.attention_mask(input_ids))

    def forward(self, rows: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.hidden(rows, input_ids)
        return F.normalize(self.ln_final(h[:, -1]) @ self.text_projection, dim=-1)


class ConchBackbone(NativeBackbone):
    """CONCH behind the `Backbone` contract (see the module docstring)."""

    def __init__(self, cfg: ConchConfig, name: str = "conch") -> None:
        super().__init__(name, cfg.tile_size, cfg.target_mpp)
        self.cfg = cfg
        self.visual = ConchVisual(cfg)
        self.text = ConchText(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(2.6592))
        self.embed_dim = cfg.embed_dim
        self.ctx_dim = cfg.text_width
        self.max_text_len = cfg.context_length - 1
        self.preprocess = Preprocess(resize=cfg.image_size, crop=cfg.image_size, mean=OPENAI_MEAN, std=OPENAI_STD,
                                     interpolation="bicubic")

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.visual(images), dim=-1)

    def token_embedding(self) -> nn.Embedding:
        return self.text.token_embedding

    def encode_text_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor,
                           input_ids: torch.Tensor) -> torch.Tensor:
        """Rows [B, L, 768] (L <= 127) -> [B, 512]. Masks come from `input_ids` (pad 0); `attention_mask` is
        implied by them and not used.

        Inputs cut right after a real token (e.g. to the longest real prompt) get one pad row from the token table
        appended, because the cls attends to the first pad: with token-table rows the result then equals the
        full-length one. (With the paper recipe's hidden-state rows, cut at `min_exact_length` instead.)
        """
        ids = input_ids.to(inputs_embeds.device)
        pad = self.cfg.pad_id
        if ids.shape[1] < self.max_text_len and bool((ids[:, -1] != pad).any()):
            pad_ids = torch.full_like(ids[:, :1], pad)
            inputs_embeds = torch.cat([inputs_embeds, self.text.token_embedding(pad_ids).to(inputs_embeds.dtype)], 1)
            ids = torch.cat([ids, pad_ids], dim=1)
        return self.text(inputs_embeds, ids)

    def min_exact_length(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> int:
        """Shortest L such that `encode_text_embeds` on the first L rows equals the full result: every row up
        to and including the first pad (the cls sees it)."""
        n_real = (input_ids != self.cfg.pad_id).sum(dim=1)
        return int(min(input_ids.shape[1], int(n_real.max()) + 1))

    @torch.no_grad()
    def paper_prompt_rows(self, input_ids: torch.Tensor) -> torch.Tensor:
        """PathPT's CONCH rows: the last block's hidden states (before `ln_final`) at the text positions."""
        ids = input_ids.to(self.device)
        return self.text.hidden(self.text.token_embedding(ids), ids)[:, :-1]

    def describe(self) -> dict[str, object]:
        out = super().describe()
        out["image_variant"] = "proj_contrast+l2"
        return out


def _drop_optional(sd: StateDict) -> StateDict:
    dropped = [k for k in sd if k.startswith(OPTIONAL_PREFIXES)]
    if dropped:
        log.info("CONCH: ignoring %d optional tensors (caption pooler / decoder)", len(dropped))
    return {k: v for k, v in sd.items() if not k.startswith(OPTIONAL_PREFIXES)}


def load_conch(folder: str | Path, name: str = "conch") -> ConchBackbone:
    """Build CONCH from `folder` (weights strict, tokenizer from the folder), frozen, fp32, CPU."""
    folder = W.require_folder(Path(folder), "CONCH")
    cfg = ConchConfig.from_folder(folder)
    tokenizer = load_conch_tokenizer(folder, max_length=cfg.context_length - 1)
    return load_native(folder, "CONCH", lambda: ConchBackbone(cfg, name=name), tokenizer, cfg.vocab_size,
                       WEIGHT_FILES, prepare=_drop_optional)
