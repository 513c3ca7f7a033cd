"""Tile labels from the zero-shot classifier W* (method.md §4.2)."""

from __future__ import annotations

from typing import Any

import torch


def tile_labels(features: torch.Tensor, classifier: torch.Tensor, slide_label: int) -> torch.Tensor:
    """Tile labels for one slide.

    Args:
        features: [N, D] tile embeddings (L2-normalised).
        classifier: W* [C, D], row 0 = Normal.
        slide_label: 0-based subtype index y (model class k = y + 1).

    Returns:
        int64 [N]: 0 where zero-shot says Normal, k where it says the slide's subtype, -k otherwise.
        The argmax is taken over float32 softmax probabilities; ties go to the first index.
    """
    n_classes = classifier.shape[0]
    if not 0 <= slide_label < n_classes - 1:
        raise ValueError(f"slide_label {slide_label} out of range for {n_classes - 1} subtypes")
    k = slide_label + 1
    probs = (features.float() @ classifier.float().T).softmax(dim=-1)
    top = probs.argmax(dim=-1)
    labels = torch.full_like(top, -k)
    labels[top == 0] = 0
    labels[top == k] = k
    return labels


OVERRIDES_KEY = "pathpt.tile_overrides"  # SlideData.attrs: int64 [N], -1 none, c >= 0 a hard class (annotations)


def slide_tile_labels(slide: Any, classifier: torch.Tensor) -> torch.Tensor:
    """`tile_labels` of a SlideData, with annotated tiles (`attrs[OVERRIDES_KEY]` >= 0) set to their hard class.

    Without overrides this is exactly `tile_labels` (same tensor, same values).
    """
    labels = tile_labels(torch.as_tensor(slide.features), classifier, slide.label)
    overrides = slide.attrs.get(OVERRIDES_KEY)
    if overrides is None:
        return labels
    ov = torch.as_tensor(overrides, dtype=torch.int64).reshape(-1)
    if ov.shape != labels.shape:
        raise ValueError(f"slide {slide.slide_id}: {ov.numel()} tile overrides for {labels.numel()} tiles")
    if int(ov.max()) >= classifier.shape[0]:
        raise ValueError(f"slide {slide.slide_id}: tile override class {int(ov.max())} out of range")
    return torch.where(ov >= 0, ov, labels)
