"""Auditory feature maps Φ (B, N) → (B, K), by name.

Importing this package registers the built-in features (``mss``, and ``jtfs``
when its module is present).
"""

from pnp_core.features.base import FEATURES, Feature, log1p_compress
from pnp_core.features import mss  # noqa: F401  (register built-ins)

try:  # the JTFS module registers itself as "jtfs"
    from pnp_core.features import jtfs  # noqa: F401
except ImportError:  # pragma: no cover - only while jtfs.py is being written
    pass


def get_feature(name: str, **settings) -> Feature:
    """Instantiate the feature registered as ``name`` with config ``settings``."""
    return FEATURES.create(name, **settings)


__all__ = ["FEATURES", "Feature", "get_feature", "log1p_compress"]
