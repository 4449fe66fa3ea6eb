"""FTM rectangular membrane drum (Han et al.; docs/paper.md).

θ = (ω₁, τ₁, p, D, α): fundamental angular frequency (rad/s), its decay time
(s), frequency-dependent damping, dispersion (inharmonicity) and side-length
ratio. The functional transformation method gives the membrane's modal solution

    y(t) = Σ_{μ,ν} (a_{μν} K_{μν} / N) e^{−σ_{μν} t} sin(ω_{μν} t),

summed over an M₁ × M₂ grid of modes (10 × 10 in the paper), then
peak-normalised to max|y| = 1. For mode (1, 1) the formulas give exactly
ω₁₁ = ω₁ and σ₁₁ = 1/τ₁.

Two deliberate differences from the reference implementation:

* **Nyquist.** The reference truncates the whole mode grid to a rectangle
  (drops entire rows/columns of modes) as soon as any mode in them exceeds
  Nyquist. Here every mode is masked *individually*: a mode contributes iff
  ω_{μν} < π·sr. This keeps every mode below Nyquist, and the mask is a
  `torch.where`, so it is vmap/jacfwd-safe (the mask itself has zero derivative).
* **Time grid.** t_n = n / sr; the reference used ``linspace(0, N, N)/sr``
  (step N/(N−1) samples).
"""

from __future__ import annotations

import math

import torch

from pnp_core.params import Param, ParamSpace
from pnp_core.synth.base import SYNTHS, Synth

TWO_PI = 2.0 * math.pi


@SYNTHS.register("ftm")
class FTMDrum(Synth):
    """Rectangular drum; settings: ``sr``, ``n_samples``, ``modes`` (M₁ = M₂).

    Parameters
    ----------
    sr : int
        Sample rate in Hz (paper: 22050).
    n_samples : int
        Output length N (paper: 2**16).
    modes : int
        Modes per axis (paper: 10, i.e. 100 modes).
    mode_chunk : int
        Modes summed per chunk; bounds memory at (B, mode_chunk, N).
    """

    space = ParamSpace([
        Param("omega", "rad/s", TWO_PI * 40.0, TWO_PI * 1000.0, log=True,
              description="fundamental angular frequency ω₁ (f₁ = 40…1000 Hz)"),
        Param("tau", "s", 0.07, 0.8, description="decay time τ₁ of the fundamental"),
        Param("p", "1", 1e-5, 0.2, log=True, description="frequency-dependent damping"),
        Param("D", "1", 1e-5, 0.3, log=True, description="dispersion (inharmonicity)"),
        Param("alpha", "1", 1e-5, 1.0, description="side-length ratio l₂/l₁"),
    ])

    #: constants of the reference model
    L0 = math.pi      # first side length l₀
    X_POS = 0.4       # excitation / pick-up position (relative)
    H = 0.03          # excitation amplitude

    def __init__(self, sr: int = 22050, n_samples: int = 2**16, modes: int = 10,
                 mode_chunk: int = 25) -> None:
        if sr <= 0 or n_samples <= 0 or modes <= 0 or mode_chunk <= 0:
            raise ValueError("ftm: sr, n_samples, modes and mode_chunk must be positive")
        self.sr, self.n_samples, self.modes, self.mode_chunk = int(sr), int(n_samples), int(modes), int(mode_chunk)

    def settings(self) -> dict:
        return {**super().settings(), "modes": self.modes}

    def modal(self, theta: torch.Tensor):
        """Per-mode (amplitude, decay rate σ, angular frequency ω), each (B, M₁·M₂)."""
        omega, tau, p, D, alpha = theta.unbind(-1)
        omega, tau, p, D, alpha = (v.unsqueeze(-1) for v in (omega, tau, p, D, alpha))
        l0, pi = self.L0, math.pi
        idx = torch.arange(1, self.modes + 1, dtype=theta.dtype, device=theta.device)
        mu = idx.repeat_interleave(self.modes)  # μ slow, ν fast: mode (μ, ν) at μ·M + ν
        nu = idx.repeat(self.modes)

        l2 = l0 * alpha
        beta = alpha + 1.0 / alpha
        S = (l0 / pi) * ((D * omega * alpha) ** 2 + (p * alpha / tau) ** 2) ** 0.25
        EI = S ** 4
        c_sq = (l0 / pi) ** 2 * (alpha * (1.0 / beta - p ** 2 * beta) / tau ** 2
                                 + alpha * omega ** 2 * (1.0 / beta - D ** 2 * beta))
        d1 = 2.0 * (1.0 - p * beta) / tau
        d3 = -2.0 * p * alpha * (l0 / pi) ** 2 / tau

        n = (mu * pi / l0) ** 2 + (nu * pi / l2) ** 2
        b = EI * n ** 2 + c_sq * n
        sigma = (d1 - d3 * n) / 2.0
        w = torch.sqrt(torch.abs(b - sigma ** 2))
        K = torch.sin(mu * pi * self.X_POS) * torch.sin(nu * pi * self.X_POS)
        N = l0 * l2 / 4.0
        amp = self.H * K ** 2 / (w * N)
        return amp, sigma, w

    def masked_modal(self, theta: torch.Tensor):
        """:meth:`modal` with the amplitude of every mode at or above Nyquist set to 0.

        The per-mode mask ω < π·sr (f < sr/2) is a ``torch.where``, so its derivative
        is 0 and it is safe under vmap/jvp.
        """
        amp, sigma, w = self.modal(theta)
        amp = torch.where(w < math.pi * self.sr, amp, torch.zeros_like(amp))
        return amp, sigma, w

    def _damped_sums(self, sigma, w, t, c_sin, c_cos=None):
        """Σ_m c[:, :, m] e^{−σ_m t} sin(ω_m t) (and the same with cos), over mode chunks.

        sigma, w: (B, M); t: (N,); c_sin: (B, C, M); c_cos: (B, C', M) or None.
        Returns (B, C, N) and (B, C', N) or None. Memory is bounded by
        (B, mode_chunk, N) per chunk.
        """
        acc_s = acc_c = None
        for m0 in range(0, sigma.shape[-1], self.mode_chunk):
            sl = slice(m0, m0 + self.mode_chunk)
            E = torch.exp(-sigma[:, sl, None] * t)
            phase = w[:, sl, None] * t
            part = c_sin[..., sl] @ (E * torch.sin(phase))
            acc_s = part if acc_s is None else acc_s + part
            if c_cos is not None:
                part = c_cos[..., sl] @ (E * torch.cos(phase))
                acc_c = part if acc_c is None else acc_c + part
        return acc_s, acc_c

    def synthesize(self, theta: torch.Tensor) -> torch.Tensor:
        amp, sigma, w = self.masked_modal(theta)
        y = self._damped_sums(sigma, w, self.time(theta), amp.unsqueeze(1))[0][:, 0]
        peak = y.abs().amax(dim=-1, keepdim=True)
        return y / peak

    def tangents(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x = g(θ) and its analytic derivatives ∂x/∂θ_p (about 8× cheaper than autodiff).

        With per-mode amplitude a_m, decay σ_m and frequency ω_m (:meth:`masked_modal`,
        differentiated by forward-mode autodiff: (B, M) tensors, cheap), the
        unnormalised signal y = Σ_m a_m e^{−σ_m t} sin(ω_m t) has

            ∂y/∂θ_p = Σ_m ȧ_mp E_m S_m + t·Σ_m (−a_m σ̇_mp E_m S_m + a_m ω̇_mp E_m C_m),

        E = e^{−σt}, S = sin ωt, C = cos ωt: batched matrix products over the modes, in
        the same chunks as :meth:`synthesize`. The peak normalisation x = y/max|y| gives
        ẋ = ẏ/peak − y·sign(y_k)ẏ_k/peak² at the peak sample k.

        Parameters
        ----------
        theta : Tensor (B, 5), physical units

        Returns
        -------
        x : Tensor (B, N)
        dx : Tensor (5, B, N), ∂x/∂θ_p, dtype/device of θ
        """
        B, P = theta.shape
        basis = torch.eye(P, dtype=theta.dtype, device=theta.device).unsqueeze(1).expand(P, B, P)
        (amp, sig, w), (amp_d, sig_d, w_d) = torch.func.vmap(
            lambda v: torch.func.jvp(self.masked_modal, (theta,), (v,)), out_dims=(None, 0))(basis)
        t = self.time(theta)
        # coefficients (B, ·, M): [a; ȧ; −a σ̇] multiply E·S, a ω̇ multiplies E·C
        c_es = torch.cat([amp.unsqueeze(0), amp_d, -amp * sig_d], dim=0).permute(1, 0, 2)
        c_ec = (amp * w_d).permute(1, 0, 2)
        acc_s, acc_c = self._damped_sums(sig, w, t, c_es, c_ec)
        y = acc_s[:, 0]                                          # (B, N)
        dy = acc_s[:, 1:P + 1] + t * (acc_s[:, P + 1:] + acc_c)  # (B, P, N)
        peak, k = y.abs().max(dim=-1, keepdim=True)              # (B, 1)
        dpeak = torch.sign(torch.gather(y, -1, k)).unsqueeze(1) \
            * torch.gather(dy, -1, k.unsqueeze(1).expand(B, P, 1))  # (B, P, 1)
        x = y / peak
        dx = dy / peak.unsqueeze(1) - y.unsqueeze(1) * dpeak / peak.unsqueeze(1) ** 2
        return x, dx.permute(1, 0, 2)
