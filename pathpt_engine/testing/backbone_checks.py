"""What every backbone format's tests check alike: loading broken copies of a weights folder, and the text path.

Plain functions (no pytest): they return what the tests assert on.

- `load_errors(load, folder, breakers, scratch)`: each breaker gets its own copy of `folder`; the result maps each
  case to that copy and the message of the `BackboneError` that loading it raised ("" if it loaded).
- `text_path(model, texts)`: the texts' ids, mask, token-table rows, `encode_text` and `min_exact_length`, the
  inputs of the checks that `encode_text_embeds` on token rows equals the token path, cut or not.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

import torch

from ..backbones.base import Backbone
from ..errors import BackboneError


def load_errors(load: Callable[[Path], object], folder: Path, breakers: Mapping[str, Callable[[Path], object]],
                scratch: Path) -> dict[str, tuple[Path, str]]:
    """For each case of `breakers`: a copy of `folder` under `scratch` broken by its breaker, and the message of
    the `BackboneError` that `load` raises on it ("" when it loads; any other exception propagates)."""
    out: dict[str, tuple[Path, str]] = {}
    for i, (case, breaker) in enumerate(breakers.items()):
        bad = scratch / f"bad{i}"
        shutil.copytree(folder, bad)
        breaker(bad)
        try:
            load(bad)
        except BackboneError as exc:
            out[case] = (bad, str(exc))
        else:
            out[case] = (bad, "")
    return out


class TextPath(NamedTuple):
    """`texts` through the ordinary token path (computed without gradients)."""

    ids: torch.Tensor
    mask: torch.Tensor
    rows: torch.Tensor  # token_embedding()(ids)
    full: torch.Tensor  # encode_text(texts)
    n: int  # min_exact_length(ids, mask)


def text_path(model: Backbone, texts: list[str]) -> TextPath:
    """Tokenise `texts`, look their rows up in the token table, encode them, and ask for the exact cut length."""
    tok = model.tokenize(texts)
    ids, mask = tok["input_ids"], tok["attention_mask"]
    with torch.no_grad():
        full = model.encode_text(texts)
        rows = model.token_embedding()(ids)
    return TextPath(ids, mask, rows, full, model.min_exact_length(ids, mask))
