"""Tiny random-init weight folders in the real formats, for tests (ours and other modules').

`make_tiny_keep_folder` writes a KEEP-format folder (config.json, model.safetensors or pytorch_model.bin,
vocab.txt, tokenizer_config.json) that `load_backbone("keep", path)` opens through the real loader.
`make_tiny_clip_folder` writes a HF `CLIPModel` folder with a small byte-level BPE tokenizer.
Both are deterministic for a given seed and take well under a second.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterable
from pathlib import Path

import torch

from ..backbones.keep import KeepBackbone

# Words every tiny vocabulary knows (whole tokens); anything else still tokenises via single letters/##letters.
BASE_WORDS = (
    "a", "an", "the", "of", "is", "in", "and", "showing", "shows", "show", "there", "this", "image",
    "images", "photomicrograph", "photograph", "example", "histopathological", "histopathology", "h", "e",
    "stain", "stained", "present", "presence", "tissue", "normal", "tumor", "tumour", "cancer",
    "carcinoma", "sarcoma", "benign", "malignant", "type", "subtype", "cells", "cell", "x", "non",
    "cancerous",
)
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_wordpiece_vocab(extra_words: Iterable[str] = ()) -> list[str]:
    """Specials, punctuation, digits, letters and `##letters`, then BASE_WORDS and `extra_words` (lower-cased)."""
    vocab: list[str] = list(SPECIALS)
    vocab += list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits]
    for w in list(BASE_WORDS) + [w.lower() for w in extra_words]:
        if w not in vocab:
            vocab.append(w)
    return vocab


def tiny_keep_config(vocab_size: int, *, img_size: int = 32, patch_size: int = 8, vision_width: int = 32,
                     vision_layers: int = 2, vision_heads: int = 2, text_width: int = 32, text_layers: int = 2,
                     text_heads: int = 2, max_positions: int = 64, init_values: float | None = 0.1) -> dict:
    """A KEEP-schema config.json dict with small widths (projection_dim = text width, as in KEEP)."""
    return {
        "model_type": "keep",
        "vision_config": {
            "model_type": "vit", "img_size": img_size, "patch_size": patch_size, "hidden_size": vision_width,
            "num_heads": vision_heads, "num_layers": vision_layers, "mlp_ratio": 4.0, "qkv_bias": True,
            "drop_rate": 0.0, "attn_drop_rate": 0.0, "init_values": init_values, "num_classes": 0,
            "dynamic_img_size": True,
        },
        "text_config": {
            "model_type": "bert", "vocab_size": vocab_size, "hidden_size": text_width,
            "num_hidden_layers": text_layers, "num_attention_heads": text_heads,
            "intermediate_size": 4 * text_width, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": max_positions,
            "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12,
        },
        "projection_dim": text_width,
    }


def make_tiny_keep_folder(path: str | os.PathLike[str], *, seed: int = 0, fmt: str = "safetensors",
                          extra_words: Iterable[str] = (), ls_key: str = "weight",
                          config_overrides: dict | None = None, **config_kw: object) -> Path:
    """Write a random-init KEEP-format folder at `path` and return it.

    Args:
        path: folder to create (may exist).
        seed: torch seed for the random weights.
        fmt: "safetensors" (model.safetensors) or "bin" (pytorch_model.bin, plain tensors).
        extra_words: whole words to add to the WordPiece vocabulary (e.g. class names).
        ls_key: how LayerScale is spelled in the file: "weight" (current KEEP) or "gamma" (timm).
        config_overrides: top-level config.json entries to add or replace (e.g. "preprocess").
        **config_kw: passed to `tiny_keep_config` (img_size, vision_width, text_layers, ...).
    """
    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"fmt must be 'safetensors' or 'bin', got {fmt!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_wordpiece_vocab(extra_words)
    config = tiny_keep_config(len(vocab), **config_kw)  # type: ignore[arg-type]
    config.update(config_overrides or {})
    torch.manual_seed(seed)
    model = KeepBackbone(config, folder, name="keep")
    with torch.no_grad():  # LayerNorm affine params start at 1/0; make them non-trivial so tests see them
        for name, p in model.named_parameters():
            if "norm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if ls_key != "gamma":
        sd = {(k[: -len("gamma")] + ls_key if k.endswith(("ls1.gamma", "ls2.gamma")) else k): v
              for k, v in sd.items()}
    write_state_dict(sd, folder, fmt, "model")
    (folder / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}), encoding="utf-8")
    return folder


def write_state_dict(sd: dict[str, torch.Tensor], folder: Path, fmt: str, stem: str) -> Path:
    """Write `sd` as `<stem>.safetensors` or `pytorch_model.bin` in `folder`."""
    if fmt == "safetensors":
        from safetensors.torch import save_file

        out = folder / f"{stem}.safetensors"
        save_file(sd, str(out))
    else:
        out = folder / "pytorch_model.bin"
        torch.save(sd, str(out))
    return out


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_clip_bpe(extra_words: Iterable[str] = ()) -> tuple[dict[str, int], list[str]]:
    """A small CLIP-style byte-level BPE: every byte (plain and word-final), plus left-to-right merges for
    BASE_WORDS + `extra_words` (most become one token; merge ranks may split some). Returns (vocab, merges)."""
    chars = list(_bytes_to_unicode().values())
    tokens: list[str] = chars + [c + "</w>" for c in chars]
    merges: list[str] = []
    for word in list(BASE_WORDS) + [w.lower() for w in extra_words]:
        if not word.isalpha() or len(word) < 2:
            continue
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        left = parts[0]
        for right in parts[1:]:
            merge = f"{left} {right}"
            if merge not in merges:
                merges.append(merge)
                tokens.append(left + right)
            left = left + right
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab: dict[str, int] = {}
    for t in tokens:
        vocab.setdefault(t, len(vocab))
    return vocab, merges


def make_tiny_clip_folder(path: str | Path, *, seed: int = 0, fmt: str = "safetensors",
                          extra_words: Iterable[str] = (), width: int = 32, layers: int = 2, heads: int = 2,
                          image_size: int = 32, patch_size: int = 8, max_positions: int = 32,
                          eos_token_id: int | None = None) -> Path:
    """Write a random-init HF `CLIPModel` folder with a tiny BPE tokenizer and return it.

    `eos_token_id` defaults to the real `<|endoftext|>` id; pass 2 for the legacy (argmax) pooling rule.
    """
    from transformers import CLIPConfig, CLIPModel

    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"fmt must be 'safetensors' or 'bin', got {fmt!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = tiny_clip_bpe(extra_words)
    eot = vocab["<|endoftext|>"]
    common = {"hidden_size": width, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": 4 * width, "hidden_act": "quick_gelu"}
    cfg = CLIPConfig(
        text_config={**common, "vocab_size": len(vocab), "max_position_embeddings": max_positions,
                     "bos_token_id": vocab["<|startoftext|>"], "pad_token_id": eot,
                     "eos_token_id": eot if eos_token_id is None else eos_token_id},
        vision_config={**common, "image_size": image_size, "patch_size": patch_size},
        projection_dim=width,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name.lower() or "layrnorm" in name.lower():
                p.add_(torch.randn_like(p) * 0.1)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    write_state_dict(sd, folder, fmt, "model")
    cfg.to_json_file(str(folder / "config.json"))
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": max_positions, "do_lower_case": True,
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>"}), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "do_resize": True, "size": {"shortest_edge": image_size}, "resample": 3, "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size}, "do_normalize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "CLIPImageProcessor"}), encoding="utf-8")
    return folder
