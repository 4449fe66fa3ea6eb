"""The feature-map interface Φ and its registry, plus log compression."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from pnp_core.registry import Registry


class Feature(abc.ABC):
    """An auditory feature map Φ: audio (B, N) → coefficients (B, K).

    Pure torch ops on the device and dtype of the input, so that
    ``torch.func.jvp``/``jacfwd``/``vmap`` work through it. Constructor keyword
    arguments are settings from config; ``n_samples`` (the input length N) is
    always passed. Register a new feature with ``@FEATURES.register("name")``.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N) → Φ(x) (B, K), same dtype and device as x."""

    @property
    @abc.abstractmethod
    def n_coefficients(self) -> int:
        """K, the length of the flat feature vector."""

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample Euclidean distance ‖Φ(x) − Φ(y)‖₂, shape (B,)."""
        return torch.linalg.vector_norm(self(x) - self(y), dim=-1)


FEATURES: Registry[Feature] = Registry("feature")


def log1p_compress(S: torch.Tensor, eps: float) -> torch.Tensor:
    """log(1 + S/ε), with S clamped at 0 first.

    Clamping makes the compression safe for signed inputs (a zeroth-order
    scattering coefficient, or FFT round-off of −1e−10 in a non-negative path),
    which would otherwise give log1p(x < −1) = NaN. The clamp's derivative is 0
    for S < 0 and 1 for S > 0, so gradients stay finite.
    """
    if eps <= 0:
        raise ValueError(f"log compression eps must be > 0, got {eps}")
    return torch.log1p(torch.clamp(S, min=0.0) / eps)
