"""Filter design of our joint time–frequency scattering (JTFS), following the
paper's operator (kymatio PR #674, ``TimeFrequencyScattering1D``).

Everything here is plain NumPy (float64) and runs once per setting;
:mod:`pnp_core.features.jtfs` turns the result into cached torch tensors. The
Morlet and Gaussian generators (``morlet_1d``, ``gauss_1d``: periodised in
Fourier, L1-normalised in time), ``compute_sigma_psi``,
``compute_temporal_support``, ``compute_padding`` and
``compute_border_indices`` are kymatio 0.3.0's; the rest is written here
because 0.3.0 differs from the paper's operator in those places (its ξ_max
and α, its mean-folded filter levels, no analytic filters, no energy
normalisation). ``docs/jtfs.md`` states the design in full.

Conventions
-----------
* Frequencies are normalised (cycles per sample, Nyquist 0.5); Fourier arrays
  are on the ``np.fft.fftfreq`` grid, length M, Nyquist bin M/2.
* σ0 = 0.1: a lowpass of width T has Gaussian frequential width σ0/T.
* Wavelet centre frequencies: ξ_max = max(1/(1 + 2^(1/Q)), 0.4), then
  ξ_{k+1} = 2^(-1/Q) ξ_k, σ_{k+1} = 2^(-1/Q) σ_k while σ > σ_min, then Q-1
  wavelets of width σ_min evenly spaced below the last ξ; alias tolerance
  α = 4 in the max-subsampling rule |ξ| + ασ < 2^-(j+1).
* Time wavelets: energy-normalised (below) on the full Morlet, then made
  analytic: negative frequencies zeroed, the Nyquist bin halved. Lower
  resolutions ("levels") are sum folds of the normalised Morlet, each made
  analytic afterwards.
* Frequential wavelets along the first-order index n1: "down" (spin -1) is the
  analytic Morlet at +ξ, "up" (spin +1) its mirror image (anti-analytic, -ξ);
  Nyquist halved in both. A rising chirp excites *down*: the reference's names.
* 'l1-energy' normalisation: each wavelet is rescaled so that the
  Littlewood–Paley sum Σ|ψ̂|² peaks at 2 (time; analytic bank for real
  input) or 1 (frequential; up + down) in the band around its own peak
  (:func:`lp_normalize`).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from kymatio.scattering1d.filter_bank import (compute_sigma_psi, compute_temporal_support, gauss_1d,
                                              morlet_1d)
from kymatio.scattering1d.utils import compute_border_indices, compute_padding

SIGMA0 = 0.1
#: alias tolerance of the max-subsampling rule, |ξ| + ασ < 2^-(j+1)
ALPHA = 4.0
#: L1 tail criterion of temporal supports (kymatio's default)
CRITERION = 1e-3
#: Littlewood–Paley peak of the time wavelets (analytic bank, real input)
LP_PEAK_TIME = 2.0
#: Littlewood–Paley peak of the frequential wavelets, up and down spins together
LP_PEAK_FREQ = 1.0
#: a Gaussian lowpass of width T falls to this fraction of its peak at lag T:
#: exp(-(2π σ0)² / 2); the reference for :func:`temporal_width`
WIDTH_RATIO = math.exp(-0.5 * (2 * math.pi * SIGMA0) ** 2)


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

def xi_max(Q: int) -> float:
    """Centre frequency of the highest wavelet of a bank with Q per octave."""
    return max(1.0 / (1.0 + 2.0 ** (1.0 / Q)), 0.4)


def max_dyadic_subsampling(xi: float, sigma: float, alpha: float = ALPHA) -> int:
    """Largest j such that a filter at ±ξ of width σ survives subsampling by 2^j.

    |ξ| so that a mirrored (spin up) filter gets the same j as its image.
    """
    upper = min(abs(xi) + alpha * sigma, 0.5)
    return int(math.floor(-math.log2(upper))) - 1


def wavelet_params(sigma_min: float, Q: int, xi_min: float = 0.0, alpha: float = ALPHA):
    """ξ (decreasing), σ and j of a Morlet bank (module docstring).

    Geometric wavelets from ξ_max down while σ > ``sigma_min`` and ξ > ``xi_min``;
    then Q-1 wavelets of width σ_min at ξ_last·(Q-q)/Q, q = 1 … Q-1 (stopping
    below ``xi_min``, which keeps every peak at FFT bin ≥ 2 of the padded grid).
    """
    xi0 = xi_max(Q)
    sigma0 = compute_sigma_psi(xi0, Q)
    xis, sigmas = [], []
    if sigma0 <= sigma_min or xi0 <= xi_min:
        last = sigma0                       # degenerate bank (kept from the reference)
    else:
        xi, sigma, step = xi0, sigma0, 2.0 ** (-1.0 / Q)
        while sigma > sigma_min and xi > xi_min:
            xis.append(xi)
            sigmas.append(sigma)
            xi, sigma = xi * step, sigma * step
        last = xis[-1]
    for q in range(1, Q):
        xi = last * (Q - q) / Q
        if xi < xi_min:
            break
        xis.append(xi)
        sigmas.append(sigma_min)
    js = tuple(max_dyadic_subsampling(x, s, alpha) for x, s in zip(xis, sigmas))
    return tuple(xis), tuple(sigmas), js


def fold_levels(h_f: np.ndarray, n_levels: int) -> list[np.ndarray]:
    """Lower-resolution copies of Fourier-domain filters by a **sum** fold.

    Level k is the length-N array cut into 2^k blocks of length N/2^k and
    summed: the DFT of the time-subsampled filter h(2^k t) times 2^k, the
    filter that a signal already subsampled by 2^k is convolved with (a mean
    fold, kymatio 0.3.0's, would divide the DC gain by 2^k).

    Parameters
    ----------
    h_f : ndarray, shape (..., N), N divisible by 2^(n_levels-1)
    n_levels : int

    Returns
    -------
    list of ndarray, level k of shape (..., N / 2^k)
    """
    N = h_f.shape[-1]
    levels = []
    for k in range(n_levels):
        if N % 2**k:
            raise ValueError(f"cannot fold a length-{N} filter to level {k}")
        levels.append(h_f.reshape(*h_f.shape[:-1], 2**k, N // 2**k).sum(axis=-2))
    return levels


def analytic(h_f: np.ndarray) -> np.ndarray:
    """Negative frequencies zeroed, Nyquist bin halved; shape (..., M), M even."""
    out = np.array(h_f, dtype=float, copy=True)
    M = out.shape[-1]
    out[..., M // 2 + 1:] = 0.0
    out[..., M // 2] /= 2.0
    return out


def mirror(h_f: np.ndarray) -> np.ndarray:
    """ĥ(-ω) on the fftfreq grid (bin 0 kept, bins 1 … M-1 reversed)."""
    return np.concatenate([h_f[..., :1], h_f[..., :0:-1]], axis=-1)


def anti_analytic(h_f: np.ndarray) -> np.ndarray:
    """DC and positive frequencies zeroed, Nyquist bin halved; shape (..., M)."""
    out = np.array(h_f, dtype=float, copy=True)
    M = out.shape[-1]
    out[..., :M // 2] = 0.0
    out[..., M // 2] /= 2.0
    return out


def littlewood_paley(filters_f: np.ndarray) -> np.ndarray:
    """Σ_n |ψ̂_n(ω)|², shape (M,), for filters of shape (n, M)."""
    return (np.abs(np.asarray(filters_f)) ** 2).sum(axis=0)


def temporal_support(h_f: np.ndarray, criterion: float = CRITERION) -> int:
    """Half temporal support (samples) of a centred filter given in Fourier, shape (N,).

    kymatio's estimate; it warns and returns N/2 when the filter does not decay
    within the grid, which we accept silently (callers cap it anyway).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return int(compute_temporal_support(np.asarray(h_f).reshape(1, -1),
                                            criterion_amplitude=criterion))


def temporal_width(h_f: np.ndarray, N: int) -> float:
    """Invariance width of a filter: the lag where its envelope falls like φ_T's at T.

    With p = |ifft(ĥ)|, the width is the lag t < M/2 where p(t)/p(0) is closest
    to :data:`WIDTH_RATIO` (for a Gaussian lowpass of width T that lag is T;
    for a Morlet of width σ it is ≈ σ0/σ). A filter that never decays that far
    within half its grid (ratio > WIDTH_RATIO everywhere) gets a width between
    M/2 and ``N`` by quadratic interpolation in the minimum ratio, saturating
    at ``N`` (the unpadded length) once the minimum exceeds 0.96. This is the
    reference's fast width measure, which decides the frequential wavelets a
    stack keeps ('exclude' sampling).

    Parameters
    ----------
    h_f : ndarray, shape (M,)
    N : int

    Returns
    -------
    float (an int in the decaying case)
    """
    if h_f.size == 1:
        return 1
    p = np.abs(np.fft.ifft(h_f))
    M = p.size
    ratio = (p / p[0])[:M // 2]
    rmin = ratio.min()
    if rmin <= WIDTH_RATIO:
        return int(np.argmin(np.abs(ratio - WIDTH_RATIO)))
    top = 0.96
    if rmin > top:
        return N
    b = (0.5 * M - N) / (WIDTH_RATIO**2 - top**2)
    a = 0.5 * M - b * WIDTH_RATIO**2
    return min(a + b * rmin**2, N)


def redundancy(p0_f: np.ndarray, p1_f: np.ndarray) -> float:
    """Energy overlap Σ|p̂0|²|p̂1|² / mean(Σ|p̂0|², Σ|p̂1|²) of two neighbouring wavelets."""
    a, b = np.abs(p0_f) ** 2, np.abs(p1_f) ** 2
    return float((a * b).sum() / ((a.sum() + b.sum()) / 2))


# ---------------------------------------------------------------------------
# 'l1-energy' normalisation
# ---------------------------------------------------------------------------

def _peak_window(peaks: list[int], n: int, mirrored: bool, nyquist_fix: bool, M: int):
    """Slice of the LP sum that sets wavelet n's factor: from the midpoint towards
    its higher-frequency neighbour's peak to the lower neighbour's peak."""
    P = peaks
    if n >= 1:
        p0, p1 = P[n], P[n - 1]
        back = 2
        while p1 == p0 and n - back >= 0:     # equal peaks (discretisation): look further
            p1 = P[n - back]
            back += 1
        mid = (p0 + p1) / 2
        a = math.floor(mid) if mirrored else math.ceil(mid)
    else:
        a = P[n]
    if n + 1 < len(P):
        if n == 0 and nyquist_fix:
            b = a + 1 if mirrored else a - 1
        else:
            b = P[n + 1]
    else:
        b = None if mirrored else 1           # lowest wavelet: up to (excluding) DC
    if a == b:
        b = b + 1 if mirrored else b - 1
    start, end = (a, b) if mirrored else (b, a)
    if end is not None:
        end += 1
    if end is None:
        start = min(start, M - 1)
    elif end - start == 1:                    # never decide on a single point
        if start == 0:
            end += 1
        elif end == M - 1:
            start -= 1
    return slice(start, end)


def lp_normalize(banks: list[list[np.ndarray]], target: float, extra_lp: np.ndarray | None = None,
                 passes: int = 3, r_th: float = 0.3) -> list[list[float]]:
    """Rescale every wavelet so that the Littlewood–Paley sum peaks at ``target`` near it.

    The LP sum is Σ over all banks and wavelets of |ψ̂|² (plus ``extra_lp``, e.g.
    |φ̂|² of the time lowpass). Wavelet n is multiplied by √(target / max LP)
    where the max runs from the midpoint between its peak and its
    higher-frequency neighbour's to its lower neighbour's peak (down to DC for
    the lowest). The highest wavelet has no higher neighbour; when the bank
    is sparse (overlap :func:`redundancy` of the first two < ``r_th``) its
    window is its peak plus one bin, and a second step rescales the two
    highest wavelets together by the LP max between their peaks ("Nyquist
    correction"). The LP sum is recomputed between steps and the whole thing
    repeated ``passes`` times, which converges the factors.

    Parameters
    ----------
    banks : list of lists of real ndarray (M,)
        One bank (analytic time wavelets, peaks at positive frequencies) or two
        ([up, down]: anti-analytic with peaks at negative frequencies, then
        analytic). Scaled **in place**.
    target : float
        2 for one analytic bank, 1 for up + down.

    Returns
    -------
    list of lists of float: the total factor of every wavelet.
    """
    if len(banks[0]) < 3:
        raise ValueError("lp_normalize needs at least 3 wavelets per bank")
    factors = [[1.0] * len(b) for b in banks]
    M = banks[0][0].shape[-1]
    mirrored = [False] if len(banks) == 1 else [True, False]
    peaks = [[int(np.argmax(p)) for p in bank] for bank in banks]

    def lp_sum():
        lp = sum(littlewood_paley(np.stack(bank)) for bank in banks)
        return lp if extra_lp is None else lp + extra_lp

    def scale(s, n, window, lp):
        f = math.sqrt(target / lp[window].max())
        banks[s][n] *= f
        factors[s][n] *= f

    for _ in range(passes):
        nyquist_fix = redundancy(banks[0][0], banks[0][1]) < r_th
        lp = lp_sum()
        for s, bank in enumerate(banks):
            for n in range(len(bank)):
                scale(s, n, _peak_window(peaks[s], n, mirrored[s], nyquist_fix, M), lp)
        if nyquist_fix:
            lp = lp_sum()
            for s in range(len(banks)):
                p0, p2 = peaks[s][0], peaks[s][2]
                window = slice(p0, p2 + 1) if mirrored[s] else slice(p2, p0 + 1)
                f = math.sqrt(target / lp[window].max())
                for n in (0, 1):
                    banks[s][n] *= f
                    factors[s][n] *= f
    return factors


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
    with min_to_pad = 3 × half-support of φ_T and at least ⌈log2 N⌉. The cap
    ⌊log2(3N-2)⌋ keeps each side's padding < N (reflect needs it);
    ``max_pad_factor`` is the paper's cap (1 ⇒ one extra octave, which is what
    the paper's settings give).
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


def lowpass(N: int, width: float) -> np.ndarray:
    """Gaussian lowpass φ̂ of the given width (σ = σ0/width), shape (N,), φ̂(0) = 1."""
    return gauss_1d(N, SIGMA0 / width)


@dataclass(frozen=True)
class WaveletBank:
    """An energy-normalised Morlet bank in the Fourier domain (time axis).

    Attributes
    ----------
    xi, sigma : tuple of float
        Centre frequencies (decreasing) and frequential widths.
    j : tuple of int
        Max alias-free dyadic subsampling of each wavelet.
    morlets : ndarray, shape (n, N), float64
        Normalised wavelets before the analytic projection.
    factors : tuple of float
        The 'l1-energy' factor of each wavelet (after its L1 normalisation).
    """
    xi: tuple
    sigma: tuple
    j: tuple
    morlets: np.ndarray
    factors: tuple

    @property
    def filters(self) -> np.ndarray:
        """Analytic wavelets at full resolution, shape (n, N)."""
        return analytic(self.morlets)

    def level(self, n: int, k: int) -> np.ndarray:
        """Wavelet n at resolution 2^-k: sum fold of the Morlet, then analytic; (N/2^k,)."""
        return analytic(fold_levels(self.morlets[n], k + 1)[k])


def time_wavelets(N_pad: int, J: int, Q: int, phi: np.ndarray | None = None,
                  lp_peak: float = LP_PEAK_TIME) -> WaveletBank:
    """Time Morlet bank with Q wavelets per octave down to scale 2^J.

    σ_min = σ0/2^J, ξ_min = 2/N_pad; 'l1-energy' normalisation with |φ̂|² in
    the LP sum when ``phi`` is given (the reference includes the lowpass when
    log2 T ≥ J).
    """
    xis, sigmas, js = wavelet_params(SIGMA0 / 2**J, Q, xi_min=2.0 / N_pad)
    morlets = [morlet_1d(N_pad, x, s) for x, s in zip(xis, sigmas)]
    if len(morlets) >= 3:
        factors = lp_normalize([morlets], lp_peak, None if phi is None else np.abs(phi) ** 2)[0]
    else:
        factors = [1.0] * len(morlets)
    return WaveletBank(xis, sigmas, js, np.stack(morlets), tuple(factors))


# ---------------------------------------------------------------------------
# frequency (n1 axis)
# ---------------------------------------------------------------------------

def default_J_fr(n_rows_max: int) -> int:
    """The paper's default J_fr from the largest second-order stack height (131 → 6)."""
    scales = int(math.ceil(math.log2(max(n_rows_max, 1))))
    return min(max(scales - 2, 3), scales)


def frequential_pad_log2(n_rows: int, scale_max: int, J_fr: int, Q_fr: int, F: int,
                         max_pad_factor_fr: int | None) -> int:
    """log2 of the padded length of one n1 stack of height R.

    Room on the padded grid for the widest wavelet and the lowpass:
    ⌈log2(2^⌈log2 R⌉ + 2·min_to_pad)⌉, with min_to_pad the largest half
    support of ψ_fr (widest) and φ_F computed once at the largest stack scale
    (``scale_max``), capped at ⌈log2 R⌉ + ``max_pad_factor_fr``. With the
    paper's cap (1) every stack gets exactly one extra octave, as in PR #674.
    """
    scale = int(math.ceil(math.log2(max(n_rows, 1))))
    grid = 2 ** (scale_max + 6)
    xis, sigmas, _ = wavelet_params(SIGMA0 / 2**J_fr, Q_fr)
    min_to_pad = max(temporal_support(morlet_1d(grid, xis[-1], sigmas[-1])),
                     temporal_support(lowpass(grid, F)))
    J_pad = int(math.ceil(math.log2(2**scale + 2 * min_to_pad)))
    if max_pad_factor_fr is not None:
        J_pad = min(J_pad, scale + int(max_pad_factor_fr))
    return max(J_pad, scale, 1)


def padding_matrix(n_in: int, L: int, mode: str) -> np.ndarray:
    """(L, R) matrix placing R rows at the start of a length-L axis, padded.

    ``mode``: 'zero' (the reference: zeros after the rows) or 'reflect' (the
    rows mirrored without repeating the edge, alternately, until L is filled
    circularly; ours).
    """
    P = np.zeros((L, n_in))
    if mode == "zero":
        P[np.arange(n_in), np.arange(n_in)] = 1.0
    elif mode == "reflect":
        left = (L - n_in) // 2
        np_mode = "reflect" if n_in > 1 else "edge"
        idx = np.pad(np.arange(n_in), (left, L - n_in - left), mode=np_mode)
        P[(np.arange(L) - left) % L, idx] = 1.0
    else:
        raise ValueError(f"pad mode must be 'zero' or 'reflect', got {mode!r}")
    return P


def convolution_matrices(filters_f: np.ndarray, n_in: int, n_out: int, mode: str) -> np.ndarray:
    """Pad → circular convolution → keep the first rows, along n1, as matrices.

    The frequential stage (unsubsampled, aligned: the paper's setting) only
    keeps rows [0, n_out) of the padded convolution of n_in rows, so it is
    linear in the input rows: out = H @ stack. H is computed exactly through
    the same FFTs a padded implementation would use.

    Parameters
    ----------
    filters_f : ndarray, shape (n, L)
    n_in, n_out : int
    mode : {'zero', 'reflect'}

    Returns
    -------
    ndarray, shape (n, n_out, n_in), complex128; ``H[f, r_out, r_in]``.
    """
    P_f = np.fft.fft(padding_matrix(n_in, filters_f.shape[-1], mode), axis=0)   # (L, n_in)
    C = np.fft.ifft(filters_f[:, :, None] * P_f[None], axis=1)                  # (n, L, n_in)
    return C[:, :n_out, :]


@dataclass(frozen=True)
class FrequentialBank:
    """Frequential filters of one n1 stack.

    Attributes
    ----------
    n_in, n_out : int
        Rows convolved and rows kept (equal for second-order stacks; the
        φ_t stack convolves every first-order row and keeps the largest
        second-order height).
    L : int
        Padded length along n1.
    psi_index : tuple of int
        Indices (into the ξ_fr list) of the wavelets kept: those whose
        width (:func:`temporal_width`, ×2) is at most the stack height.
    H_phi : ndarray, shape (n_out, n_in), complex128
        Lowpass φ_F (no subsampling).
    H_up, H_down : ndarray, shape (n_kept, n_out, n_in), complex128
        Spin up (anti-analytic) and spin down (analytic) wavelets.
    """
    n_in: int
    n_out: int
    L: int
    psi_index: tuple
    H_phi: np.ndarray
    H_up: np.ndarray
    H_down: np.ndarray


@dataclass(frozen=True)
class FrequentialDesign:
    """All frequential filters of one setting, per padded length L.

    Attributes
    ----------
    xi, sigma, j : tuple
        ξ_fr (> 0, decreasing), σ_fr, j_fr of the wavelets (spin down; up is -ξ).
    widths : dict[int, tuple of float]
        L → 2 × :func:`temporal_width` of each wavelet sampled at length L.
    up, down : dict[int, ndarray (n_L, L)]
        L → normalised wavelets present at that length (the first n_L ones:
        those no wider than 2^⌈log2 R⌉ of the largest stack padded to L).
    phi : dict[int, ndarray (L,)]
        L → lowpass φ_F sampled at length L.
    factors : dict[int, tuple]
        L → LP factors (up, down) applied.
    """
    xi: tuple
    sigma: tuple
    j: tuple
    widths: dict
    up: dict
    down: dict
    phi: dict
    factors: dict


def frequential_design(stacks: list[tuple[int, int]], J_fr: int, Q_fr: int, F: int) -> FrequentialDesign:
    """Frequential wavelets and lowpass at every padded length in use.

    Parameters
    ----------
    stacks : list of (R, L)
        Height and padded length of each second-order stack.

    Wavelets: ξ_fr, σ_fr from :func:`wavelet_params` (σ_min = σ0/2^J_fr,
    ξ_min = 2/L_max), the same ξ and σ at every L ('resample'). At each L,
    from the longest to the shortest, a wavelet is present while its width
    fits 2^⌈log2 R⌉ of the largest stack with that L ('exclude'; once absent it
    stays absent at shorter L). The present ones are made analytic (down) /
    anti-analytic (up), then LP-normalised together (up + down, peak 1); with
    ≤ 3 present the factors of the previous (longer) L are reused.
    """
    Ls = sorted({L for _, L in stacks}, reverse=True)
    scale_of = {}
    for R, L in sorted(stacks, reverse=True):
        scale_of.setdefault(L, int(math.ceil(math.log2(R))))
    xis, sigmas, js = wavelet_params(SIGMA0 / 2**J_fr, Q_fr, xi_min=2.0 / Ls[0])
    widths, up, down, phi, factors = {}, {}, {}, {}, {}
    alive = len(xis)
    last = None
    for L in Ls:
        morlets = [morlet_1d(L, x, s) for x, s in zip(xis, sigmas)]
        widths[L] = tuple(2 * temporal_width(m, 2**scale_of[L]) for m in morlets)
        if L != Ls[0]:      # at the longest length every wavelet is built
            alive = min(alive, next((n for n, w in enumerate(widths[L]) if w > 2**scale_of[L]), alive))
        dn = [analytic(m) for m in morlets[:alive]]
        upl = [anti_analytic(mirror(m)) for m in morlets[:alive]]
        if alive > 3:
            last = lp_normalize([upl, dn], LP_PEAK_FREQ)
        elif last is None:
            raise ValueError(f"jtfs: only {alive} frequential wavelets fit the largest stack; "
                             "need ≥ 4 (increase J, Q or J_fr)")
        else:
            for n in range(alive):
                upl[n] = upl[n] * last[0][n]
                dn[n] = dn[n] * last[1][n]
        factors[L] = (tuple(last[0][:alive]), tuple(last[1][:alive]))
        up[L] = np.stack(upl) if upl else np.zeros((0, L))
        down[L] = np.stack(dn) if dn else np.zeros((0, L))
        phi[L] = lowpass(L, F)
    return FrequentialDesign(xis, sigmas, js, widths, up, down, phi, factors)


def frequential_bank(design: FrequentialDesign, L: int, n_in: int, n_out: int, R: int,
                     pad_mode_fr: str) -> FrequentialBank:
    """Convolution matrices of one stack: padded length L, wavelets no wider than R."""
    n_alive = design.up[L].shape[0]
    keep = tuple(n for n in range(n_alive) if design.widths[L][n] <= R)
    phi = design.phi[L][None]
    H_up = convolution_matrices(design.up[L][list(keep)], n_in, n_out, pad_mode_fr)
    H_down = convolution_matrices(design.down[L][list(keep)], n_in, n_out, pad_mode_fr)
    return FrequentialBank(n_in, n_out, L, keep,
                           convolution_matrices(phi, n_in, n_out, pad_mode_fr)[0], H_up, H_down)
