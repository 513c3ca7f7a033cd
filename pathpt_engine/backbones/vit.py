"""A plain pre-norm Vision Transformer with LayerScale that loads timm-layout weights.

Enough of timm's `VisionTransformer` to run KEEP's vision tower (and small copies of it) without timm:
patch embedding, class token, absolute position embedding (interpolated for other image sizes), pre-norm blocks
with optional LayerScale, final LayerNorm, class-token pooling. Parameter names follow timm, so a timm state dict
loads with `strict=True`; LayerScale is stored as `ls*.gamma` (timm's name), and the loader maps the
`ls*.weight` spelling of current KEEP checkpoints onto it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ViTConfig:
    """Vision tower hyper-parameters (the fields of KEEP's `vision_config`)."""

    img_size: int = 224
    patch_size: int = 16
    hidden_size: int = 1024
    num_heads: int = 16
    num_layers: int = 24
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    init_values: float | None = 1e-5
    layer_norm_eps: float = 1e-6
    dynamic_img_size: bool = True

    def __post_init__(self) -> None:
        if self.img_size <= 0 or self.patch_size <= 0 or self.img_size % self.patch_size:
            raise ValueError(f"ViTConfig: img_size {self.img_size} must be a positive multiple of "
                             f"patch_size {self.patch_size}")
        if self.hidden_size <= 0 or self.num_heads <= 0 or self.hidden_size % self.num_heads:
            raise ValueError(f"ViTConfig: hidden_size {self.hidden_size} must be a positive multiple of "
                             f"num_heads {self.num_heads}")
        if self.num_layers <= 0 or self.mlp_ratio <= 0:
            raise ValueError("ViTConfig: num_layers and mlp_ratio must be positive")

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ViTConfig:
        """Build from a KEEP-style `vision_config` (unknown fields are ignored; `num_classes` must be 0)."""
        if int(cfg.get("num_classes", 0)) != 0:
            raise ValueError(f"vision_config: num_classes must be 0 (pooled features), got {cfg['num_classes']}")
        init = cfg.get("init_values", 1e-5)
        return cls(
            img_size=int(cfg.get("img_size", 224)),
            patch_size=int(cfg.get("patch_size", 16)),
            hidden_size=int(cfg.get("hidden_size", cfg.get("embed_dim", 1024))),
            num_heads=int(cfg.get("num_heads", 16)),
            num_layers=int(cfg.get("num_layers", cfg.get("depth", 24))),
            mlp_ratio=float(cfg.get("mlp_ratio", 4.0)),
            qkv_bias=bool(cfg.get("qkv_bias", True)),
            init_values=None if init is None else float(init),
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-6)),
            dynamic_img_size=bool(cfg.get("dynamic_img_size", True)),
        )

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size


class PatchEmbed(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.hidden_size, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)  # [B, D, h, w]
        return x.flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.num_heads = cfg.num_heads
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size, bias=cfg.qkv_bias)
        self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        hidden = int(cfg.hidden_size * cfg.mlp_ratio)
        self.fc1 = nn.Linear(cfg.hidden_size, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init_values: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_values)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        d, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.attn = Attention(cfg)
        self.ls1 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(d, eps=eps)
        self.mlp = Mlp(cfg)
        self.ls2 = LayerScale(d, cfg.init_values) if cfg.init_values else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """Pre-norm ViT returning the class token after the final norm ([B, hidden_size])."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden_size
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + cfg.grid**2, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.apply(_init_weights)

    def _pos_embed(self, h: int, w: int) -> torch.Tensor:
        """Position embedding for an h x w patch grid (bicubic interpolation of the stored grid)."""
        g = self.cfg.grid
        if (h, w) == (g, g):
            return self.pos_embed
        if not self.cfg.dynamic_img_size:
            raise ValueError(f"image gives a {h}x{w} patch grid; this model needs {g}x{g} "
                             f"({self.cfg.img_size}px) and has dynamic_img_size off")
        cls_pos, grid_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        d = grid_pos.shape[-1]
        grid_pos = grid_pos.reshape(1, g, g, d).permute(0, 3, 1, 2).float()
        grid_pos = F.interpolate(grid_pos, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        grid_pos = grid_pos.permute(0, 2, 3, 1).reshape(1, h * w, d).to(self.pos_embed.dtype)
        return torch.cat([cls_pos, grid_pos], dim=1)

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] -> every token (cls first) after the final norm [B, 1 + patches, W]."""
        p = self.cfg.patch_size
        h, w = x.shape[-2] // p, x.shape[-1] // p
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self._pos_embed(h, w)
        for blk in self.blocks:
            tokens = blk(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The cls token after the final norm [B, W]."""
        return self.forward_tokens(x)[:, 0]


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.trunc_normal_(m.weight, std=math.sqrt(1.0 / (m.in_channels * m.kernel_size[0] ** 2)))
        if m.bias is not None:
            nn.init.zeros_(m.bias)
