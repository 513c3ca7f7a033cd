"""The backbone contract: what extraction, zero-shot and the prompt learner need from a vision-language model.

Every registry entry builds a `Backbone` (an `nn.Module`, frozen). Backbone-specific details (tokenizer, where the
learnable context goes, how the text tower pools) live in the subclass, never in copies of the prompt learner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing that travels with the weights.

    Tiles arrive as RGB uint8 [B, H, W, 3]; output is float [B, 3, crop, crop] normalised by mean/std.
    Resize makes the shorter side `resize` (interpolation `interpolation`), then a centre crop of `crop`.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.resize <= 0 or self.crop <= 0 or self.crop > self.resize:
            raise ValueError(f"Preprocess: need 0 < crop <= resize, got resize={self.resize} crop={self.crop}")
        if self.interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"Preprocess: unknown interpolation {self.interpolation!r}")

    def __call__(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(tiles)
        if x.ndim == 3:
            x = x[None]
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        if min(h, w) != self.resize:
            scale = self.resize / min(h, w)
            size = (max(self.resize, round(h * scale)), max(self.resize, round(w * scale)))
            kw = {"antialias": True} if self.interpolation != "nearest" else {}
            x = nn.functional.interpolate(x, size=size, mode=self.interpolation, **kw)
            if self.interpolation == "bicubic":
                x = x.clamp_(0.0, 1.0)
        h, w = x.shape[-2:]
        top, left = (h - self.crop) // 2, (w - self.crop) // 2
        x = x[..., top : top + self.crop, left : left + self.crop]
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x - mean) / std


@dataclass(frozen=True)
class PromptLayout:
    """Where the learnable context sits in a tokenised placeholder prompt.

    The prompt learner tokenises "X X ... X <class name>." (n_ctx placeholders); the token embeddings at
    positions [ctx_start, ctx_start + n_ctx) are replaced by the learned context vectors.
    """

    ctx_start: int = 1
    placeholder: str = "X"


class Backbone(nn.Module):
    """A frozen vision-language model behind one interface.

    Subclasses set the attributes below and implement the abstract methods.

    Attributes:
        name: registry name ("keep", "clip", "demo", ...).
        embed_dim: joint embedding dimension D (image and text embeddings).
        ctx_dim: width of the text token embeddings (the learnable context width).
        max_text_len: tokeniser max length (KEEP 256, CLIP 77).
        tile_size: preferred tile edge in pixels at `target_mpp`.
        target_mpp: preferred microns per pixel for tiles (0.5 = 20x).
        preprocess: image preprocessing from the weights' config.
        weights_hash: short content hash of the weights file(s) (feature caches record it).
        prompt_layout: where the learnable context goes.
    """

    name: str = ""
    embed_dim: int = 0
    ctx_dim: int = 0
    max_text_len: int = 77
    tile_size: int = 224
    target_mpp: float = 0.5
    preprocess: Preprocess
    weights_hash: str = ""
    prompt_layout: PromptLayout = PromptLayout()

    # --- image side -------------------------------------------------------------------------------------
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Preprocessed images [B, 3, H, W] -> L2-normalised embeddings [B, D]."""
        raise NotImplementedError

    # --- text side --------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Texts -> {"input_ids": Long[B, L], "attention_mask": Long[B, L]} padded to `max_length`
        (default `max_text_len`)."""
        raise NotImplementedError

    def token_embedding(self) -> nn.Embedding:
        """The word/token embedding table of the text tower (what the context vectors replace)."""
        raise NotImplementedError

    def encode_text_embeds(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, input_ids: torch.Tensor
    ) -> torch.Tensor:
        """Text forward from token embeddings [B, L, ctx_dim] -> L2-normalised [B, D].

        `input_ids` are those of the tokenised placeholder prompt (some towers pool at the EOT position).
        Must equal `encode_text` when `inputs_embeds = token_embedding()(input_ids)`.
        """
        raise NotImplementedError

    def min_exact_length(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> int:
        """Shortest L such that `encode_text_embeds` on the first L positions equals the full-length result.

        Default: the longest real (unpadded) prompt, right for towers whose pooled row never sees pad positions
        (BERT/KEEP, CLIP, MUSK). CONCH overrides it (its cls also sees the first pad).
        """
        return max(1, int(attention_mask.sum(dim=1).max()))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Texts -> L2-normalised [B, D] through the ordinary token path."""
        tok = self.tokenize(texts)
        dev = self.device
        ids = tok["input_ids"].to(dev)
        mask = tok["attention_mask"].to(dev)
        return self.encode_text_embeds(self.token_embedding()(ids), mask, ids)

    # --- helpers ----------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def freeze(self) -> Backbone:
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        return self

    def describe(self) -> dict[str, object]:
        """Metadata recorded in feature files and checkpoints."""
        return {
            "backbone": self.name,
            "weights_hash": self.weights_hash,
            "embed_dim": self.embed_dim,
            "tile_size": self.tile_size,
            "target_mpp": self.target_mpp,
        }
