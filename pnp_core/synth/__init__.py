"""Differentiable synthesizers, by name.

>>> from pnp_core.synth import get_synth
>>> g = get_synth("ftm", sr=22050, n_samples=2**13)
>>> x = g(theta)            # theta (B, 5) physical units → x (B, 8192)

Importing this package registers the built-in synthesizers ``ftm`` and ``amfm``.
"""

from pnp_core.synth.base import SYNTHS, Synth
from pnp_core.synth import amfm, ftm  # noqa: F401  (register built-ins)


def get_synth(name: str, **settings) -> Synth:
    """Instantiate the synthesizer registered as ``name`` with config ``settings``."""
    return SYNTHS.create(name, **settings)


__all__ = ["SYNTHS", "Synth", "get_synth"]
