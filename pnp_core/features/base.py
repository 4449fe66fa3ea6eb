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

    @classmethod
    def check_settings(cls, n_samples: int, **settings) -> None:
        """Raise ``ValueError``/``TypeError`` for settings the constructor would refuse.

        Config validation calls this for every configured feature, so a bad value
        fails at load, not in the first job. The default constructs the feature;
        a feature whose construction is costly (a filter bank) overrides it with
        its argument checks alone.
        """
        cls(n_samples=n_samples, **settings)

    @abc.abstractmethod
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N) → Φ(x) (B, K), same dtype and device as x."""

    @property
    @abc.abstractmethod
    def n_coefficients(self) -> int:
        """K, the length of the flat feature vector."""

    def jacobian_columns(self, x: torch.Tensor, dx: torch.Tensor, *, method: str = "vmap",
                         chunk: int | None = None) -> torch.Tensor:
        """Forward-mode products ∂Φ(x)·ẋ_p for P tangents at once.

        The Jacobian stage calls this hook; the default pushes the tangents through
        ``torch.func.jvp``, either in a Python loop (``method='jvp'``: least memory, the
        primal recomputed P times) or vmapped ``chunk`` at a time (``'vmap'``). A
        feature with a cheaper way (sharing the primal's intermediate results across
        tangents) overrides it.

        Parameters
        ----------
        x : Tensor (B, N)
        dx : Tensor (P, B, N), like ``x``
        method : {'jvp', 'vmap'}
        chunk : tangents per vmapped pass (None = all P)

        Returns
        -------
        Tensor (B, K, P): column p is ∂Φ(x)·dx[p]
        """
        if method == "jvp":
            return torch.stack([torch.func.jvp(self, (x,), (d,))[1] for d in dx], dim=-1)
        P = dx.shape[0]
        chunk = None if chunk is None or chunk >= P else int(chunk)
        push = torch.func.vmap(lambda d: torch.func.jvp(self, (x,), (d,))[1], chunk_size=chunk)
        return push(dx).permute(1, 2, 0)

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
