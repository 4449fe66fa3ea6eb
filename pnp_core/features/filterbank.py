"""Filter design for our joint time–frequency scattering (JTFS).

Everything here is plain NumPy (float64 / complex128) and runs once per
setting; :mod:`pnp_core.features.jtfs` turns the result into cached torch
tensors. Only kymatio 0.3.0's *filter designs* are reused (``morlet_1d``,
``gauss_1d``, ``compute_params_filterbank``, ``compute_temporal_support``,
``compute_padding``, ``compute_border_indices``); its filter levels
(``periodize_filter_fourier`` is a *mean* fold, kymatio issue #984), its
subsampling rule (``get_max_dyadic_subsampling`` uses ξ, not |ξ|) and its
torch backend are not used.

Conventions
-----------
* Frequencies are normalised (cycles per sample, Nyquist 0.5); arrays in the
  Fourier domain are on the ``np.fft.fftfreq`` grid.
* σ0 = 0.1: a lowpass of "width" T has Gaussian frequential width σ0/T.
* Filters are L1-normalised in time by ``morlet_1d`` (lowpass DC gain 1), then
  the wavelets of a bank are rescaled together so that the peak of their
  Littlewood–Paley sum Σ|ψ̂|² equals a design value (2 for analytic time
  wavelets, 1 for up+down frequential wavelets): the 'l1-energy'
  normalisation of the paper's JTFS (kymatio PR #674).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from kymatio.scattering1d.filter_bank import (compute_params_filterbank, compute_temporal_support,
                                              gauss_1d, morlet_1d)
from kymatio.scattering1d.utils import compute_border_indices, compute_padding

SIGMA0 = 0.1
#: alias tolerance of the max-subsampling rule, |ξ| + ασ < 2^-(j+1) (kymatio 0.3.0 / main)
ALPHA = 5.0
#: L1 tail criterion of temporal supports (kymatio's default)
CRITERION = 1e-3
#: Littlewood–Paley peak of the analytic time wavelets (Σ over ω > 0 of |ψ̂|²)
LP_PEAK_TIME = 2.0
#: Littlewood–Paley peak of the frequential wavelets, up and down spins together
LP_PEAK_FREQ = 1.0


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def max_dyadic_subsampling(xi: float, sigma: float, alpha: float = ALPHA) -> int:
    """Largest j such that a filter at ±ξ of width σ survives subsampling by 2^j.

    Uses |ξ| so that negative-frequency (spin down) filters get the same j as
    their mirror images; kymatio 0.3.0's rule uses ξ and fails for them.
    """
    upper = min(abs(xi) + alpha * sigma, 0.5)
    return int(math.floor(-math.log2(upper))) - 1


def fold_levels(h_f: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Lower-resolution copies of Fourier-domain filters by a **sum** fold.

    Level k is the length-N Fourier array cut into 2^k blocks of length N/2^k
    and summed: the DFT of the time-subsampled filter h(2^k t) times 2^k. It is
    what a signal already subsampled by 2^k must be convolved with so that the
    Riemann sum keeps the filter's DC gain (a mean fold would divide it by 2^k,
    the kymatio 0.3.0 bug).

    Parameters
    ----------
    h_f : ndarray, shape (..., N)
        Filters in the Fourier domain, N divisible by 2^(n_levels-1).
    n_levels : int
        Number of levels, k = 0 … n_levels-1.

    Returns
    -------
    list of ndarray, level k of shape (..., N / 2^k), same dtype as ``h_f``.
    """
    N = h_f.shape[-1]
    levels = []
    for k in range(n_levels):
        if N % 2**k:
            raise ValueError(f"cannot fold a length-{N} filter to level {k}")
        levels.append(h_f.reshape(*h_f.shape[:-1], 2**k, N // 2**k).sum(axis=-2))
    return levels


def make_analytic(h_f: np.ndarray) -> np.ndarray:
    """Zero the negative frequencies (and Nyquist) of Fourier-domain filters, shape (..., N)."""
    out = np.array(h_f, copy=True)
    out[..., h_f.shape[-1] // 2:] = 0.0
    return out


def littlewood_paley(filters_f: np.ndarray) -> np.ndarray:
    """Σ_n |ψ̂_n(ω)|², shape (N,), for filters of shape (n, N)."""
    return (np.abs(filters_f) ** 2).sum(axis=0)


def temporal_support(h_f: np.ndarray, criterion: float = CRITERION) -> int:
    """Half temporal support (samples) of a centred filter given in Fourier, shape (N,).

    kymatio's estimate; it warns and returns N/2 when the filter does not decay
    within the grid, which we accept silently (callers cap it anyway).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return int(compute_temporal_support(np.asarray(h_f).reshape(1, -1),
                                            criterion_amplitude=criterion))


# ---------------------------------------------------------------------------
# time: padding and wavelet banks
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TimePadding:
    """Padding of the time axis and the unpadding indices at every stride.

    Attributes
    ----------
    N, N_pad : int
        Input and padded lengths (N_pad a power of two).
    pad_left, pad_right : int
    ind_start, ind_end : dict[int, int]
        The input occupies ``[ind_start[k], ind_end[k])`` at stride 2^k.
    """
    N: int
    N_pad: int
    pad_left: int
    pad_right: int
    ind_start: dict
    ind_end: dict


def time_padding(N: int, log2_T: int, J: int, max_pad_factor: int | None) -> TimePadding:
    """Padded length: room for 3 supports of the lowpass φ_T, capped.

    J_pad = min(⌈log2(N + 2·min_to_pad)⌉, ⌊log2(3N-2)⌋, ⌈log2 N⌉ + max_pad_factor),
    with min_to_pad = 3 × half-support of φ_T (kymatio 0.3.0's rule) and at least
    ⌈log2 N⌉. The cap ⌊log2(3N-2)⌋ keeps each side's padding < N (reflect needs it);
    ``max_pad_factor`` is the paper's cap (1 ⇒ at most one extra octave).
    """
    T = 2**log2_T
    J_ceil = int(math.ceil(math.log2(N)))
    grid = 2 ** (max(J_ceil, log2_T) + 2)   # long enough for φ_T to decay
    min_to_pad = 3 * temporal_support(gauss_1d(grid, SIGMA0 / T))
    J_pad = min(int(math.ceil(math.log2(N + 2 * min_to_pad))), int(math.floor(math.log2(3 * N - 2))))
    if max_pad_factor is not None:
        J_pad = min(J_pad, J_ceil + int(max_pad_factor))
    J_pad = max(J_pad, J_ceil, log2_T)
    N_pad = 2**J_pad
    pad_left, pad_right = compute_padding(N_pad, N)
    ind_start, ind_end = compute_border_indices(log2_T, max(J, log2_T, J_pad), pad_left, pad_left + N)
    return TimePadding(N, N_pad, pad_left, pad_right, ind_start, ind_end)


@dataclass(frozen=True)
class WaveletBank:
    """A Morlet wavelet bank in the Fourier domain.

    Attributes
    ----------
    xi, sigma : tuple of float
        Centre frequencies (decreasing) and frequential widths.
    j : tuple of int
        Max alias-free dyadic subsampling of each wavelet (|ξ| rule).
    filters : ndarray, shape (n, N), float64
        ψ̂_n on the fftfreq grid, analytic if built so, LP-normalised.
    lp_scale : float
        The common factor applied after L1 normalisation.
    """
    xi: tuple
    sigma: tuple
    j: tuple
    filters: np.ndarray
    lp_scale: float


def time_wavelets(N_pad: int, J: int, Q: int, alpha: float = ALPHA,
                  lp_peak: float = LP_PEAK_TIME) -> WaveletBank:
    """Analytic Morlet bank with Q wavelets per octave down to scale 2^J.

    ξ/σ from kymatio 0.3.0's ``compute_params_filterbank(σ0/2^J, Q, α)``
    (geometric above the elbow, Q-1 constant-bandwidth wavelets below);
    negative frequencies zeroed; all filters scaled by one constant so that
    max_ω Σ|ψ̂|² = ``lp_peak``.
    """
    xis, sigmas, _ = compute_params_filterbank(SIGMA0 / 2**J, Q, alpha)
    js = tuple(max_dyadic_subsampling(x, s, alpha) for x, s in zip(xis, sigmas))
    filters = np.stack([make_analytic(morlet_1d(N_pad, x, s)) for x, s in zip(xis, sigmas)])
    scale = math.sqrt(lp_peak / littlewood_paley(filters).max())
    return WaveletBank(tuple(xis), tuple(sigmas), js, filters * scale, scale)


def lowpass(N: int, width: float) -> np.ndarray:
    """Gaussian lowpass φ̂ of the given width (σ = σ0/width), shape (N,), φ̂(0) = 1."""
    return gauss_1d(N, SIGMA0 / width)


# ---------------------------------------------------------------------------
# frequency (n1 axis)
# ---------------------------------------------------------------------------

def default_J_fr(n_rows_max: int) -> int:
    """The paper's default J_fr from the largest second-order stack height (130 → 6)."""
    scales = int(math.ceil(math.log2(max(n_rows_max, 1))))
    return min(max(scales - 2, 3), scales)


def frequential_params(J_fr: int, Q_fr: int, alpha: float = ALPHA):
    """ξ_fr (> 0, decreasing), σ_fr, j_fr of the frequential wavelets.

    kymatio 0.3.0's design with σ_min = σ0/2^J_fr: for Q_fr = 1 that is
    ξ = 0.35·2^-k, k = 0 … J_fr (J_fr + 1 wavelets), as in the paper.
    """
    xis, sigmas, _ = compute_params_filterbank(SIGMA0 / 2**J_fr, Q_fr, alpha)
    js = tuple(max_dyadic_subsampling(x, s, alpha) for x, s in zip(xis, sigmas))
    return tuple(xis), tuple(sigmas), js


def frequential_width(sigma: float) -> float:
    """Full temporal width 2σ0/σ of a frequential wavelet (rows of the n1 axis).

    The lowpass of width T has σ = σ0/T; a wavelet of width σ spans ≈ σ0/σ
    rows on each side of its centre.
    """
    return 2.0 * SIGMA0 / sigma


def frequential_pad_length(n_rows: int, supports: list[int], max_pad_factor_fr: int | None) -> int:
    """Power-of-two padded length of one n1 stack.

    2^⌈log2(R + 2·max support)⌉, capped at one stack's next power of two times
    2^max_pad_factor_fr (paper: 1, i.e. at most one extra octave). This
    per-stack padding is what makes the paper's JTFS cheap for short stacks.
    """
    J_ceil = int(math.ceil(math.log2(max(n_rows, 1))))
    J_pad = int(math.ceil(math.log2(n_rows + 2 * max(supports, default=0))))
    if max_pad_factor_fr is not None:
        J_pad = min(J_pad, J_ceil + int(max_pad_factor_fr))
    return 2 ** max(J_pad, J_ceil, 1)


def padding_matrix(n_rows: int, L: int, mode: str) -> tuple[np.ndarray, int]:
    """(L, R) matrix that pads a length-R axis to L, centred; returns it and the left pad.

    ``mode``: 'zero' or 'reflect' (mirror without repeating the edge, repeated
    as often as needed).
    """
    left = (L - n_rows) // 2
    right = L - n_rows - left
    P = np.zeros((L, n_rows))
    if mode == "zero":
        P[left + np.arange(n_rows), np.arange(n_rows)] = 1.0
    elif mode == "reflect":
        np_mode = "reflect" if n_rows > 1 else "edge"
        idx = np.pad(np.arange(n_rows), (left, right), mode=np_mode)
        P[np.arange(L), idx] = 1.0
    else:
        raise ValueError(f"pad mode must be 'zero' or 'reflect', got {mode!r}")
    return P, left


def convolution_matrices(filters_f: np.ndarray, n_rows: int, mode: str) -> np.ndarray:
    """Pad → circular convolution → unpad along n1, as one (R, R) matrix per filter.

    The frequential stage of JTFS only ever keeps the R unpadded rows of the
    padded convolution (the paper's aligned, unsubsampled setting), so the whole
    operation is linear in the R input rows: out = H @ stack. Precomputing H
    (exactly, through the same FFTs a padded implementation would use) turns
    the frequential transform into one small matrix product per stack.

    Parameters
    ----------
    filters_f : ndarray, shape (n, L)
        Fourier-domain filters on the padded grid.
    n_rows : int
        R, the stack height.
    mode : {'zero', 'reflect'}

    Returns
    -------
    ndarray, shape (n, R, R), complex128; ``H[f, r_out, r_in]``.
    """
    L = filters_f.shape[-1]
    P, left = padding_matrix(n_rows, L, mode)
    P_f = np.fft.fft(P, axis=0)                                        # (L, R)
    C = np.fft.ifft(filters_f[:, :, None] * P_f[None], axis=1)        # (n, L, R)
    return C[:, left:left + n_rows, :]


@dataclass(frozen=True)
class FrequentialBank:
    """Frequential filters of one n1 stack of height R.

    Attributes
    ----------
    n_rows : int
        R.
    L : int
        Padded length along n1.
    psi_index : tuple of int
        Indices (into the global ξ_fr list) of the wavelets kept for this
        stack: those with width 2σ0/σ ≤ R (the paper's 'exclude').
    H_phi : ndarray, shape (R, R), complex128
        Lowpass φ_F along n1 (no subsampling).
    H_up, H_down : ndarray, shape (n_kept, R, R), complex128
        Spin-up (ξ_fr > 0) and spin-down (ξ_fr < 0) wavelets.
    """
    n_rows: int
    L: int
    psi_index: tuple
    H_phi: np.ndarray
    H_up: np.ndarray
    H_down: np.ndarray


def frequential_bank(n_rows: int, xis, sigmas, F: int, max_pad_factor_fr: int | None,
                     pad_mode_fr: str, lp_scale: float) -> FrequentialBank:
    """Build the n1-axis filters of one stack (see :class:`FrequentialBank`).

    ``lp_scale`` is the common LP factor of the frequential wavelets (from
    :func:`frequential_lp_scale`), so that all stacks share one normalisation.
    """
    keep = tuple(k for k, s in enumerate(sigmas) if frequential_width(s) <= n_rows)
    grid = 2 ** (int(math.ceil(math.log2(max(n_rows, 2)))) + 3)
    supports = [temporal_support(lowpass(grid, F))]
    supports += [temporal_support(morlet_1d(grid, xis[k], sigmas[k])) for k in keep]
    L = frequential_pad_length(n_rows, supports, max_pad_factor_fr)
    phi = lowpass(L, F)[None]
    up = np.stack([morlet_1d(L, xis[k], sigmas[k]) for k in keep]) * lp_scale if keep else np.zeros((0, L))
    down = up[:, (-np.arange(L)) % L]   # ψ̂_down(ω) = ψ̂_up(-ω)
    return FrequentialBank(n_rows, L, keep,
                           convolution_matrices(phi, n_rows, pad_mode_fr)[0],
                           convolution_matrices(up, n_rows, pad_mode_fr),
                           convolution_matrices(down, n_rows, pad_mode_fr))


def frequential_lp_scale(L: int, xis, sigmas, lp_peak: float = LP_PEAK_FREQ) -> float:
    """Factor making max_ω Σ_{up, down} |ψ̂_fr|² = ``lp_peak`` on a grid of length L."""
    up = np.stack([morlet_1d(L, x, s) for x, s in zip(xis, sigmas)])
    down = up[:, (-np.arange(L)) % L]
    return math.sqrt(lp_peak / (littlewood_paley(up) + littlewood_paley(down)).max())
