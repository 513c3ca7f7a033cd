"""Tile labels from the zero-shot classifier W* (method.md §4.2)."""

from __future__ import annotations

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
