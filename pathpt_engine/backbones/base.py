"""The backbone contract: what extraction, zero-shot and the prompt learner need from a vision-language model.

Every registry entry builds a `Backbone` (an `nn.Module`, frozen). Backbone-specific details (tokenizer, where the
learnable context goes, how the text tower pools) live in the subclass, never in copies of the prompt learner.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self, SupportsFloat

import numpy as np
import torch
from torch import nn

RESAMPLERS = ("torch", "pil")
_PIL_FILTERS = {"bicubic": "BICUBIC", "bilinear": "BILINEAR", "nearest": "NEAREST"}


def rgb_triple(values: Iterable[SupportsFloat | str]) -> tuple[float, float, float]:
    """Per-channel values read from a config file (a mean or std), as three floats; ValueError unless there are 3."""
    floats = [float(v) for v in values]
    if len(floats) != 3:
        raise ValueError(f"expected 3 per-channel values, got {len(floats)}")
    return floats[0], floats[1], floats[2]


@dataclass(frozen=True)
class Preprocess:
    """Image preprocessing that travels with the weights.

    Tiles arrive as RGB uint8 [B, H, W, 3]; output is float [B, 3, crop, crop] normalised by mean/std.
    Resize makes the shorter side `resize` (interpolation `interpolation`), then a centre crop of `crop`.

    `resampler` says how a tile that must be resized is resized:
    - "torch": `interpolate` (antialiased) on float [0, 1] pixels, clamped for bicubic; the longer side is
      rounded; the crop starts at (size - crop) // 2. Used by the models this project trains (the demo).
    - "pil": exactly torchvision's `Resize(resize)` + `CenterCrop(crop)` on a PIL image, as KEEP's transform
      does: Pillow resamples the uint8 tile (two passes, rounded and clamped to uint8 between and after them),
      the longer side is truncated (`int(resize * long / short)`), the crop starts at
      `int(round((size - crop) / 2))`. Tiles whose shorter side is already `resize` are not resampled (the
      same as torchvision, which returns them untouched).
    """

    resize: int
    crop: int
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"
    resampler: str = "torch"

    def __post_init__(self) -> None:
        if self.resize <= 0 or self.crop <= 0 or self.crop > self.resize:
            raise ValueError(f"Preprocess: need 0 < crop <= resize, got resize={self.resize} crop={self.crop}")
        if self.interpolation not in ("bicubic", "bilinear", "nearest"):
            raise ValueError(f"Preprocess: unknown interpolation {self.interpolation!r}")
        if self.resampler not in RESAMPLERS:
            raise ValueError(f"Preprocess: resampler must be one of {RESAMPLERS}, got {self.resampler!r}")

    def crop_origin(self, h: int, w: int) -> tuple[int, int]:
        """(top, left) of the centre crop in an image of h x w (after the resize)."""
        if self.resampler == "pil":  # torchvision's CenterCrop
            return int(round((h - self.crop) / 2.0)), int(round((w - self.crop) / 2.0))
        return (h - self.crop) // 2, (w - self.crop) // 2

    def resized_size(self, h: int, w: int) -> tuple[int, int]:
        """(height, width) after the resize of an h x w tile."""
        short, long = min(h, w), max(h, w)
        if short == self.resize:
            return h, w
        if self.resampler == "pil":  # torchvision: the longer side is truncated
            new_long = int(self.resize * long / short)
            return (new_long, self.resize) if w <= h else (self.resize, new_long)
        scale = self.resize / short
        return max(self.resize, round(h * scale)), max(self.resize, round(w * scale))

    def host_resize(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        """The uint8 part of the "pil" path: uint8 [B, H, W, 3] resized with Pillow (identity when no resize is
        needed or the resampler is "torch"). Runs on the CPU; the result is on the input's device."""
        x = torch.as_tensor(tiles)
        if x.ndim == 3:
            x = x[None]
        h, w = int(x.shape[1]), int(x.shape[2])
        if self.resampler != "pil" or min(h, w) == self.resize:
            return x
        if x.dtype != torch.uint8:
            raise ValueError(f"Preprocess: the pil resampler needs uint8 tiles, got {x.dtype}")
        from PIL import Image

        out_h, out_w = self.resized_size(h, w)
        flt = getattr(Image.Resampling, _PIL_FILTERS[self.interpolation])
        src = x.cpu().numpy()
        out = np.stack([np.asarray(Image.fromarray(t, "RGB").resize((out_w, out_h), flt)) for t in src])
        return torch.from_numpy(out).to(x.device)

    def __call__(self, tiles: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = self.host_resize(tiles)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)
        h, w = x.shape[-2:]
        if min(h, w) != self.resize:
            kw = {"antialias": True} if self.interpolation != "nearest" else {}
            x = nn.functional.interpolate(x, size=self.resized_size(h, w), mode=self.interpolation, **kw)
            if self.interpolation == "bicubic":
                x = x.clamp_(0.0, 1.0)
        h, w = x.shape[-2:]
        top, left = self.crop_origin(h, w)
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

    def freeze(self) -> Self:
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
