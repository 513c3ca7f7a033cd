"""MUSK's SentencePiece (XLM-R style) tokenizer without the `sentencepiece` package.

`tokenizer.spm` is a SentencePiece `ModelProto` (protobuf). We read the few fields we need with a minimal
protobuf wire-format reader, and run the unigram model through `tokenizers` (the same construction transformers
uses to convert XLM-R's sentencepiece model to a fast tokenizer): the model's precompiled NMT-NFKC character map
as `normalizers.Precompiled`, whitespace clean-up, `▁` metaspace with a dummy prefix, Viterbi over the pieces.

Ids follow fairseq/XLM-R: `<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3, every other piece = spm id + 1. Like MUSK's
`xlm_tokenizer`, we add `<s>`/`</s>` around at most `max_length - 2` pieces and pad with 1 to `max_length`
(default 100). MUSK's own padding mask has 1 = pad; the `attention_mask` returned here is the usual 1 = token,
and the text tower inverts it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import BackboneError
from .native import tokenizer_file

if TYPE_CHECKING:
    from tokenizers import Tokenizer

MUSK_TOKENIZER_FILE = "tokenizer.spm"
BOS_ID, PAD_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
_UNIGRAM = 1
_TYPE_UNKNOWN, _TYPE_CONTROL, _TYPE_USER = 2, 3, 4


@dataclass
class SpmModel:
    """The parts of a SentencePiece model this project uses."""

    pieces: list[tuple[str, float, int]] = field(default_factory=list)  # (piece, score, type)
    model_type: int = _UNIGRAM
    unk_id: int = 0
    byte_fallback: bool = False
    normalizer_name: str = ""
    precompiled_charsmap: bytes = b""
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = True


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """Yield (field number, wire type, integer, payload) of one protobuf message: a varint (wire type 0) comes as
    the integer (payload b""), any other value as its payload bytes (integer 0)."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wire = key >> 3, key & 7
        number, payload = 0, b""
        if wire == 0:
            number, pos = _varint(buf, pos)
        elif wire == 1:
            payload, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            payload, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            payload, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ValueError("truncated field")
        yield num, wire, number, payload


def parse_spm(data: bytes) -> SpmModel:
    """Parse a serialized SentencePiece `ModelProto`."""
    m = SpmModel()
    for num, wire, _, val in _fields(data):
        if num == 1 and wire == 2:
            piece, score, typ = "", 0.0, 1
            for n2, w2, i2, b2 in _fields(val):
                if n2 == 1 and w2 == 2:
                    piece = b2.decode("utf-8")
                elif n2 == 2 and w2 == 5:
                    score = struct.unpack("<f", b2)[0]
                elif n2 == 3 and w2 == 0:
                    typ = i2
            m.pieces.append((piece, score, typ))
        elif num == 2 and wire == 2:
            for n2, w2, i2, _ in _fields(val):
                if w2 == 0 and n2 == 3:
                    m.model_type = i2
                elif w2 == 0 and n2 == 35:
                    m.byte_fallback = bool(i2)
                elif w2 == 0 and n2 == 40:
                    m.unk_id = i2
        elif num == 3 and wire == 2:
            for n2, w2, i2, b2 in _fields(val):
                if n2 == 1 and w2 == 2:
                    m.normalizer_name = b2.decode("utf-8")
                elif n2 == 2 and w2 == 2:
                    m.precompiled_charsmap = bytes(b2)
                elif n2 == 3 and w2 == 0:
                    m.add_dummy_prefix = bool(i2)
                elif n2 == 4 and w2 == 0:
                    m.remove_extra_whitespaces = bool(i2)
    return m


def build_fast_tokenizer(m: SpmModel, path: Path) -> Tokenizer:
    """A `tokenizers.Tokenizer` producing fairseq ids (no special tokens added)."""
    from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import Unigram

    if m.model_type != _UNIGRAM:
        raise BackboneError(f"{path}: SentencePiece model type {m.model_type}, MUSK's is unigram (1)")
    if len(m.pieces) < 4 or m.pieces[0][2] != _TYPE_UNKNOWN or m.unk_id != 0:
        raise BackboneError(f"{path}: expected <unk> as SentencePiece id 0 (XLM-R layout)")
    if m.byte_fallback:
        raise BackboneError(f"{path}: byte-fallback SentencePiece models are not supported")
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(p, s) for p, s, _ in m.pieces[3:]] + [("<mask>", 0.0)]
    tok = Tokenizer(Unigram(vocab, unk_id=UNK_ID, byte_fallback=False))
    norms: list[normalizers.Normalizer] = []
    if m.precompiled_charsmap:
        norms.append(normalizers.Precompiled(m.precompiled_charsmap))
    elif "nfkc" in m.normalizer_name.lower():
        norms.append(normalizers.NFKC())
    if m.remove_extra_whitespaces:
        norms += [normalizers.Strip(left=True, right=True), normalizers.Replace(Regex(" {2,}"), " ")]
    if norms:
        tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="always" if m.add_dummy_prefix else "never", split=True)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    specials += [p for p, _, t in m.pieces[3:] if t in (_TYPE_CONTROL, _TYPE_USER)]
    tok.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    return tok


class MuskTokenizer:
    """Texts -> fairseq ids with `<s>`/`</s>`, padded with 1 to `max_length` (MUSK's `xlm_tokenizer`)."""

    def __init__(self, path: Path, max_length: int = 100) -> None:
        try:
            model = parse_spm(Path(path).read_bytes())
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise BackboneError(f"{path}: not a readable SentencePiece model ({exc})") from exc
        self._tok = build_fast_tokenizer(model, Path(path))
        self.path = Path(path)
        self.max_length = max_length
        self.pad_id = PAD_ID
        self.vocab_size = self._tok.get_vocab_size()

    def encode_pieces(self, text: str) -> list[int]:
        """Ids of the pieces of `text` (no `<s>`/`</s>`)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """`{"input_ids", "attention_mask"}` Long [B, max_length]; mask 1 marks real tokens (not MUSK's 1 = pad)."""
        length = int(max_length or self.max_length)
        if length < 2:
            raise ValueError(f"max_length must be at least 2 (<s> and </s>), got {length}")
        ids = torch.full((len(texts), length), PAD_ID, dtype=torch.long)
        mask = torch.zeros((len(texts), length), dtype=torch.long)
        for i, text in enumerate(texts):
            row = [BOS_ID] + self.encode_pieces(text)[: length - 2] + [EOS_ID]
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def load_musk_tokenizer(folder: Path, max_length: int = 100) -> MuskTokenizer:
    """`tokenizer.spm` from the model folder, or a `BackboneError` saying where to get it."""
    where = "it is in the xiangjx/musk download and in github.com/lilab-stanford/MUSK under musk/models/"
    return MuskTokenizer(tokenizer_file(folder, MUSK_TOKENIZER_FILE, where), max_length=max_length)
