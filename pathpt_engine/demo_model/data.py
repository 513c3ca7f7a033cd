"""Data for the demo vision-language model: synthetic tile pools, captions, the WordPiece vocabulary, and the
zero-shot evaluation reported in the demo model's README.

Everything is synthetic (pathpt_engine.synth) and deterministic from a seed.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..backbones.base import Backbone, Preprocess

log = logging.getLogger(__name__)

# The 22 prompt templates of the PathPT reference (method.md §2.3).
TEMPLATES: tuple[str, ...] = (
    "CLASSNAME.", "a photomicrograph showing CLASSNAME.", "a photomicrograph of CLASSNAME.",
    "an image of CLASSNAME.", "an image showing CLASSNAME.", "an example of CLASSNAME.", "CLASSNAME is shown.",
    "this is CLASSNAME.", "there is CLASSNAME.", "a histopathological image showing CLASSNAME.",
    "a histopathological image of CLASSNAME.", "a histopathological photograph of CLASSNAME.",
    "a histopathological photograph showing CLASSNAME.", "shows CLASSNAME.", "presence of CLASSNAME.",
    "CLASSNAME is present.", "an H&E stained image of CLASSNAME.", "an H&E stained image showing CLASSNAME.",
    "an H&E image showing CLASSNAME.", "an H&E image of CLASSNAME.", "CLASSNAME, H&E stain.", "CLASSNAME, H&E.",
)
# Words used as filler in front of captions so that the text tower sees class names at the positions where the
# prompt learner puts them (after 32 context tokens).
_FILLER_TEXT = "a histopathology image of tissue section slide stained with hematoxylin and eosin"
FILLER = tuple(_FILLER_TEXT.split())
# Generic vocabulary so that user-typed class names tokenise into words (their rows are untrained).
_GENERIC_TEXT = (
    "tumor tumour tumors cancer cancers carcinoma carcinomas sarcoma sarcomas lymphoma melanoma adenoma "
    "neoplasm neoplasia neoplastic malignant benign metastatic invasive in situ grade low high poorly well "
    "moderately differentiated undifferentiated cell cells cellular nuclei nucleus nuclear cytoplasm stroma "
    "stromal epithelium epithelial gland glands glandular duct ductal lobular papillary serous mucinous "
    "clear endometrioid squamous basal transitional urothelial hepatocellular renal thyroid follicular "
    "medullary anaplastic neuroendocrine small large round spindle giant pleomorphic necrosis necrotic "
    "mitosis mitotic fibrous fibrosis inflammation inflammatory lymphocytes lymphocyte immune fat adipose "
    "muscle smooth skeletal vessel vessels blood bone cartilage nerve lung breast colon liver kidney prostate "
    "brain skin ovary ovarian uterus uterine cervix bladder stomach pancreas thymus thymoma lymph node "
    "heterologous homologous type types subtype subtypes pattern patterns solid nested nests sheets "
    "alveolar fascicles fascicular background normal abnormal healthy healthy-looking tissue region area "
    "positive negative other unknown mixed pediatric adult photo picture microscopy microscope slide whole"
)
GENERIC_WORDS = tuple(_GENERIC_TEXT.split())
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclass(frozen=True)
class ClassText:
    """Names used for one class in captions and zero-shot prompts."""

    index: int
    name: str
    synonyms: tuple[str, ...]


def class_texts() -> list[ClassText]:
    """Every synthetic class (normal first) with its caption names, from the synth SUBTYPES table."""
    from ..synth import SUBTYPES

    out = []
    for s in SUBTYPES:
        display = s.display.replace("(synthetic)", "").strip().lower()
        names = tuple(dict.fromkeys([*s.synonyms, display, s.name.replace("_", " ")]))
        out.append(ClassText(s.index, s.name, names))
    return out


def captions_for(ct: ClassText) -> list[str]:
    """Every synonym x template caption of a class."""
    return [t.replace("CLASSNAME", syn) for syn in ct.synonyms for t in TEMPLATES]


def basic_words(text: str) -> list[str]:
    """Lower-cased words as BERT's basic tokenizer splits them (whitespace and punctuation)."""
    out, cur = [], ""
    for ch in text.lower():
        if ch.isspace() or ch in string.punctuation:
            if cur:
                out.append(cur)
            cur = ""
            if ch in string.punctuation:
                out.append(ch)
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out


def build_vocab(texts: Sequence[str], extra: Sequence[str] = GENERIC_WORDS) -> list[str]:
    """WordPiece vocabulary: specials, characters and ##characters (so nothing is [UNK]), then every word of
    `texts`, the filler words and `extra`, in a deterministic order."""
    vocab = list(SPECIALS) + list(string.punctuation) + list(string.digits) + list(string.ascii_lowercase)
    vocab += ["##" + c for c in string.ascii_lowercase + string.digits]
    words: dict[str, None] = {}
    for t in texts:
        for w in basic_words(t):
            words.setdefault(w, None)
    for w in [*FILLER, "x", *extra]:
        for piece in basic_words(w):
            words.setdefault(piece, None)
    seen = set(vocab)
    vocab += [w for w in words if w not in seen]
    return vocab


def render_pool(n_per_class: int, seed: int, out_size: int, tile_size: int = 224,
                kinds: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Render `n_per_class` tiles per class at `tile_size` px / 0.5 um/px, resized to `out_size` exactly as
    the backbone's preprocessing does, kept as uint8 [N, out, out, 3]. Returns (tiles, labels)."""
    from ..synth import SUBTYPES, render_patch

    kinds = list(range(len(SUBTYPES))) if kinds is None else list(kinds)
    resize = Preprocess(resize=out_size, crop=out_size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    rng = np.random.default_rng(seed)
    tiles = np.empty((n_per_class * len(kinds), out_size, out_size, 3), dtype=np.uint8)
    labels = np.empty(n_per_class * len(kinds), dtype=np.int64)
    i = 0
    for rep in range(n_per_class):
        for k in kinds:
            tile = render_patch(k, size=tile_size, rng=rng)
            x = resize(tile)[0].permute(1, 2, 0).mul(255.0).round().clamp(0, 255)
            tiles[i], labels[i] = x.to(torch.uint8).numpy(), k
            i += 1
        if (rep + 1) % 50 == 0:
            log.info("rendered %d/%d tiles per class", rep + 1, n_per_class)
    return tiles, labels


def cached_pool(cache: Path | None, n_per_class: int, seed: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Tiles cut from realistic synthetic slides (`world.render_world_pool`), memoised in
    `cache/world_pool_<n>_<seed>_<size>.npz` when a cache folder is given."""
    from .world import render_world_pool

    if cache is None:
        return render_world_pool(n_per_class, seed, out_size)
    path = Path(cache) / f"world_pool_{n_per_class}_{seed}_{out_size}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["tiles"], z["labels"]
    tiles, labels = render_world_pool(n_per_class, seed, out_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, tiles=tiles, labels=labels)
    tmp.replace(path)
    return tiles, labels


def normalise(tiles_u8: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> normalised float [B, 3, H, W]."""
    x = tiles_u8.permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def zero_shot_classifier(model: Backbone, classes: Sequence[ClassText]) -> torch.Tensor:
    """Prompt-ensemble classifier [C, D]: mean of L2-normalised synonym x template embeddings, L2-normalised."""
    rows = []
    for ct in classes:
        e = model.encode_text(captions_for(ct))
        rows.append(torch.nn.functional.normalize(e.mean(0), dim=0))
    return torch.stack(rows)


@torch.no_grad()
def evaluate_zero_shot(model: Backbone, tiles: np.ndarray, labels: np.ndarray, kinds: Sequence[int],
                       batch: int = 128) -> dict[str, object]:
    """Zero-shot tile classification among `kinds`: per-class recall, balanced accuracy, confusion matrix."""
    classes = [c for c in class_texts() if c.index in kinds]
    w = zero_shot_classifier(model, classes)
    keep = np.isin(labels, kinds)
    x_all, y = tiles[keep], labels[keep]
    pp = model.preprocess
    preds = []
    for i in range(0, len(y), batch):
        x = normalise(torch.from_numpy(x_all[i : i + batch]), pp.mean, pp.std)
        preds.append((model.encode_image(x) @ w.T).argmax(1).numpy())
    pred = np.asarray([classes[j].index for j in np.concatenate(preds)])
    cm = np.zeros((len(kinds), len(kinds)), dtype=int)
    pos = {k: i for i, k in enumerate(kinds)}
    for t, p in zip(y, pred, strict=True):
        cm[pos[int(t)], pos[int(p)]] += 1
    recall = {c.name: float(cm[i, i] / max(1, cm[i].sum())) for i, c in enumerate(classes)}
    return {"classes": [c.name for c in classes], "recall": recall,
            "balanced_accuracy": float(np.mean(list(recall.values()))), "confusion": cm.tolist(),
            "n_tiles": int(len(y))}
