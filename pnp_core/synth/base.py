"""The synthesizer interface and its registry."""

from __future__ import annotations

import abc
from typing import ClassVar

import torch

from pnp_core.params import ParamSpace
from pnp_core.registry import Registry


class Synth(abc.ABC):
    """A differentiable synthesizer g: θ (B, P) → audio (B, N).

    Subclasses set :attr:`space` (class attribute) and implement
    :meth:`synthesize` with pure torch ops on the device and dtype of θ, so that
    ``torch.func.jacfwd``/``jvp``/``vmap`` work through it. Constructor keyword
    arguments are the synthesizer's settings from config (sample rate, length,
    …). Register a new synthesizer with ``@SYNTHS.register("name")``.
    """

    name: ClassVar[str]
    space: ClassVar[ParamSpace]
    sr: int
    n_samples: int

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Synthesize; θ is (B, P) or (P,) in physical units, returns (B, N) or (N,)."""
        if theta.shape[-1] != len(self.space):
            raise ValueError(f"{self.name}: θ has {theta.shape[-1]} columns, expected "
                             f"{len(self.space)} ({', '.join(self.space.names)})")
        if not theta.is_floating_point():
            raise TypeError(f"{self.name}: θ must be a floating-point tensor, got {theta.dtype}")
        if theta.ndim == 1:
            return self.synthesize(theta.unsqueeze(0)).squeeze(0)
        return self.synthesize(theta)

    @abc.abstractmethod
    def synthesize(self, theta: torch.Tensor) -> torch.Tensor:
        """θ (B, P) physical units → x (B, N), same dtype/device as θ."""

    def tangents(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = g(θ) and its derivatives ∂x/∂θ_p, for the Jacobian stage.

        The default is forward-mode autodiff (``torch.func.jvp`` vmapped over the P
        basis tangents). A synthesizer with a cheaper analytic form overrides it; the
        Jacobian stage checks an override against :meth:`synthesize` on first use.

        Parameters
        ----------
        theta : Tensor (B, P), physical units

        Returns
        -------
        x : Tensor (B, N)
        dx : Tensor (P, B, N), ∂x/∂θ_p, dtype and device of θ
        """
        B, P = theta.shape
        basis = torch.eye(P, dtype=theta.dtype, device=theta.device).unsqueeze(1).expand(P, B, P)
        return torch.func.vmap(lambda v: torch.func.jvp(self.synthesize, (theta,), (v,)),
                               out_dims=(None, 0))(basis)

    @property
    def has_own_tangents(self) -> bool:
        """Whether the class overrides :meth:`tangents` (e.g. analytic derivatives)."""
        return type(self).tangents is not Synth.tangents

    def time(self, ref: torch.Tensor) -> torch.Tensor:
        """Sample times t_n = n / sr in seconds, shape (N,), like ``ref``."""
        return torch.arange(self.n_samples, dtype=ref.dtype, device=ref.device) / self.sr

    def settings(self) -> dict:
        return {"sr": self.sr, "n_samples": self.n_samples}


SYNTHS: Registry[Synth] = Registry("synthesizer")
