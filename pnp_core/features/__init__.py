"""Auditory feature maps Φ (B, N) → (B, K), by name.

Importing this package registers the built-in features ``mss`` and ``jtfs``.
"""

from pnp_core.features.base import FEATURES, Feature, log1p_compress
from pnp_core.features import jtfs, mss  # noqa: F401  (register built-ins)


def get_feature(name: str, **settings) -> Feature:
    """Instantiate the feature registered as ``name`` with config ``settings``."""
    return FEATURES.create(name, **settings)


__all__ = ["FEATURES", "Feature", "get_feature", "log1p_compress"]
