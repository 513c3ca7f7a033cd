"""What the backbones written here from a published key layout (CONCH, MUSK) share.

- `FolderConfig`: a frozen architecture config whose constants an optional JSON file in the weights folder
  overrides (the tiny test folders carry one; the real folders have none).
- `tokenizer_file`: the tokenizer file those models need next to their weights, or an error saying where to get it.
- `NativeBackbone`: the `Backbone` attributes they set alike and `tokenize` through their own tokenizer.
- `load_native`: the loading steps after the folder, config and tokenizer are read (strict keys, frozen, fp32).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, Protocol, Self, TypeVar

import torch

from ..errors import BackboneError
from . import _weights as W
from .base import Backbone, PromptLayout

log = logging.getLogger(__name__)

StateDict = dict[str, torch.Tensor]


class TextTokenizer(Protocol):
    """A tokenizer read from the weights folder: texts -> `{"input_ids", "attention_mask"}` Long [B, max_length]."""

    path: Path
    vocab_size: int

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]: ...


@dataclass(frozen=True)
class FolderConfig:
    """Base of a frozen config dataclass that `config_file` in the weights folder may override."""

    config_file: ClassVar[str] = ""

    @classmethod
    def from_folder(cls, folder: Path) -> Self:
        """Constants, overridden by `config_file` when the folder has one (unknown fields are errors)."""
        return W.optional_config(cls, folder, cls.config_file)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def tokenizer_file(folder: Path, name: str, where: str) -> Path:
    """`folder/name`, or a `BackboneError` naming the folder, the file and `where` it comes from."""
    path = Path(folder) / name
    if not path.is_file():
        raise BackboneError(f"{folder}: missing {name} ({where})")
    return path


class NativeBackbone(Backbone):
    """A backbone with its own tokenizer (set by `load_native`); the learnable context follows the start token."""

    def __init__(self, name: str, tile_size: int, target_mpp: float) -> None:
        super().__init__()
        self.name = name
        self.tile_size = tile_size
        self.target_mpp = target_mpp
        self.prompt_layout = PromptLayout(ctx_start=1, placeholder="X")
        self.tokenizer: TextTokenizer | None = None

    def tokenize(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            raise BackboneError(f"{self.name}: no tokenizer loaded")
        return self.tokenizer(list(texts), max_length or self.max_text_len)


B = TypeVar("B", bound=NativeBackbone)


def load_native(folder: Path, what: str, build: Callable[[], B], tokenizer: TextTokenizer, vocab_rows: int,
                weight_files: Sequence[str], prepare: Callable[[StateDict], StateDict] | None = None,
                optional: Iterable[str] = ()) -> B:
    """Check that `tokenizer` fits the token table (`vocab_rows`), read the first of `weight_files` in `folder`,
    `prepare` its state dict (e.g. drop unused tensors), make a one-element `logit_scale` a scalar, load it strictly
    into `build()` (`optional` keys may be absent), attach the tokenizer and the weights hash; frozen, fp32."""
    if tokenizer.vocab_size > vocab_rows:
        raise BackboneError(f"{tokenizer.path}: {tokenizer.vocab_size} tokens but the model's token table has "
                            f"{vocab_rows} rows")
    path = W.find_weights_file(folder, weight_files)
    sd = W.load_state_dict(path)
    if prepare is not None:
        sd = prepare(sd)
    if "logit_scale" in sd and sd["logit_scale"].numel() == 1:
        sd["logit_scale"] = sd["logit_scale"].reshape(())
    model = build()
    W.load_strict(model, sd, folder, optional=optional)
    model.tokenizer = tokenizer
    model.weights_hash = W.file_hash(path)
    log.info("loaded %s from %s (%s)", what, folder, path.name)
    return model.float().freeze()
