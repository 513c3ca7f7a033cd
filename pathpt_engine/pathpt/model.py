"""The PathPT model: spatial-aware module over tile features + learnable prompts through the frozen text tower."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from ..backbones.base import Backbone
from ..errors import DeviceMemoryError
from ..ops.gpu import bytes_per_tile, cuda_numerics, free_bytes, is_oom, plan_chunk, release_cached
from .losses import RECIPES
from .prompt_learner import CTX_INIT_TEXT, PromptLearner
from .spatial import SpatialAwareModule

log = logging.getLogger(__name__)
_MIN_CHUNK = 256  # tiles per sequence below which an out-of-memory error is not retried

AMP_MODES = ("auto", "fp16", "bf16", "off")


@dataclass(frozen=True)
class PathPTConfig:
    """Training configuration. `recipe="paper"` reproduces the reference (quirks included); "clean" fixes them.

    Attributes:
        recipe: "paper" (double softmax, last epoch) or "clean" (single softmax, validation selection).
        epochs: training epochs (20).
        lr: Adam learning rate (1e-4), no weight decay.
        n_ctx: context tokens per class (32).
        ctx_init: "template" or "rand".
        temperature: logit scale on cosine similarities (10).
        seed: global seed (42).
        amp: "auto" (on CUDA bf16 where the GPU supports it, else fp16 with one GradScaler for the run; off on
            CPU), "fp16", "bf16" or "off".
        device: torch device string.
        truncate_text: run the text tower on the longest real prompt length only (§9 speed lever).
        spatial: use the spatial-aware module (False = identity ablation).
        misaligned_nystrom: reproduce nystrom-attention 0.0.9's row shift (comparisons only).
        fast_spatial: reassociate the Nyström product (same maths, float rounding aside); False keeps the
            reference's order of operations (benchmarks).
        pseudo_loss: enable the pseudo-label term from epoch 10.
        early_stop: clean recipe: stop after this many epochs without validation improvement (0 = never).
        chunk: tiles per sequence at prediction time (50,000 in the reference).
        n_prompts_random / n_prompts_keep: prompt-ensemble selection sizes (200 / 100).
        text_dropout: keep the frozen text tower's dropout on while training (None = the recipe's choice:
            on for "paper", as the reference's model.train() does; off for "clean").
        tf32: CUDA only: allow TF32 matmuls/convolutions (faster, ~1e-3 relative error per product); False keeps
            strict fp32 (parity, evaluation). See `ops.gpu`.
        deterministic: CUDA only: deterministic cuDNN/torch algorithms, so seeded runs repeat (see `ops.gpu`).
    """

    recipe: str = "paper"
    epochs: int = 20
    lr: float = 1e-4
    n_ctx: int = 32
    ctx_init: str = "template"
    temperature: float = 10.0
    seed: int = 42
    amp: str = "auto"
    device: str = "cpu"
    truncate_text: bool = True
    spatial: bool = True
    misaligned_nystrom: bool = False
    fast_spatial: bool = True
    pseudo_loss: bool = True
    early_stop: int = 0
    chunk: int = 50_000
    n_prompts_random: int = 200
    n_prompts_keep: int = 100
    text_dropout: bool | None = None
    tf32: bool = False
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"PathPTConfig: recipe must be one of {RECIPES}, got {self.recipe!r}")
        if self.epochs < 1 or self.lr < 0 or self.n_ctx < 1 or self.chunk < 1:
            raise ValueError("PathPTConfig: epochs, n_ctx, chunk must be >= 1 and lr >= 0")
        if self.ctx_init not in ("template", "rand"):
            raise ValueError(f"PathPTConfig: ctx_init must be 'template' or 'rand', got {self.ctx_init!r}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"PathPTConfig: amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.early_stop < 0 or not 0 < self.n_prompts_keep <= self.n_prompts_random:
            raise ValueError("PathPTConfig: early_stop >= 0 and 0 < n_prompts_keep <= n_prompts_random")

    @property
    def text_dropout_on(self) -> bool:
        """Whether training puts the frozen backbone in train mode (dropout active)."""
        return self.recipe == "paper" if self.text_dropout is None else self.text_dropout

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class PathPTModel(nn.Module):
    """What is learned (``prompt_learner.ctx`` and ``spatial.*``) around a frozen backbone.

    The backbone is held by reference, not as a submodule, so `state_dict()` holds only learned tensors.
    """

    def __init__(self, backbone: Backbone, names: list[str], config: PathPTConfig, feature_dim: int) -> None:
        super().__init__()
        if feature_dim != backbone.embed_dim:
            raise ValueError(f"features are {feature_dim}-d but backbone {backbone.name} embeds to "
                             f"{backbone.embed_dim}-d (features from another backbone?)")
        self._backbone = [backbone]
        self.config = config
        self.temperature = config.temperature
        self.prompt_learner = PromptLearner(backbone, names, n_ctx=config.n_ctx, init=config.ctx_init,
                                            init_text=CTX_INIT_TEXT, truncate=config.truncate_text)
        self.spatial = SpatialAwareModule(feature_dim, misaligned=config.misaligned_nystrom,
                                          identity=not config.spatial, fast=config.fast_spatial)

    @property
    def backbone(self) -> Backbone:
        return self._backbone[0]

    def train(self, mode: bool = True) -> PathPTModel:
        """Train mode; the frozen backbone follows only if `config.text_dropout_on` (paper recipe: the reference
        keeps BERT dropout on while tuning)."""
        super().train(mode)
        self.backbone.train(mode and self.config.text_dropout_on)
        return self

    def text_features(self) -> torch.Tensor:
        """Class embeddings T [C, D]."""
        return self.prompt_learner.text_features(self.backbone)

    def cosine(self, features: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """cos(SAM(F)_i, T_c) [N, C] for one slide's tiles [N, D] (one sequence)."""
        t = self.text_features() if text is None else text
        z = F.normalize(self.spatial(features[None])[0], dim=-1)
        return z @ t.to(z.dtype).T

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Tile probabilities P = softmax(temperature · cos) [N, C]."""
        return (self.temperature * self.cosine(features)).softmax(dim=-1)

    @torch.no_grad()
    def predict_probs(self, features: torch.Tensor, chunk: int | None = None,
                      text: torch.Tensor | None = None) -> torch.Tensor:
        """Eval-mode tile probabilities, tiles fed in chunks (each chunk its own sequence), float32 [N, C].

        `text`: class embeddings from `text_features()` in eval mode, to reuse across slides. On CUDA the chunk is
        planned from free memory, and an out-of-memory error retries with half the chunk (a warning says so:
        each chunk being its own sequence, the probabilities then differ slightly from one-sequence ones).
        """
        self.eval()
        t = self.text_features() if text is None else text
        n, dev = features.shape[0], features.device
        size = chunk or self.config.chunk
        planned = plan_chunk(size, n, bytes_per_tile(features.shape[1]), free_bytes(dev))
        if planned < min(size, n):
            log.warning("%d tiles: %.1f GiB free on %s holds sequences of %d tiles, not %d; predicting in "
                        "chunks of %d", n, (free_bytes(dev) or 0) / 2**30, dev, planned, size, planned)
        size = planned
        while True:
            try:
                with cuda_numerics(dev, self.config.tf32, self.config.deterministic):  # strict fp32 by default
                    return self._chunked_probs(features, size, t)
            except Exception as exc:  # noqa: BLE001 - only out-of-memory is retried, anything else re-raised
                if not is_oom(exc) or size <= _MIN_CHUNK:
                    if is_oom(exc):
                        raise DeviceMemoryError(f"out of memory on {dev} predicting {n} tiles even in chunks "
                                                f"of {size} tiles (use --device cpu)") from None
                    raise
            release_cached(dev)  # outside the except block: the failed chunk's tensors are gone by now
            log.warning("out of memory on %s at %d tiles per sequence; retrying with %d", dev, size, size // 2)
            size //= 2

    def _chunked_probs(self, features: torch.Tensor, size: int, t: torch.Tensor) -> torch.Tensor:
        parts = [(self.temperature * self.cosine(features[i : i + size], t)).float().softmax(dim=-1)
                 for i in range(0, features.shape[0], size)]
        return torch.cat(parts) if parts else features.new_zeros((0, t.shape[0]))
