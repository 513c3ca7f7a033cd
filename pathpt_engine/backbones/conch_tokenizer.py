"""CONCH's byte-level BPE tokenizer, read from the user's model folder (never shipped: CC-BY-NC-ND 4.0).

The file is `conch_byte_level_bpe_uncased.json` from mahmoodlab/CONCH (`conch/open_clip_custom/tokenizers/`), a
`tokenizers` JSON: NFD + strip accents + lower-case, byte-level pre-tokenizer with a prefix space, template
`<start_of_text> $A <end_of_text>`, `<pad>` = 0, `<start_of_text>` = 1, `<end_of_text>` = 2.

The reference tokenises to 127 ids (truncation keeps SOT/EOT inside the 127) padded with 0, then appends one more pad
as a placeholder for the cls token (128). We return the 127 text ids; the text tower appends the cls itself.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import torch

from ..errors import BackboneError
from .native import tokenizer_file

log = logging.getLogger(__name__)

CONCH_TOKENIZER_FILE = "conch_byte_level_bpe_uncased.json"
CONCH_TOKENIZER_SOURCE = "github.com/mahmoodlab/CONCH: conch/open_clip_custom/tokenizers/" + CONCH_TOKENIZER_FILE
CONCH_SPECIALS = {"<pad>": 0, "<start_of_text>": 1, "<end_of_text>": 2}


class ConchTokenizer:
    """Texts -> right-padded ids (pad 0) with SOT/EOT, exactly as the CONCH reference (minus the cls slot).

    Args:
        path: the tokenizer JSON.
        max_length: default number of text ids (127: CONCH's context 128 minus the appended cls).
    """

    def __init__(self, path: Path, max_length: int = 127) -> None:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad user file
            raise BackboneError(f"{path}: not a readable `tokenizers` JSON ({type(exc).__name__}: {exc})") from exc
        for token, want in CONCH_SPECIALS.items():
            got = tok.token_to_id(token)
            if got != want:
                raise BackboneError(f"{path}: special token {token} has id {got}, CONCH needs {want}")
        probe = tok.encode("x").ids
        if not probe or probe[0] != 1 or probe[-1] != 2:
            raise BackboneError(f"{path}: the post-processor must add <start_of_text> ... <end_of_text>")
        tok.no_padding()
        tok.no_truncation()
        self._tok = tok
        self._lock = threading.Lock()  # truncation/padding are settings of the shared tokenizer object
        self.path = path
        self.max_length = max_length
        self.pad_id = 0
        self.vocab_size = tok.get_vocab_size()

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        """Tokenise to `{"input_ids", "attention_mask"}` Long [B, max_length]; mask 1 marks real tokens."""
        length = int(max_length or self.max_length)
        if length < 2:
            raise ValueError(f"max_length must be at least 2 (SOT and EOT), got {length}")
        # tokenizers' truncation counts the post-processor's SOT/EOT inside max_length, like the HF wrapper.
        with self._lock:
            self._tok.enable_truncation(max_length=length)
            self._tok.enable_padding(length=length, pad_id=self.pad_id, pad_token="<pad>")
            try:
                enc = self._tok.encode_batch(list(texts))
            finally:
                self._tok.no_truncation()
                self._tok.no_padding()
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long).reshape(len(texts), length)
        return {"input_ids": ids, "attention_mask": (ids != self.pad_id).long()}


def load_conch_tokenizer(folder: Path, max_length: int = 127) -> ConchTokenizer:
    """The tokenizer JSON from the model folder, or a `BackboneError` saying where to get it."""
    where = (f"CONCH's tokenizer is not in the weights repository; copy it from {CONCH_TOKENIZER_SOURCE} into this "
             "folder")
    return ConchTokenizer(tokenizer_file(folder, CONCH_TOKENIZER_FILE, where), max_length=max_length)
