"""Tiny random QuiltNet-format folders (open_clip layout) for tests: open_clip_config.json,
open_clip_pytorch_model.bin with open_clip's key names and shapes, and a tiny CLIP BPE tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch

from .backbones import tiny_clip_bpe


def openclip_state_dict(*, vocab: int, width: int, layers: int, heads: int, context: int, v_width: int,
                        v_layers: int, image_size: int, patch_size: int, embed_dim: int, seed: int = 0,
                        with_attn_mask: bool = False) -> dict[str, torch.Tensor]:
    """Random tensors with open_clip's CLIP key layout (text tower at the top level, image tower under visual.)."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, scale: float = 0.05) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    def ln(prefix: str, d: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1.0 + rnd(d, scale=0.2), f"{prefix}.bias": rnd(d)}

    def blocks(prefix: str, d: int, n: int) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for i in range(n):
            p = f"{prefix}.resblocks.{i}."
            out |= ln(p + "ln_1", d) | ln(p + "ln_2", d)
            out |= {p + "attn.in_proj_weight": rnd(3 * d, d, scale=d**-0.5), p + "attn.in_proj_bias": rnd(3 * d),
                    p + "attn.out_proj.weight": rnd(d, d, scale=d**-0.5), p + "attn.out_proj.bias": rnd(d),
                    p + "mlp.c_fc.weight": rnd(4 * d, d, scale=d**-0.5), p + "mlp.c_fc.bias": rnd(4 * d),
                    p + "mlp.c_proj.weight": rnd(d, 4 * d, scale=(4 * d) ** -0.5), p + "mlp.c_proj.bias": rnd(d)}
        return out

    grid = image_size // patch_size
    sd = {"token_embedding.weight": rnd(vocab, width, scale=0.5), "positional_embedding": rnd(context, width),
          "text_projection": rnd(width, embed_dim, scale=width**-0.5), "logit_scale": torch.tensor(4.6052)}
    sd |= blocks("transformer", width, layers) | ln("ln_final", width)
    sd |= {"visual.class_embedding": rnd(v_width, scale=0.5), "visual.positional_embedding": rnd(grid**2 + 1, v_width),
           "visual.conv1.weight": rnd(v_width, 3, patch_size, patch_size, scale=0.2),
           "visual.proj": rnd(v_width, embed_dim, scale=v_width**-0.5)}
    sd |= ln("visual.ln_pre", v_width) | ln("visual.ln_post", v_width) | blocks("visual.transformer", v_width, v_layers)
    if with_attn_mask:
        sd["attn_mask"] = torch.full((context, context), float("-inf")).triu(1)
    return sd


def make_tiny_quiltnet_folder(path: str | Path, *, seed: int = 0, quick_gelu: bool | None = None,
                              extra_words: Iterable[str] = (), with_attn_mask: bool = True) -> Path:
    """Write a QuiltNet-layout folder with random weights; `quick_gelu` None leaves the flag out (as QuiltNet)."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_bpe(extra_words)
    dims = dict(vocab=len(vocab), width=32, layers=2, heads=2, context=32, v_width=48, v_layers=2, image_size=32,
                patch_size=8, embed_dim=24)
    model_cfg: dict[str, object] = {
        "embed_dim": dims["embed_dim"],
        "vision_cfg": {"image_size": dims["image_size"], "layers": dims["v_layers"], "width": dims["v_width"],
                       "patch_size": dims["patch_size"], "head_width": 24},
        "text_cfg": {"context_length": dims["context"], "vocab_size": dims["vocab"], "width": dims["width"],
                     "heads": dims["heads"], "layers": dims["layers"]},
    }
    if quick_gelu is not None:
        model_cfg["quick_gelu"] = quick_gelu
    cfg = {"model_cfg": model_cfg, "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                                                      "std": [0.26862954, 0.26130258, 0.27577711]}}
    (folder / "open_clip_config.json").write_text(json.dumps(cfg, indent=1), encoding="utf-8")
    torch.save(openclip_state_dict(seed=seed, with_attn_mask=with_attn_mask, **dims),
               folder / "open_clip_pytorch_model.bin")
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": dims["context"], "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>"}), encoding="utf-8")
    return folder
