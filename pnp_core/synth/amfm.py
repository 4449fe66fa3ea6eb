"""AM/FM arpeggiator ("amchirp"; docs/paper.md).

θ = (f_c, f_m, γ): carrier frequency at t = 0 (Hz), amplitude-modulation rate
(Hz) and chirp rate (octaves/s). On t ∈ [−T/2, T/2) (step 1/sr),

    x(t) = γ · sin(2π f_c (2^{γt} − 1) / (γ ln 2)) · sin(2π f_m t) · w(t),

an exponential chirp of instantaneous frequency f_c·2^{γt}, amplitude-modulated
at f_m, under a Gaussian window w of standard deviation σ₀·bw/γ seconds
(σ₀ = 0.1, bw = 2 octaves) centred on sample (N−1)/2, as in the reference. The
factor γ roughly equalises energy across chirp rates. No peak normalisation.
"""

from __future__ import annotations

import math

import torch

from pnp_core.params import Param, ParamSpace
from pnp_core.synth.base import SYNTHS, Synth


@SYNTHS.register("amfm")
class AMFMChirp(Synth):
    """AM/FM arpeggiator; settings ``sr`` (paper 8192 Hz) and ``n_samples`` (paper 4 s = 32768)."""

    space = ParamSpace([
        Param("f_c", "Hz", 512.0, 1024.0, log=True, description="carrier frequency at t = 0"),
        Param("f_m", "Hz", 4.0, 16.0, log=True, description="amplitude-modulation rate"),
        Param("gamma", "oct/s", 0.5, 4.0, log=True, description="chirp rate"),
    ])

    SIGMA0 = 0.1
    BANDWIDTH = 2.0  # octaves

    def __init__(self, sr: int = 8192, n_samples: int = 4 * 8192) -> None:
        if sr <= 0 or n_samples <= 0:
            raise ValueError("amfm: sr and n_samples must be positive")
        self.sr, self.n_samples = int(sr), int(n_samples)

    def time(self, ref: torch.Tensor) -> torch.Tensor:
        """t ∈ [−N/2, N/2)/sr, shape (N,)."""
        return (torch.arange(self.n_samples, dtype=ref.dtype, device=ref.device)
                - self.n_samples // 2) / self.sr

    def synthesize(self, theta: torch.Tensor) -> torch.Tensor:
        f_c, f_m, gamma = (v.unsqueeze(-1) for v in theta.unbind(-1))
        t = self.time(theta)
        phase = 2.0 * math.pi * f_c * (torch.exp2(gamma * t) - 1.0) / (gamma * math.log(2.0))
        carrier = torch.sin(phase)
        modulator = torch.sin(2.0 * math.pi * f_m * t)
        centre = (self.n_samples - 1) / 2.0
        n = torch.arange(self.n_samples, dtype=theta.dtype, device=theta.device)
        std = self.SIGMA0 * self.BANDWIDTH / gamma * self.sr  # samples
        window = torch.exp(-0.5 * ((n - centre) / std) ** 2)
        return gamma * carrier * modulator * window
