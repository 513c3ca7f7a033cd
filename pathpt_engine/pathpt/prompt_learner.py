"""CoOp-style learnable prompt context, one implementation for every backbone (method.md §3.2, §9).

Per class c the placeholder text "X X ... X <first synonym>." (n_ctx placeholders) is tokenised with the
backbone's tokenizer; its token embeddings give a fixed prefix (positions before the context) and suffix
(class-name tokens, ".", end token, padding); the n_ctx positions in between are the learnable context
``ctx`` [C, n_ctx, ctx_dim] (class-specific). The text tower runs on prefix + ctx + suffix through
`Backbone.encode_text_embeds` with the placeholder's attention mask and ids.

Speed lever (§9): pad positions are masked, so the tower is run only on the first L positions,
L = `Backbone.min_exact_length` (the longest real prompt for BERT/CLIP/MUSK towers) with ``truncate=True``; the
class embeddings are the same as with the full padded length.
"""

from __future__ import annotations

import torch
from torch import nn

from ..backbones.base import Backbone
from ..errors import BackboneError

CTX_INIT_TEXT = "a histopathology image of"


def repeat_words(text: str, n_words: int) -> str:
    """Repeat the words of `text` cyclically to exactly `n_words` words."""
    words = text.split()
    if not words:
        raise ValueError("context init text is empty")
    reps = -(-n_words // len(words))
    return " ".join((words * reps)[:n_words])


class PromptLearner(nn.Module):
    """Learnable context vectors and the frozen token embeddings around them.

    Args:
        backbone: the frozen vision-language model (not stored as a submodule).
        names: one text per class (the first synonym), class 0 = Normal.
        n_ctx: number of context tokens (32 in the paper).
        init: "template" (word pieces of `init_text` repeated) or "rand" (N(0, 0.02²)).
        init_text: the template text.
        truncate: run the text tower only on the longest real prompt length.
    """

    prefix: torch.Tensor  # buffers (registered in __init__), typed for the checker
    suffix: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __init__(self, backbone: Backbone, names: list[str], n_ctx: int = 32, init: str = "template",
                 init_text: str = CTX_INIT_TEXT, truncate: bool = True) -> None:
        super().__init__()
        if init not in ("template", "rand"):
            raise ValueError(f"PromptLearner: init must be 'template' or 'rand', got {init!r}")
        if n_ctx < 1:
            raise ValueError("PromptLearner: n_ctx must be >= 1")
        layout = backbone.prompt_layout
        start = layout.ctx_start
        placeholder = " ".join([layout.placeholder] * n_ctx)
        tok = backbone.tokenize([f"{placeholder} {name}." for name in names])
        ids, mask = tok["input_ids"], tok["attention_mask"]
        ctx_ids = ids[:, start : start + n_ctx]
        if ctx_ids.shape[1] != n_ctx or not (ctx_ids == ctx_ids[0, 0]).all():
            raise BackboneError(f"{backbone.name}: the placeholder {layout.placeholder!r} x{n_ctx} does not "
                                f"tokenise to {n_ctx} identical tokens at positions {start}..{start + n_ctx - 1}")
        table = backbone.token_embedding()
        dev = table.weight.device
        with torch.no_grad():
            emb = table(ids.to(dev)).float()
            if init == "template":
                init_ids = backbone.tokenize([repeat_words(init_text, n_ctx)])["input_ids"].to(dev)
                vec = table(init_ids)[0, start : start + n_ctx].float()
                if vec.shape[0] != n_ctx:
                    raise BackboneError(f"{backbone.name}: init text gives fewer than {n_ctx} tokens")
                ctx = vec[None].repeat(len(names), 1, 1)
            else:
                ctx = torch.randn(len(names), n_ctx, backbone.ctx_dim, device=dev) * 0.02
        self.n_ctx = n_ctx
        self.ctx_start = start
        self.ctx = nn.Parameter(ctx.clone())
        length = min(ids.shape[1], backbone.min_exact_length(ids, mask)) if truncate else ids.shape[1]
        self.length = length
        self.register_buffer("prefix", emb[:, :start].clone(), persistent=False)
        self.register_buffer("suffix", emb[:, start + n_ctx : length].clone(), persistent=False)
        self.register_buffer("input_ids", ids[:, :length].clone(), persistent=False)
        self.register_buffer("attention_mask", mask[:, :length].clone(), persistent=False)

    def forward(self) -> torch.Tensor:
        """Prompt embeddings [C, L, ctx_dim]."""
        return torch.cat([self.prefix, self.ctx.to(self.prefix.dtype), self.suffix], dim=1)

    def text_features(self, backbone: Backbone) -> torch.Tensor:
        """L2-normalised class embeddings T [C, D] (differentiable w.r.t. ctx)."""
        return backbone.encode_text_embeds(self(), self.attention_mask, self.input_ids)
