"""Tiny random-init CONCH-format folders for tests: same file names and key layout as the real one, small widths.

The tokenizer is a small byte-level BPE trained here with CONCH's pipeline (NFD + strip accents + lower-case,
byte-level with prefix space, SOT/EOT template, the same 7 special tokens at ids 0..6). Nothing of the real
(CC-BY-NC-ND) tokenizer or weights is used.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..backbones.conch import CONFIG_FILE, ConchBackbone, ConchConfig
from ..backbones.conch_tokenizer import CONCH_TOKENIZER_FILE

SPECIAL_TOKENS = ["<pad>", "<start_of_text>", "<end_of_text>", "<|person|>", "<|mrn|>", "<|specimen_id|>",
                  "<|date|>"]
CORPUS = [
    "a histopathology image of normal tissue.", "an H&E image of carcinoma.", "x x x x tumor.",
    "a photomicrograph showing sarcoma cells.", "benign and malignant subtypes of cancer tissue.",
]


def make_tiny_conch_tokenizer(path: Path, vocab_size: int = 400) -> int:
    """Train and save a CONCH-pipeline byte-level BPE JSON at `path`; returns its vocabulary size."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<start_of_text> $A <end_of_text>", special_tokens=[("<start_of_text>", 1), ("<end_of_text>", 2)])
    tok.save(str(path))
    return tok.get_vocab_size()


def tiny_conch_config(vocab_size: int, **kw: object) -> ConchConfig:
    """Small widths; vision width != embed dim so the pooler keeps CONCH's separate k/v projections."""
    base: dict[str, object] = dict(image_size=32, patch_size=8, vision_width=32, vision_layers=2, vision_heads=2,
                                   embed_dim=24, pooler_heads=2, context_length=128, vocab_size=vocab_size,
                                   text_width=32, text_heads=2, text_layers=2, tile_size=32)
    base.update(kw)
    return ConchConfig(**base)  # type: ignore[arg-type]


def make_tiny_conch_folder(path: str | Path, *, seed: int = 0, fmt: str = "bin", with_caption: bool = True,
                           wrap: str | None = None, **config_kw: object) -> Path:
    """Write a random-init CONCH-format folder and return it.

    Args:
        path: folder to create (may exist).
        seed: torch seed for the weights.
        fmt: "bin" (pytorch_model.bin, as published) or "safetensors".
        with_caption: also write the optional caption pooler and a decoder tensor (the loader must drop them).
        wrap: put the state dict under this top-level key ("state_dict"/"model") with a `module.` prefix.
        **config_kw: `ConchConfig` overrides.
    """
    if fmt not in ("bin", "safetensors"):
        raise ValueError(f"fmt must be 'bin' or 'safetensors', got {fmt!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = make_tiny_conch_tokenizer(folder / CONCH_TOKENIZER_FILE)
    cfg = tiny_conch_config(vocab, **config_kw)
    (folder / CONFIG_FILE).write_text(cfg.to_json(), encoding="utf-8")
    torch.manual_seed(seed)
    model = ConchBackbone(cfg)
    with torch.no_grad():  # non-trivial LayerNorms so a wrong key mapping shows up
        for name, param in model.named_parameters():
            if name.endswith(("ln_final.weight", "ln_contrast.weight", "norm.weight")):
                param.mul_(0.5).add_(torch.rand_like(param))
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if with_caption:  # the 11 caption-pooler tensors of the real layout (d_model = width here), one decoder tensor
        w, p = cfg.vision_width, "visual.attn_pool_caption."
        sd |= {p + "query": torch.randn(8, w), p + "attn.in_proj_weight": torch.randn(3 * w, w),
               p + "attn.in_proj_bias": torch.zeros(3 * w), p + "attn.out_proj.weight": torch.randn(w, w),
               p + "attn.out_proj.bias": torch.zeros(w)}
        for ln in (p + "ln_q", p + "ln_k", "visual.ln_caption"):
            sd |= {ln + ".weight": torch.ones(w), ln + ".bias": torch.zeros(w)}
        sd["text_decoder.resblocks.0.ln_1.weight"] = torch.ones(cfg.text_width)
    if wrap:
        sd = {wrap: {f"module.{k}": v for k, v in sd.items()}}
    if fmt == "bin":
        torch.save(sd, folder / "pytorch_model.bin")
    else:
        from safetensors.torch import save_file

        if wrap:
            raise ValueError("safetensors files are flat: use wrap only with fmt='bin'")
        save_file(sd, str(folder / "model.safetensors"))
    return folder
