"""Features: per-slide h5 store (CLAM/TRIDENT/PathPT compatible) and batched extraction."""

from .store import (
    CoordsFile,
    FeatureFile,
    feature_attrs,
    grid_coords_attrs,
    grid_from_coords,
    is_valid,
    read_coords,
    read_features,
    stale_reason,
    write_coords,
    write_features,
)

__all__ = [
    "CoordsFile",
    "FeatureFile",
    "feature_attrs",
    "grid_from_coords",
    "grid_coords_attrs",
    "is_valid",
    "read_coords",
    "read_features",
    "stale_reason",
    "write_coords",
    "write_features",
]
