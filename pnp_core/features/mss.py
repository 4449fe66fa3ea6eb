"""Multi-scale spectrogram (MSS) feature and distance (DDSP baseline).

For each FFT size n in ``n_ffts`` (paper: 2048, 1024, …, 64): a Hann-windowed
STFT with hop n/4 (``torch.stft``, centred, reflect padding) and linear
magnitude |STFT|. With ``log_weight`` w > 0, each scale also contributes
w·log(|STFT| + ``log_eps``) so that distances add a log-magnitude term.

As a feature map the scales are flattened and concatenated: (B, N) → (B, K).
As a distance it is **per sample**: d(x, y)_b = mean over scales of
‖S_n(x_b) − S_n(y_b)‖_F (plus the log term), unlike the reference, which took
one Frobenius norm over the whole batch (so its loss depended on batch size).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from pnp_core.features.base import FEATURES, Feature

PAPER_N_FFTS = (2048, 1024, 512, 256, 128, 64)


@lru_cache(maxsize=64)
def _hann(n: int, dtype: torch.dtype, device: str) -> torch.Tensor:
    return torch.hann_window(n, dtype=dtype, device=device)


class _SafeAbs(torch.autograd.Function):
    """|z| of a complex tensor, with gradient z/|z| set to 0 where |z| is 0 or denormal.

    torch's own backward of ``abs`` returns NaN on float32 STFT bins whose magnitude
    underflows (silent frames of a windowed sound), which poisoned DDSP-MSS training;
    the values are exactly ``z.abs()``.
    """

    @staticmethod
    def forward(ctx, z):
        mag = z.abs()
        ctx.save_for_backward(z, mag)
        return mag

    @staticmethod
    def backward(ctx, grad):
        z, mag = ctx.saved_tensors
        normal = mag >= torch.finfo(mag.dtype).tiny
        unit = z / torch.where(normal, mag, torch.ones_like(mag))
        return torch.where(normal, grad, torch.zeros_like(grad)) * unit


def _magnitude(z: torch.Tensor) -> torch.Tensor:
    # forward-mode (jvp) and vmap keep torch's own abs; reverse mode gets the safe gradient
    if torch.is_grad_enabled() and z.requires_grad:
        return _SafeAbs.apply(z)
    return z.abs()


@FEATURES.register("mss")
class MultiScaleSpectrogram(Feature):
    """Parameters: ``n_samples`` (input length), ``n_ffts``, ``log_weight``, ``log_eps``."""

    def __init__(self, n_samples: int, n_ffts=PAPER_N_FFTS, log_weight: float = 0.0,
                 log_eps: float = 1e-7) -> None:
        self.n_samples = int(n_samples)
        self.n_ffts = tuple(int(n) for n in n_ffts)
        if not self.n_ffts or any(n < 4 for n in self.n_ffts):
            raise ValueError(f"mss: n_ffts must be non-empty sizes ≥ 4, got {self.n_ffts}")
        if log_weight < 0:
            raise ValueError(f"mss: log_weight must be ≥ 0, got {log_weight}")
        self.log_weight, self.log_eps = float(log_weight), float(log_eps)

    def spectrograms(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Magnitude spectrograms, one (B, n/2+1, frames) tensor per FFT size."""
        out = []
        for n in self.n_ffts:
            window = _hann(n, x.dtype, str(x.device))
            spec = torch.stft(x, n_fft=n, hop_length=n // 4, window=window, center=True,
                              pad_mode="reflect", return_complex=True)
            out.append(_magnitude(spec))
        return out

    def _scale_terms(self, mags: list[torch.Tensor]) -> list[torch.Tensor]:
        terms = [m.flatten(1) for m in mags]
        if self.log_weight > 0:
            terms += [self.log_weight * torch.log(m.flatten(1) + self.log_eps) for m in mags]
        return terms

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self._scale_terms(self.spectrograms(x)), dim=-1)

    @property
    def n_coefficients(self) -> int:
        total = 0
        for n in self.n_ffts:
            total += (n // 2 + 1) * (self.n_samples // (n // 4) + 1)
        return total * (2 if self.log_weight > 0 else 1)

    def distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample distance (B,): mean over scales of the Frobenius norms."""
        tx, ty = self._scale_terms(self.spectrograms(x)), self._scale_terms(self.spectrograms(y))
        norms = [torch.linalg.vector_norm(a - b, dim=-1) for a, b in zip(tx, ty)]
        # mean over scales of (linear-magnitude norm + weighted log-magnitude norm)
        return torch.stack(norms, dim=0).sum(dim=0) / len(self.n_ffts)
