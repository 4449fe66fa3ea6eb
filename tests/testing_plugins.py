"""Test-only synthesizer and features, registered on import (used by several test files)."""

from __future__ import annotations

import math

import torch

from pnp_core.features import FEATURES, Feature
from pnp_core.params import Param, ParamSpace
from pnp_core.synth import SYNTHS, Synth


@FEATURES.register("_test_power")
class PowerSpectrogram(Feature):
    """log1p(|STFT|²/ε): smooth everywhere (no |z| kink), so finite differences converge."""

    def __init__(self, n_samples: int, n_fft: int = 256) -> None:
        self.n_samples, self.n_fft = n_samples, n_fft

    def __call__(self, x):
        win = torch.hann_window(self.n_fft, dtype=x.dtype, device=x.device)
        X = torch.stft(x, self.n_fft, hop_length=self.n_fft // 4, window=win, center=False,
                       return_complex=True)
        return torch.log1p(torch.view_as_real(X).pow(2).sum(-1) / 1e-3).flatten(1)

    @property
    def n_coefficients(self) -> int:
        return (self.n_fft // 2 + 1) * (1 + (self.n_samples - self.n_fft) // (self.n_fft // 4))


@FEATURES.register("_test_identity")
class Identity(Feature):
    def __init__(self, n_samples: int) -> None:
        self.n_samples = n_samples

    def __call__(self, x):
        return x

    @property
    def n_coefficients(self) -> int:
        return self.n_samples


@SYNTHS.register("_test_sqrt")
class SqrtSynth(Synth):
    """x(t) = √(a − 1.5)·sin(2π b t): NaN for a < 1.5, infinite ∂x/∂a at a = 1.5."""

    space = ParamSpace([Param("a", "1", 1.0, 2.0), Param("b", "Hz", 1.0, 10.0, log=True)])

    def __init__(self, sr: int = 100, n_samples: int = 64) -> None:
        self.sr, self.n_samples = sr, n_samples

    def synthesize(self, theta):
        a, b = theta[:, :1], theta[:, 1:]
        return torch.sqrt(a - 1.5) * torch.sin(2 * math.pi * b * self.time(theta))


