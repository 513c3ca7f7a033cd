"""Vision-language backbones: one registry (KEEP native, HF CLIP family, the shipped demo model)."""

from .base import Backbone, Preprocess, PromptLayout
from .registry import BackboneSpec, available_backbones, get_spec, load_backbone, resolve_weights

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Preprocess",
    "PromptLayout",
    "available_backbones",
    "get_spec",
    "load_backbone",
    "resolve_weights",
]
