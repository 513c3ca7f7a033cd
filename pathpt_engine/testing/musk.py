"""Tiny random-init MUSK-format folders for tests: same file names and key layout as the real one, small widths.

`tokenizer.spm` is a SentencePiece `ModelProto` written here (unigram, XLM-R layout: `<unk>`, `<s>`, `</s>`, then
pieces), so the real reader parses it; without a precompiled character map the reader falls back to NFKC.
"""

from __future__ import annotations

import string
import struct
from pathlib import Path

import torch

from ..backbones.musk import CONFIG_FILE, MuskBackbone, MuskConfig
from ..backbones.musk_tokenizer import MUSK_TOKENIZER_FILE

WORD_PIECES = [("▁X", -2.0), ("▁a", -2.5), ("▁his", -4.0), ("to", -4.0), ("path", -4.0), ("ology", -4.0),
               ("▁image", -3.0), ("▁of", -2.5), ("▁tumor", -3.5), ("▁Normal", -3.5), ("▁normal", -3.5),
               ("▁tissue", -3.5), ("▁carcinoma", -4.0), ("▁sarcoma", -4.0), (".", -3.0), ("▁", -3.0)]


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    key = _varint((num << 3) | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def spm_bytes(pieces: list[tuple[str, float, int]], normalizer: str = "nmt_nfkc") -> bytes:
    """Serialize a minimal unigram `ModelProto` with these (piece, score, type) entries."""
    out = b""
    for piece, score, typ in pieces:
        msg = _field(1, 2, piece.encode("utf-8")) + _field(2, 5, struct.pack("<f", score)) + _field(3, 0, _varint(typ))
        out += _field(1, 2, msg)
    trainer = _field(3, 0, _varint(1)) + _field(40, 0, _varint(0))
    norm = _field(1, 2, normalizer.encode("utf-8")) + _field(3, 0, _varint(1)) + _field(4, 0, _varint(1))
    return out + _field(2, 2, trainer) + _field(3, 2, norm)


def tiny_spm_pieces() -> list[tuple[str, float, int]]:
    """XLM-R layout: `<unk>` (type 2), `<s>`/`</s>` (control), word pieces, then single characters."""
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(p, s, 1) for p, s in WORD_PIECES]
    chars = string.ascii_letters + string.digits + string.punctuation
    pieces += [(c, -10.0, 1) for c in chars if c != "."]
    return pieces


def make_tiny_musk_folder(path: str | Path, *, seed: int = 0, fmt: str = "safetensors", dtype: str = "float32",
                          **config_kw: object) -> Path:
    """Write a random-init MUSK-format folder (model.safetensors + tokenizer.spm + musk_config.json).

    Args:
        path: folder to create (may exist).
        seed: torch seed for the weights.
        fmt: "safetensors" (as published) or "bin".
        dtype: "float32" or "float16" (the published dtype is not known; both must load).
        **config_kw: `MuskConfig` overrides.
    """
    if fmt not in ("safetensors", "bin"):
        raise ValueError(f"fmt must be 'safetensors' or 'bin', got {fmt!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    pieces = tiny_spm_pieces()
    (folder / MUSK_TOKENIZER_FILE).write_bytes(spm_bytes(pieces))
    base: dict[str, object] = dict(image_size=32, patch_size=8, width=32, layers=2, heads=2, ffn_dim=64,
                                   vocab_size=len(pieces) + 2 + 6, max_source_positions=128, max_text_len=100,
                                   tile_size=32)
    base.update(config_kw)
    cfg = MuskConfig(**base)  # type: ignore[arg-type]
    (folder / CONFIG_FILE).write_text(cfg.to_json(), encoding="utf-8")
    torch.manual_seed(seed)
    model = MuskBackbone(cfg)
    with torch.no_grad():  # non-trivial LayerNorms and distinct experts so a wrong key mapping shows up
        for name, p in model.named_parameters():
            if name.endswith("norm.A.weight") or name.endswith("norm.B.weight") or "inner_attn_ln" in name:
                p.mul_(0.5).add_(torch.rand_like(p))
        model.beit3.vision_embed.cls_token.normal_()
    sd = {k: v.detach().clone().to(getattr(torch, dtype)).contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(folder / "model.safetensors"))
    else:
        torch.save(sd, folder / "pytorch_model.bin")
    return folder
