"""Joint time–frequency scattering (JTFS): the paper's operator, in pure torch.

Han, Lostanlen & Lagrange (TASLP 2024) use the JTFS of kymatio PR #674
(``TimeFrequencyScattering1D`` with ``average_global = True``). This module
computes the same coefficients (same filters, paths, order, spin names, energy
corrections: K = 20,762 at the paper's FTM setting, per-path relative error
≤ 5e-5 against the reference, ``tests/features/test_jtfs_reference.py``) with
its own engine; the filter design is :mod:`pnp_core.features.filterbank`.
``docs/jtfs.md`` is the full description: settings, design, measured
deviations, speed, ε.

Paths, in output order (flat vector = paths concatenated, rows × frames each)
--------------------------------------------------------------------------------
``S0`` x ⋆ φ_T (signed); ``S1`` U1 ⋆ φ_T with U1 = |x ⋆ ψ1|; ``phi_t*phi_f`` and
``phi_t*psi_f`` (spin up only, ×√2): S1 (all first-order rows) convolved along
the first-order index n1 by φ_F / ψ_fr, the rows of the largest second-order
stack kept; ``psi_t*phi_f``, ``psi_t*psi_f_up``, ``psi_t*psi_f_down``:
|Y2 ⋆_n1 (φ_F, ψ_fr)| averaged in time, Y2[n2](n1, t) = (U1[n1] ⋆ ψ2_n2)(t) over
the rows n1 with j1 < j2. Spin names are the reference's: *down* is the analytic
frequential wavelet and a rising chirp lands there.

Engine
------
Time convolutions are products of DFTs at the stride 2^min(j, log2 T) of each
filter; the frequential stage (pad → convolve → keep rows, never subsampled)
is linear in the rows and precomputed as matrices. With ``T='global'`` the ψ_t
paths are the mean of the modulus over the padded time axis, computed block by
block in time; spin up and down share one real matrix product (up is the
mirror image of down, so its matrix is the conjugate). ``trim=True`` averages
over a window around the input only (faster, documented error; off by default).

Derivatives
-----------
Pure torch ops: forward, ``.backward()``, ``torch.func.jvp``/``jacfwd``/``vjp``/
``vmap``, float32/float64, CPU/CUDA. The moduli are ``torch.autograd.Function``s
with explicit first derivatives, 0 at z = 0 (no NaN for silent inputs); second
derivatives are not provided. The frequential stage of the ψ_t paths (T='global'),
~75 % of the work, is one such Function per stack (:class:`_StackModulusSum`): its
forward, backward and jvp walk over cache-sized time blocks and recompute the
block products instead of storing them, so the backward costs ≈ 2 forwards of the
stage and the memory of a batch stays that of its second-order coefficients.
:meth:`JTFS.jacobian_columns` (the Jacobian stage's hook) pushes all tangents
through one pass that shares the primal's intermediates, much cheaper than
``torch.func`` over the transform.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as nnf

from pnp_core.features import filterbank as fb
from pnp_core.features.base import FEATURES, Feature, log1p_compress

#: The paper's FTM-drum JTFS (sr 22050 Hz, 2^16 samples ≈ 2.97 s).
PAPER_FTM = dict(n_samples=2**16, J=13, Q=(12, 1), J_fr=None, Q_fr=1, F=2, T="global",
                 pad_mode="zero", pad_mode_fr="zero", max_pad_factor=1, max_pad_factor_fr=1,
                 include_s0=True, log_eps=1e-3)
#: The paper's AM/FM-chirp JTFS (sr 8192 Hz, 2^15 samples = 4 s): same settings.
PAPER_AMFM = dict(PAPER_FTM, n_samples=2**15)
#: Laptop-scale FTM (sr 22050 Hz, 2^13 samples ≈ 0.37 s), scales up to 2^8 samples.
LAPTOP_FTM = dict(PAPER_FTM, n_samples=2**13, J=8)

PATH_NAMES = ("S0", "S1", "phi_t*phi_f", "phi_t*psi_f", "psi_t*phi_f", "psi_t*psi_f_up",
              "psi_t*psi_f_down")

#: half-width, in envelope standard deviations, added around the signal when
#: averaging globally with zero padding (Gaussian envelope < e^-(n²/2) beyond)
_TRIM_STDS = 16.0
#: elements (complex) of one frequential-stage chunk; bounds peak memory
_CHUNK_ELEMENTS = 2**22
#: numbers of one time block of a stack product Z (_time_blocks): 2–4 MB, near L2; measured
#: best among 2^16 … 2^20 (forward and backward, laptop and paper settings, 2 threads)
_BLOCK_NUMBERS = 2**19


# ---------------------------------------------------------------------------
# plan: everything that depends on settings only (NumPy, cached)
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class JTFSSettings:
    """Validated, normalised JTFS settings: the key of every filter cache.

    Frozen (hashable): the plan (NumPy filters) is cached per settings, the
    torch tensors per (settings, device, dtype). Build it with
    :meth:`from_kwargs`, which checks the values and names the offending key.
    """
    n_samples: int
    J: int
    Q: tuple
    J_fr: int | None
    Q_fr: int
    F: int
    T: int | str
    pad_mode: str
    pad_mode_fr: str
    max_pad_factor: int | None
    max_pad_factor_fr: int | None
    include_s0: bool

    @classmethod
    def from_kwargs(cls, n_samples, J, Q, J_fr, Q_fr, F, T, pad_mode, pad_mode_fr, max_pad_factor,
                    max_pad_factor_fr, include_s0) -> "JTFSSettings":
        if isinstance(Q, int):
            Q = (Q, 1)
        Q = tuple(int(q) for q in Q)
        if len(Q) != 2 or min(Q) < 1:
            raise ValueError(f"jtfs: Q must be (Q1, Q2) with Q ≥ 1, got {Q}")
        if int(n_samples) < 8:
            raise ValueError(f"jtfs: n_samples must be ≥ 8, got {n_samples}")
        if int(J) < 1 or 2**int(J) > int(n_samples):
            raise ValueError(f"jtfs: need 1 ≤ J ≤ log2(n_samples), got J={J}, n_samples={n_samples}")
        if T != "global" and (isinstance(T, str) or int(T) < 1 or int(T) > int(n_samples)):
            raise ValueError(f"jtfs: T must be 'global' or an int in [1, n_samples], got {T!r}")
        if int(F) < 1:
            raise ValueError(f"jtfs: F must be an int ≥ 1, got {F}")
        if int(Q_fr) < 1:
            raise ValueError(f"jtfs: Q_fr must be ≥ 1, got {Q_fr}")
        for key, mode in (("pad_mode", pad_mode), ("pad_mode_fr", pad_mode_fr)):
            if mode not in ("zero", "reflect"):
                raise ValueError(f"jtfs: {key} must be 'zero' or 'reflect', got {mode!r}")
        for key, v in (("max_pad_factor", max_pad_factor), ("max_pad_factor_fr", max_pad_factor_fr)):
            if v is not None and int(v) < 0:
                raise ValueError(f"jtfs: {key} must be None or ≥ 0, got {v}")
        if J_fr is not None and int(J_fr) < 0:
            raise ValueError(f"jtfs: J_fr must be None or ≥ 0, got {J_fr}")
        return cls(int(n_samples), int(J), Q, None if J_fr is None else int(J_fr), int(Q_fr), int(F),
                   "global" if T == "global" else int(T), pad_mode, pad_mode_fr,
                   None if max_pad_factor is None else int(max_pad_factor),
                   None if max_pad_factor_fr is None else int(max_pad_factor_fr), bool(include_s0))


@dataclass(frozen=True)
class _Group:
    """First-order rows n1 ∈ [start, stop) sharing j1, computed at stride 2^k."""
    j1: int
    k: int
    start: int
    stop: int
    n_bins: int        # bins of x̂ ⋅ ψ̂1 kept: the first length (folded as aliases), Nyquist incl.
    length: int        # N_pad / 2^k


@dataclass(frozen=True)
class _Stack:
    """Second-order stack of one ψ2: rows n1 < n_rows (those with j1 < j2)."""
    n2: int
    j2: int
    k: int             # time stride 2^k of Y2
    n_rows: int
    groups: tuple      # indices into plan.groups with j1 < j2
    length: int        # N_pad / 2^k
    window: tuple      # (a, b): frames averaged when T='global'
    fbank: fb.FrequentialBank


@dataclass(frozen=True)
class _PathSpec:
    """Layout of one output path: coef is (B, len(n1), frames)."""
    name: str
    order: int
    n1: tuple
    frames: int
    n2: int = -1
    j2: int = -1
    n_fr: int = -1
    j_fr: int = -1
    xi_fr: float = float("nan")
    spin: int = 0


@dataclass(frozen=True)
class _Plan:
    N: int
    log2_T: int
    global_T: bool
    pad: fb.TimePadding
    psi1: fb.WaveletBank
    psi2: fb.WaveletBank
    phi: np.ndarray                 # (N_pad,) lowpass φ_T
    groups: tuple
    stacks: tuple
    rows_phi_t: int                 # rows kept on the φ_t paths (largest stack)
    fbank1: fb.FrequentialBank
    fdesign: fb.FrequentialDesign
    J_fr: int
    n_frames: int
    frame_start: int
    paths: tuple


def _first_order_groups(psi1: fb.WaveletBank, log2_T: int, N_pad: int) -> tuple:
    groups, start = [], 0
    js = psi1.j
    while start < len(js):
        stop = start
        while stop < len(js) and js[stop] == js[start]:
            stop += 1
        j1 = js[start]
        k = min(j1, log2_T)
        length = N_pad // 2**k
        groups.append(_Group(j1, k, start, stop, min(length, N_pad // 2 + 1), length))
        start = stop
    if any(g2.j1 < g1.j1 for g1, g2 in zip(groups, groups[1:])):
        raise AssertionError("first-order j1 must be non-decreasing in n1")
    return tuple(groups)


def _envelope_std(sigma: float) -> float:
    """Time-domain standard deviation (samples) of a Gaussian of frequential width σ."""
    return 1.0 / (2.0 * math.pi * sigma)


def _window(pad: fb.TimePadding, margin: int, k: int, length: int) -> tuple:
    """Frames at stride 2^k that can hold non-negligible Y2 (zero padding)."""
    if 2 * margin >= pad.N_pad - pad.N:
        return (0, length)
    a = max(0, (pad.pad_left - margin) // 2**k)
    b = min(length, -(-(pad.pad_left + pad.N + margin) // 2**k))
    return (a, b)


@lru_cache(maxsize=16)
def _make_plan(st: JTFSSettings, trim: bool = True) -> _Plan:
    """Filters, stacks and output layout of one setting (NumPy, cached).

    ``trim``: with T='global' and zero padding, average the ψ_t paths over the
    window where Y2 is non-negligible only (see docs/jtfs.md).
    """
    global_T = st.T == "global"
    log2_T = st.J if global_T else int(math.floor(math.log2(st.T)))
    pad = fb.time_padding(st.n_samples, log2_T, st.J, st.max_pad_factor)
    N_pad = pad.N_pad
    phi = fb.lowpass(N_pad, 2**log2_T)
    # the reference puts |φ̂|² in the time LP sum when log2 T ≥ J
    lp_phi = phi if log2_T >= st.J else None
    psi1 = fb.time_wavelets(N_pad, st.J, st.Q[0], lp_phi)
    psi2 = fb.time_wavelets(N_pad, st.J, st.Q[1], lp_phi)
    groups = _first_order_groups(psi1, log2_T, N_pad)
    trim = trim and global_T and st.pad_mode == "zero"

    # second-order stacks: rows n1 with j1 < j2
    raw = []
    for n2, j2 in enumerate(psi2.j):
        g_idx = tuple(i for i, g in enumerate(groups) if g.j1 < j2)
        if g_idx:
            raw.append((n2, j2, g_idx, groups[g_idx[-1]].stop))
    if not raw:
        raise ValueError(f"jtfs: J={st.J}, Q={st.Q} gives no second-order path; increase J")
    rows_max = max(r[3] for r in raw)
    J_fr = fb.default_J_fr(rows_max) if st.J_fr is None else st.J_fr
    scale_max = int(math.ceil(math.log2(rows_max)))
    L_of = {R: 2 ** fb.frequential_pad_log2(R, scale_max, J_fr, st.Q_fr, st.F, st.max_pad_factor_fr)
            for R in {r[3] for r in raw}}
    design = fb.frequential_design([(R, L_of[R]) for R in L_of], J_fr, st.Q_fr, st.F)

    stacks = []
    for n2, j2, g_idx, R in raw:
        k = min(j2, log2_T)
        length = N_pad // 2**k
        if trim:
            margin = _TRIM_STDS * (_envelope_std(psi2.sigma[n2]) + _envelope_std(min(psi1.sigma[:R])))
            window = _window(pad, int(math.ceil(margin)), k, length)
        else:
            window = (0, length)
        fbank = fb.frequential_bank(design, L_of[R], R, R, R, st.pad_mode_fr)
        stacks.append(_Stack(n2, j2, k, R, g_idx, length, window, fbank))
    # φ_t stack: every first-order row, padded like the largest stack, the
    # rows of the largest stack kept (the reference)
    rows_phi_t = rows_max
    fbank1 = fb.frequential_bank(design, L_of[rows_max], len(psi1.xi), rows_phi_t, rows_max,
                                 st.pad_mode_fr)

    n_frames = pad.ind_end[log2_T] - pad.ind_start[log2_T]
    frames_psi_t = 1 if global_T else n_frames
    paths = []
    n1_all = tuple(range(len(psi1.xi)))
    n1_phi = tuple(range(rows_phi_t))
    xi_fr, j_fr = design.xi, design.j
    if st.include_s0:
        paths.append(_PathSpec("S0", 0, (-1,), frames_psi_t))
    paths.append(_PathSpec("S1", 1, n1_all, n_frames))
    paths.append(_PathSpec("phi_t*phi_f", 1, n1_phi, n_frames))
    for k in fbank1.psi_index:
        paths.append(_PathSpec("phi_t*psi_f", 1, n1_phi, n_frames, n_fr=k, j_fr=j_fr[k],
                               xi_fr=-xi_fr[k], spin=1))
    for s in stacks:
        paths.append(_PathSpec("psi_t*phi_f", 2, tuple(range(s.n_rows)), frames_psi_t,
                               n2=s.n2, j2=s.j2))
    # up = spin +1 = anti-analytic (ξ_fr < 0), down = analytic: the reference's names
    for name, spin in (("psi_t*psi_f_up", 1), ("psi_t*psi_f_down", -1)):
        for s in stacks:
            for k in s.fbank.psi_index:
                paths.append(_PathSpec(name, 2, tuple(range(s.n_rows)), frames_psi_t, n2=s.n2,
                                       j2=s.j2, n_fr=k, j_fr=j_fr[k], xi_fr=-spin * xi_fr[k],
                                       spin=spin))
    return _Plan(st.n_samples, log2_T, global_T, pad, psi1, psi2, phi, groups, tuple(stacks),
                 rows_phi_t, fbank1, design, J_fr, n_frames, pad.ind_start[log2_T], tuple(paths))


# ---------------------------------------------------------------------------
# torch tensors (cached per settings, device, dtype)
# ---------------------------------------------------------------------------

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_TENSORS: dict = {}


def _flush_tiny(a: np.ndarray, rel: float = 1e-18) -> np.ndarray:
    """Zero entries below ``rel`` × the array's peak.

    Gaussian tails in float32 are denormal numbers (< 1.2e-38), and arithmetic
    on denormals can be much slower on x86 CPUs. Entries this small are far
    below float64 round-off relative to the peak, so results do not change.
    """
    peak = np.abs(a).max() if a.size else 0.0
    return np.where(np.abs(a) < rel * peak, 0.0, a)


def _tensors(key: JTFSSettings, plan: _Plan, device: torch.device, dtype: torch.dtype) -> dict:
    """Filters of ``plan`` as tensors on ``device``; Fourier scalings folded in.

    ``ifft(..., norm='forward')`` does not divide by the length, so every
    Fourier filter carries the 1/L of the resolution it is applied at.
    """
    cache_key = (key, str(device), dtype)
    if cache_key in _TENSORS:
        return _TENSORS[cache_key]
    cdtype = _COMPLEX[dtype]
    N_pad, s = plan.pad.N_pad, plan.log2_T

    def real(a):
        return torch.tensor(_flush_tiny(a), device=device, dtype=dtype)

    def cplx(a):
        return torch.tensor(_flush_tiny(a), device=device, dtype=cdtype)
    L_s = N_pad // 2**s
    n_phi_bins = L_s // 2 + 1
    t = {"psi1": [], "phi": {}, "psi2": {}, "H2": [], "H2c": [], "energy": math.sqrt(2.0**s)}
    for g in plan.groups:
        t["psi1"].append(real(plan.psi1.filters[g.start:g.stop, :g.n_bins] / N_pad))
    n_levels = max([g.k for g in plan.groups] + [st.k for st in plan.stacks] + [0]) + 1
    for k, level in enumerate(fb.fold_levels(plan.phi, n_levels)):
        t["phi"][k] = real(level[:n_phi_bins] / (N_pad // 2**k))
    for st in plan.stacks:
        for i in st.groups:
            g = plan.groups[i]
            # the first st.length bins of x̂·ψ̂ fold into the stride-2^k2 DFT as is
            n_bins = min(st.length, g.length // 2 + 1)
            t["psi2"][(st.n2, i)] = real(plan.psi2.level(st.n2, g.k)[:n_bins] / g.length)
        bank = st.fbank
        # global T: see _global_stack (up = conj(down): the mirror image)
        R = st.n_rows
        Hr, Hi = bank.H_down.real.reshape(-1, R), bank.H_down.imag.reshape(-1, R)
        Hp = bank.H_phi.real
        t["H2"].append({
            "block": real(np.block([[Hp, 0 * Hp], [Hr, Hi], [Hr, -Hi], [0 * Hp, Hp], [-Hi, Hr], [Hi, Hr]])),
            "conj": real(np.concatenate([Hp, Hr, Hi], axis=0)),
        })
        if not plan.global_T:
            H = np.concatenate([bank.H_phi[None], bank.H_up, bank.H_down], axis=0)
            t["H2c"].append(cplx(H))                   # (n_f, R, R)
    b1 = plan.fbank1
    t["H1_phi"] = real(b1.H_phi.real)
    t["H1_up"] = cplx(b1.H_up.reshape(-1, b1.n_in))
    if plan.pad.pad_left or plan.pad.pad_right:
        idx = np.pad(np.arange(plan.N), (plan.pad.pad_left, plan.pad.pad_right), mode="reflect")
        t["reflect_index"] = torch.tensor(idx, device=device, dtype=torch.long)
    _TENSORS[cache_key] = t
    return t


# ---------------------------------------------------------------------------
# operators
# ---------------------------------------------------------------------------

class _Modulus(torch.autograd.Function):
    """|z| of complex z with explicit first derivatives, 0 where z = 0.

    d|z| = Re(conj(u) dz) with the phase u = z/|z| (0 at z = 0): finite
    everywhere (√(re²+im²) would give 0/0). Written out because torch's
    generic norm derivative takes ~5 elementwise passes per tangent. The phase
    is not stored: z (the input) and |z| are, and backward/jvp form z·(1/|z|) on
    the fly (one pass fewer in the forward, no extra array).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(z):
        zr = torch.view_as_real(z)
        return torch.hypot(zr[..., 0], zr[..., 1])

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0], output)
        ctx.save_for_forward(inputs[0], output)

    @staticmethod
    def jvp(ctx, dz):
        z, m = ctx.saved_tensors
        zr, dzr = torch.view_as_real(z), torch.view_as_real(dz)
        return (zr[..., 0] * dzr[..., 0] + zr[..., 1] * dzr[..., 1]) * _safe_inverse(m)

    @staticmethod
    def backward(ctx, gm):
        z, m = ctx.saved_tensors
        # the phase first (|u| ≤ 1, 0 at z = 0): gm·(1/|z|) could overflow to inf, and 0·inf
        return (z * _safe_inverse(m)) * gm


def modulus(z: torch.Tensor) -> torch.Tensor:
    """|z| for complex z (..., n) → real (..., n), finite derivatives everywhere.

    Plain ``hypot`` without grad mode; :class:`_Modulus` (explicit jvp/vjp,
    0 at z = 0) with it, which includes ``torch.func`` transforms.
    """
    if torch.is_grad_enabled():
        return _Modulus.apply(z)
    zr = torch.view_as_real(z)
    return torch.hypot(zr[..., 0], zr[..., 1])


class _StackModulusSum(torch.autograd.Function):
    """Σ_t |Z(t)| of one stack's frequential products Z = H·Y2 (T='global'), block by block.

    Inputs: ``Ys`` (…, 2R, T) real, [Re Y2; Im Y2]; ``Hb`` (2M, 2R) real, the ``block``
    matrix of :func:`_tensors` ([Re Z; Im Z] = Hb·Ys, M = (1 + 2 n_k) R rows φ, up, down).
    Output (…, M), the sums over t.

    Z (M·T complex numbers, 37 M per sound at the paper's setting) never exists in full:
    forward, backward and jvp each walk over time blocks that stay in cache and keep
    only Ys (the input, shared with autograd). Backward recomputes a block's Z and phase
    u = Z/|Z| (0 at Z = 0) and returns Hbᵀ·[g ⊙ Re u; g ⊙ Im u]; jvp returns
    Σ_t Re(conj(u)·Hb·dYs). Recomputing costs one more block product but saves storing
    the phases (2·M·T numbers; GBs for a paper-scale batch), and blocks that fit in L2
    make both products faster than one pass over a full-size Z. Ops are out of place
    where an operand may be vmapped (``generate_vmap_rule``), so ``torch.func`` works.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(Ys, Hb):
        M = Hb.shape[0] // 2
        sums = []
        for t0, t1 in _time_blocks(Ys, M):
            Z = torch.matmul(Hb, _cols(Ys, t0, t1))
            zr, zi = Z[..., :M, :], Z[..., M:, :]
            # out-of-place addcmul: vmap has no batching rule for addcmul_
            sums.append(torch.addcmul(zr * zr, zi, zi).sqrt_().sum(dim=-1))
        return _sum_list(sums)

    @staticmethod
    def setup_context(ctx, inputs, output):
        Ys, Hb = inputs
        ctx.save_for_backward(Ys, Hb)
        ctx.save_for_forward(Ys, Hb)

    @staticmethod
    def backward(ctx, g):
        Ys, Hb = ctx.saved_tensors
        M = Hb.shape[0] // 2
        # Hbᵀ·(g ⊙ u) = (Hbᵀ ⊙ g)·u: g (constant in time) scales the matrix once, which
        # is the smaller array unless the stack has fewer than 2M time steps
        scale_matrix = Ys.shape[-1] >= 2 * M
        if scale_matrix:
            Hg = Hb.mT * torch.cat([g, g], dim=-1).unsqueeze(-2)         # (…, 2R, 2M)
        else:
            Hg, g = Hb.mT, g.unsqueeze(-1)
        tiny = torch.tensor(torch.finfo(Ys.dtype).tiny, dtype=Ys.dtype, device=Ys.device)
        out = []
        for t0, t1 in _time_blocks(Ys, M, 2):
            Z = torch.matmul(Hb, _cols(Ys, t0, t1))                          # (…, 2M, n)
            zr, zi = Z[..., :M, :], Z[..., M:, :]
            # 1/|z| with the smallest normal number added to |z|², so that z = 0 gets
            # the phase 0 (never 0·inf); three passes
            w = torch.addcmul(torch.addcmul(tiny, zr, zr), zi, zi).rsqrt_()
            if scale_matrix:                                # Z becomes the phases u, in place
                Z.unflatten(-2, (2, M)).mul_(w.unsqueeze(-3))
                U = Z
            else:                                           # g·u, out of place: g may be vmapped
                wg = w * g
                U = Z * torch.cat([wg, wg], dim=-2)
            out.append(torch.matmul(Hg, U))
        return torch.cat(out, dim=-1), None

    @staticmethod
    def jvp(ctx, dYs, dHb):
        Ys, Hb = ctx.saved_tensors
        M = Hb.shape[0] // 2
        sums = []
        for t0, t1 in _time_blocks(Ys, M, 2):
            Z = torch.matmul(Hb, _cols(Ys, t0, t1))
            dZ = torch.matmul(Hb, _cols(dYs, t0, t1))
            zr, zi = Z[..., :M, :], Z[..., M:, :]
            inv = _safe_inverse(torch.addcmul(zr * zr, zi, zi).sqrt_())
            dot = torch.addcmul(zr * dZ[..., :M, :], zi, dZ[..., M:, :])   # Re(conj(z) dz)
            sums.append((dot * inv).sum(dim=-1))
        return _sum_list(sums)


def _time_blocks(Ys: torch.Tensor, M: int, n_arrays: int = 1):
    """(t0, t1) blocks of Ys's last axis such that ``n_arrays`` arrays of 2M rows (and the
    leading dimensions) hold ~``_BLOCK_NUMBERS`` numbers a block (at least 32 steps)."""
    T = Ys.shape[-1]
    lead = math.prod(Ys.shape[:-2])
    n = 1 << max(5, int(math.log2(max(1, _BLOCK_NUMBERS // max(1, 2 * M * lead * n_arrays)))))
    return [(t0, min(T, t0 + n)) for t0 in range(0, T, n)]


def _cols(A: torch.Tensor, t0: int, t1: int) -> torch.Tensor:
    """A[..., t0:t1], A itself for the whole axis (vmap has no rule for the alias that a
    full slice of a batched tensor becomes)."""
    return A if (t0, t1) == (0, A.shape[-1]) else A[..., t0:t1]


def _sum_list(parts: list) -> torch.Tensor:
    return parts[0] if len(parts) == 1 else torch.stack(parts).sum(dim=0)


def _block_len(rows: int, n_tan: int) -> int:
    """Time block (power of two ≥ 64) of :func:`_global_stack`'s tangent pass: one block of
    the products (primal and ``n_tan`` tangents, ``rows`` rows) holds ~2^21 numbers. Larger
    blocks leave cache, smaller ones cost more in per-op overhead than they gain
    (measured at the paper's setting, float64, 2 threads: 2^21 best, 2^17 twice as slow)."""
    return 1 << max(6, int(math.log2(max(1, 2**21 // max(1, rows * 2 * (1 + n_tan))))))


def _safe_inverse(m: torch.Tensor) -> torch.Tensor:
    """1/m with m clamped to the smallest normal number: the phase z·(1/m) of z = 0 is
    0 (m = 0 only where both parts are exactly 0), and never inf or NaN."""
    return m.clamp_min(torch.finfo(m.dtype).tiny).reciprocal_()


def _global_stack(y2: torch.Tensor, H: dict, R: int, n_k: int, window: tuple,
                  dy2: torch.Tensor | None = None):
    """Σ_t |Y2 ⋆_n1 (φ_F, ψ_up, ψ_down)| over the window, and its tangents.

    Parameters
    ----------
    y2 : complex (B, R, L)
    H : dict of real matrices of the stack, M = (1 + 2 n_k) R rows (φ, up, down):
        ``block`` (2M, 2R) maps [Re Y; Im Y] to [Re Z; Im Z];
        ``conj`` (M, R) = [H_φ; Re H_down; Im H_down].
    dy2 : complex (P, B, R, L) or None — tangents of y2

    Returns
    -------
    A (B, M) in the order φ, up, down; dA (P, B, M) or None.

    The primal goes through ``block`` (contiguous real and imaginary planes:
    the modulus is one fused pass). Tangents use ``conj``, half the flops per
    tangent: with H the analytic (down) matrices, H Y = (a − d) + i(b + c) and
    conj(H) Y = (a + d) + i(b − c), where (a, c) = (Re H, Im H) · Re Y and
    (b, d) = (Re H, Im H) · Im Y (the reference's up wavelet is the mirror image
    of down, so its matrix is the conjugate); dA = Σ_t u_r dre + u_i dim with the
    primal phase u.

    Without tangents: :class:`_StackModulusSum` (block by block; autograd and
    ``torch.func`` differentiate it through its own backward/jvp). With tangents
    (no grad mode, :meth:`JTFS.jacobian_columns`): time block by time block, the
    phases living for one block only, all tangents' products coming out of two
    matrix products (real and imaginary parts, tangents innermost in the columns)
    and contracted with the phases by batched matrix products.
    """
    a, b = window
    # no slice of the whole axis: its backward would zero-fill and copy all of Y2
    y = y2 if (a, b) == (0, y2.shape[-1]) else y2[..., a:b]
    B, T = y.shape[0], y.shape[-1]
    Hb = H["block"]
    M = Hb.shape[0] // 2
    Rw = n_k * R
    # [Re Y; Im Y] (B, 2R, T) by one copy whose backward is one copy too (y.real and
    # y.imag would each zero-fill a full-size gradient)
    Ys = torch.view_as_real(y).movedim(-1, -3).reshape(B, 2 * R, T)
    if dy2 is None:
        return _StackModulusSum.apply(Ys, Hb), None
    n_tan = dy2.shape[0]
    total = torch.zeros(B, M, dtype=Ys.dtype, device=Ys.device)
    # (P, B, R, T) complex → real and imaginary (B, R, T·P): tangents innermost
    dyt = dy2[..., a:b].permute(1, 2, 3, 0)
    dyv_re = dyt.real.reshape(B, R, T * n_tan)
    dyv_im = dyt.imag.reshape(B, R, T * n_tan)
    Hc = H["conj"]
    dtotal = torch.zeros(B, M, n_tan, dtype=Ys.dtype, device=Ys.device)
    sign = torch.tensor([1.0, -1.0], dtype=Ys.dtype, device=Ys.device)[:, None]
    Tb = _block_len(M, n_tan)
    for t0 in range(0, T, Tb):
        t1 = min(T, t0 + Tb)
        n = t1 - t0
        Z = torch.matmul(Hb, _cols(Ys, t0, t1))                               # (B, 2M, n)
        zr, zi = Z[:, :M], Z[:, M:]
        m = torch.addcmul(zr * zr, zi, zi).sqrt_()
        total += m.sum(dim=-1)
        inv = _safe_inverse(m)
        ur, ui = zr * inv, zi * inv                                        # phases (B, M, n)
        dre = torch.matmul(Hc, dyv_re[..., n_tan * t0:n_tan * t1]).view(B, M, n, n_tan)
        dim = torch.matmul(Hc, dyv_im[..., n_tan * t0:n_tan * t1]).view(B, M, n, n_tan)
        # φ rows: Σ_t u_r dre + u_i dim
        dtotal[:, :R] += (torch.matmul(ur[:, :R, None], dre[:, :R])
                          + torch.matmul(ui[:, :R, None], dim[:, :R]))[:, :, 0]
        # wavelet rows, phases of (up, down) side by side: (B, Rw, 2, n)
        wr = ur[:, R:].unflatten(1, (2, Rw)).transpose(1, 2)
        wi = ui[:, R:].unflatten(1, (2, Rw)).transpose(1, 2)
        # Re H rows (a, b) feed both spins with (u_r, u_i) ...
        d_ab = torch.matmul(wr, dre[:, R:R + Rw]) + torch.matmul(wi, dim[:, R:R + Rw])
        # ... Im H rows (c, d) feed up with (−u_i, u_r) and down with (u_i, −u_r)
        d_cd = (torch.matmul(wr, dim[:, R + Rw:]) - torch.matmul(wi, dre[:, R + Rw:])) * sign
        d_w = d_ab + d_cd                                                  # (B, Rw, 2, P)
        dtotal[:, R:] += d_w.transpose(1, 2).flatten(1, 2)
    return total, dtotal.permute(2, 0, 1)


def _first_order_streams(xs_f: torch.Tensor, psi: torch.Tensor, g: _Group) -> torch.Tensor:
    """rfft of (|y|, d|y|) for the primal and its tangents of one j1-group (no grad mode).

    ``xs_f`` (Q, B, N_pad/2+1) complex: rfft of the padded primal x (stream 0) and of its
    P = Q − 1 tangents; ``psi`` (n_g, bins) the group's filters. y = x ⋆ ψ1 of every
    stream comes from one inverse FFT; stream 0 becomes |y|, the tangents d|y| =
    Re(conj(u) dy) with the primal phase u = y/|y| (0 at y = 0). Returns (Q, B, n_g,
    L_k/2+1) complex. Rows go in chunks of ~2^20 complex numbers (all streams): the
    FFTs, the modulus and its derivative then run on cache-resident data, measured
    1.5× faster than whole-group passes at the paper's setting.
    """
    Q, B = xs_f.shape[:2]
    n_g = g.stop - g.start
    c = max(1, min(n_g, 2**20 // (Q * B * g.length)))
    out = torch.empty(Q, B, n_g, g.length // 2 + 1, dtype=xs_f.dtype, device=xs_f.device)
    U = None
    for r0 in range(0, n_g, c):
        r1 = min(n_g, r0 + c)
        y = torch.view_as_real(torch.fft.ifft(xs_f[:, :, None, :g.n_bins] * psi[r0:r1],
                                              n=g.length, norm="forward"))  # (Q, B, c, L, 2)
        yr, yi = y[0, ..., 0], y[0, ..., 1]
        if U is None or U.shape[2] != r1 - r0:
            U = torch.empty(y.shape[:-1], dtype=y.dtype, device=y.device)
        m = torch.hypot(yr, yi, out=U[0])
        inv = _safe_inverse(m)
        torch.addcmul(y[1:, ..., 0] * (yr * inv), y[1:, ..., 1], yi * inv, out=U[1:])
        out[:, :, r0:r1] = torch.fft.rfft(U)
    return out


def _second_order(u1_f: list, groups: tuple, st: "_Stack", t: dict) -> torch.Tensor:
    """Y2 = U1 ⋆ ψ2 at stride 2^k of one stack, (..., R, L), from the rffts of U1.

    Each group's product Û1·ψ̂2 (its first min(L, bins) bins; the rest, negative
    frequencies of an analytic filter, are 0) is written straight into one
    spectrum buffer, then one inverse FFT of length L.

    With grad mode on, ``u1_f`` is a list the caller gives every stack in turn
    (stacks in order, so the bins kept only shrink): each entry is replaced by the
    bins this stack keeps. The next stack slices that narrower view, so the
    backward of each slice (a zero-filled buffer of its input's size) stays as small
    as the stacks' spectra instead of the full rfft of U1 once per stack.
    """
    filt = [t["psi2"][(st.n2, i)] for i in st.groups]
    if torch.is_grad_enabled():          # differentiable (no out=): pad and concatenate
        parts = []
        for i, h in zip(st.groups, filt):
            if u1_f[i].shape[-1] != h.shape[-1]:
                u1_f[i] = u1_f[i][..., :h.shape[-1]]
            parts.append(u1_f[i] * h)
        parts = [p if p.shape[-1] == st.length else nnf.pad(p, (0, st.length - p.shape[-1]))
                 for p in parts]
        return torch.fft.ifft(torch.cat(parts, dim=-2), n=st.length, norm="forward")
    ref = u1_f[st.groups[0]]
    spec = torch.empty(*ref.shape[:-2], st.n_rows, st.length, dtype=ref.dtype, device=ref.device)
    for i, h in zip(st.groups, filt):
        g = groups[i]
        torch.mul(u1_f[i][..., :h.shape[-1]], h, out=spec[..., g.start:g.stop, :h.shape[-1]])
        spec[..., g.start:g.stop, h.shape[-1]:] = 0       # only the bins not written
    return torch.fft.ifft(spec, n=st.length, norm="forward")


def _lowpass_time(u: torch.Tensor, phi_k: torch.Tensor, L_s: int, i0: int, i1: int) -> torch.Tensor:
    """(u ⋆ φ_T) sampled at stride 2^s and unpadded; u real (..., L_k) at stride 2^k.

    The band-limited lowpass only needs the first L_s/2 + 1 bins of û
    (φ̂_T is ~4e-6 at the new Nyquist), so the subsampling is a truncation.
    """
    u_f = torch.fft.rfft(u)
    return _lowpass_from_rfft(u_f, phi_k, L_s, i0, i1)


def _lowpass_from_rfft(u_f: torch.Tensor, phi_k: torch.Tensor, L_s: int, i0: int, i1: int):
    n = phi_k.shape[-1]
    out = torch.fft.irfft(u_f[..., :n] * phi_k, n=L_s, norm="forward")
    return out[..., i0:i1]


# ---------------------------------------------------------------------------
# the feature
# ---------------------------------------------------------------------------

@FEATURES.register("jtfs")
class JTFS(Feature):
    """Joint time–frequency scattering: the paper's operator (kymatio PR #674), docs/jtfs.md.

    The defaults are the paper's settings except ``n_samples``; the paper's FTM
    preset is :data:`PAPER_FTM` (K = 20,762).

    Parameters
    ----------
    n_samples : int
        Input length N.
    J : int
        Log2 of the largest time scale (wavelets and, with T='global', φ_T).
    Q : (int, int)
        Wavelets per octave, first and second order.
    J_fr : int or None
        Octaves of frequential wavelets; None = the paper's default from the
        largest stack height R (min(max(⌈log2 R⌉-2, 3), ⌈log2 R⌉), 6 for R=131).
    Q_fr : int
        Frequential wavelets per octave.
    F : int
        Width (rows) of the frequential lowpass φ_F of the φ_f paths.
    T : int or 'global'
        Time averaging: int = φ_T of width 2^⌊log2 T⌋ everywhere, sampled at
        that stride; 'global' = the paper's (S1/φ_t paths at T = 2^J, ψ_t
        paths mean over time).
    pad_mode, pad_mode_fr : {'zero', 'reflect'}
        Padding of the time axis and of the n1 axis.
    max_pad_factor, max_pad_factor_fr : int or None
        Padding caps: padded length ≤ 2^(⌈log2 length⌉ + factor); None = no cap.
    include_s0 : bool
        Prepend the zeroth order (signed), as the paper's operator does.
    log_eps : float or None
        ε of log1p(S/ε) in ``__call__``; None = no compression. The paper: 1e-3.
    trim : bool
        With T='global' and zero padding, average the ψ_t paths over the input
        ± 16 envelope standard deviations only: faster, but it drops tails that
        the reference counts (up to 16 % on a ψ_t path, docs/jtfs.md). Off by default.
    """

    def __init__(self, n_samples: int, J: int = 13, Q=(12, 1), J_fr=None, Q_fr: int = 1, F=2,
                 T="global", pad_mode="zero", pad_mode_fr="zero", max_pad_factor=1,
                 max_pad_factor_fr=1, include_s0: bool = True, log_eps: float | None = 1e-3,
                 trim: bool = False) -> None:
        self.settings = JTFSSettings.from_kwargs(n_samples, J, Q, J_fr, Q_fr, F, T, pad_mode,
                                                 pad_mode_fr, max_pad_factor, max_pad_factor_fr,
                                                 include_s0)
        st = self.settings
        (self.n_samples, self.J, self.Q, self.J_fr_setting, self.Q_fr, self.F, self.T,
         self.pad_mode, self.pad_mode_fr, self.max_pad_factor, self.max_pad_factor_fr,
         self.include_s0) = (st.n_samples, st.J, st.Q, st.J_fr, st.Q_fr, st.F, st.T, st.pad_mode,
                             st.pad_mode_fr, st.max_pad_factor, st.max_pad_factor_fr, st.include_s0)
        if log_eps is not None and not log_eps > 0:
            raise ValueError(f"jtfs: log_eps must be > 0 or None, got {log_eps}")
        self.log_eps = None if log_eps is None else float(log_eps)
        self.trim = bool(trim)
        self.plan = _make_plan(st, self.trim)

    @classmethod
    def check_settings(cls, n_samples: int, **settings) -> None:
        """The constructor's argument checks without building the filter bank (config
        validation: ~1 ms instead of seconds for the paper's J = 13)."""
        bound = inspect.signature(cls).bind(n_samples, **settings)
        bound.apply_defaults()
        args = dict(bound.arguments)
        log_eps = args.pop("log_eps")
        args.pop("trim", None)
        JTFSSettings.from_kwargs(**args)
        if log_eps is not None and not log_eps > 0:
            raise ValueError(f"jtfs: log_eps must be > 0 or None, got {log_eps}")

    # ---- sizes and metadata -------------------------------------------------

    @property
    def J_fr(self) -> int:
        return self.plan.J_fr

    @property
    def n_coefficients(self) -> int:
        return sum(len(p.n1) * p.frames for p in self.plan.paths)

    def path_sizes(self) -> dict:
        """Coefficients per path name, e.g. {'S1': 1088, ...}."""
        out: dict = {}
        for p in self.plan.paths:
            out[p.name] = out.get(p.name, 0) + len(p.n1) * p.frames
        return out

    def meta(self) -> pd.DataFrame:
        """One row per flat coefficient, in output order.

        Columns: path, order, n1, j1, xi1, n2, j2, n_fr, j_fr, xi_fr, spin, row,
        frame. -1 (NaN for ξ) where not applicable: n1/j1 for S0, n2/j2 for order
        < 2, n_fr/j_fr for φ_f paths. ``row`` is the row within the path's
        (rows, frames) block, ``frame`` the time frame (0 for global means).
        """
        plan = self.plan
        cols: dict = {c: [] for c in ("path", "order", "n1", "j1", "xi1", "n2", "j2", "n_fr",
                                      "j_fr", "xi_fr", "spin", "row", "frame")}
        for p in plan.paths:
            n1 = np.repeat(np.asarray(p.n1), p.frames)
            size = n1.size
            cols["path"].append(np.full(size, p.name, dtype=object))
            cols["order"].append(np.full(size, p.order))
            cols["n1"].append(n1)
            cols["j1"].append(np.where(n1 >= 0, np.asarray(plan.psi1.j)[np.maximum(n1, 0)], -1))
            cols["xi1"].append(np.where(n1 >= 0, np.asarray(plan.psi1.xi)[np.maximum(n1, 0)], np.nan))
            cols["n2"].append(np.full(size, p.n2))
            cols["j2"].append(np.full(size, p.j2))
            cols["n_fr"].append(np.full(size, p.n_fr))
            cols["j_fr"].append(np.full(size, p.j_fr))
            cols["xi_fr"].append(np.full(size, p.xi_fr))
            cols["spin"].append(np.full(size, p.spin))
            cols["row"].append(np.repeat(np.arange(len(p.n1)), p.frames))
            cols["frame"].append(np.tile(np.arange(p.frames), len(p.n1)))
        return pd.DataFrame({c: np.concatenate(v) for c, v in cols.items()})

    # ---- transform ------------------------------------------------------------

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N) float32/float64 → features (B, K), log-compressed if ``log_eps``."""
        return self.compress(self.coefficients(x))

    def compress(self, S: torch.Tensor) -> torch.Tensor:
        """log1p(S/ε) of flat coefficients (…, K); S0 (signed) as sign·log1p(|S0|/ε)."""
        if self.log_eps is None:
            return S
        n0 = self.plan.paths[0].frames if self.include_s0 else 0
        rest = log1p_compress(S[..., n0:], self.log_eps)
        if not n0:
            return rest
        s0 = S[..., :n0]                                       # signed: odd log, no clamp
        return torch.cat([torch.sign(s0) * log1p_compress(torch.abs(s0), self.log_eps), rest], dim=-1)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """Uncompressed flat S, x (B, N) → (B, K) in ``meta()`` order (e.g. for :func:`calibrate_eps`)."""
        lead, blocks = self._run(x)
        flat = torch.cat([b.flatten(1) for _, b, _ in blocks], dim=-1)
        return flat.reshape(*lead, flat.shape[-1])

    def jacobian_columns(self, x: torch.Tensor, dx: torch.Tensor, *, method: str = "vmap",
                         chunk: int | None = None) -> torch.Tensor:
        """∂Φ(x)·ẋ_p for P tangents, sharing the primal's intermediates (T='global').

        One pass computes S and all P tangent coefficients dS together: the
        tangents ride along the first-order modulus (d|y| = Re(conj(u) dy), u the
        primal phase), the second-order convolutions (batched FFTs) and the
        frequential stage, where every tangent's product comes out of the same
        matrix product and is contracted with the primal phases block by block
        (:func:`_global_stack`), so no phase is ever stored in full and the primal
        is computed once. dΦ = c'(S) ⊙ dS with c the log compression.
        ``method`` is ignored (one algorithm); ``chunk`` bounds the tangents per
        pass (the primal is recomputed per chunk). Local T falls back to the
        default (``torch.func``) implementation.

        Parameters
        ----------
        x : Tensor (B, N)
        dx : Tensor (P, B, N), like x

        Returns
        -------
        Tensor (B, K, P)
        """
        if not self.plan.global_T:
            return super().jacobian_columns(x, dx, method=method, chunk=chunk)
        P = dx.shape[0]
        if chunk is not None and 0 < int(chunk) < P:
            return torch.cat([self.jacobian_columns(x, dx[p:p + int(chunk)]) for p in
                              range(0, P, int(chunk))], dim=-1)
        self._check(x)
        if x.dim() != 2:
            raise ValueError(f"jtfs: jacobian_columns needs x of shape (B, N), got {tuple(x.shape)}")
        if dx.shape[1:] != x.shape or dx.dtype != x.dtype:
            raise ValueError(f"jtfs: tangents must be (P, *x.shape) = (P, {tuple(x.shape)}) in "
                             f"{x.dtype}, got {tuple(dx.shape)} {dx.dtype}")
        with torch.no_grad():
            blocks = self._transform(x, dx)
            S = torch.cat([b.flatten(1) for _, b, _ in blocks], dim=-1)              # (B, K)
            dS = torch.cat([d.flatten(2) for _, _, d in blocks], dim=-1)             # (P, B, K)
        # derivative of the (elementwise) compression, with torch's conventions at 0
        _, slope = torch.func.jvp(self.compress, (S,), (torch.ones_like(S),))
        return (slope * dS).permute(1, 2, 0)

    def paths(self, x: torch.Tensor) -> list[dict]:
        """Uncompressed paths, in output order.

        Parameters
        ----------
        x : Tensor, shape (B, N), float32 or float64

        Returns
        -------
        list of dict with keys ``name``, ``coef`` (B, rows, frames) in x's dtype,
        ``order``, ``n1`` and ``j1`` (tuples: first-order index and scale of each
        row; -1 for S0), ``n2``, ``j2`` (second-order wavelet, -1 if none),
        ``n_fr``, ``j_fr``, ``xi_fr`` (frequential wavelet, -1/NaN for φ_f),
        ``spin`` (+1 up, -1 down, 0 none), ``frames``.
        """
        lead, blocks = self._run(x)
        coefs = [c for _, b, _ in blocks for c in b.unbind(1)]
        j1 = self.plan.psi1.j
        out = []
        for spec, c in zip(self.plan.paths, coefs, strict=True):
            out.append(dict(name=spec.name, coef=c.reshape(*lead, *c.shape[-2:]), order=spec.order,
                            n1=spec.n1, j1=tuple(j1[n] if n >= 0 else -1 for n in spec.n1),
                            n2=spec.n2, j2=spec.j2, n_fr=spec.n_fr, j_fr=spec.j_fr,
                            xi_fr=spec.xi_fr, spin=spec.spin, frames=spec.frames))
        return out

    def _run(self, x: torch.Tensor):
        self._check(x)
        return x.shape[:-1], self._transform(x.reshape(-1, self.n_samples))

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.n_samples:
            raise ValueError(f"jtfs: input has {x.shape[-1]} samples, expected n_samples="
                             f"{self.n_samples}")
        if x.dtype not in _COMPLEX:
            raise TypeError(f"jtfs: input must be float32 or float64, got {x.dtype}")

    def _transform(self, x: torch.Tensor, dx: torch.Tensor | None = None) -> list:
        """x (B, N) → blocks (name, S (B, n_paths, rows, frames), dS) in ``plan.paths`` order.

        Consecutive paths of equal shape stay in one block, so that the flat
        vector is assembled (and log-compressed) with a few large ops, which
        matters under ``vmap``/``jvp``. With tangents ``dx`` (P, B, N) (only
        without grad mode, T='global'), dS (P, B, n_paths, rows, frames) is the
        forward-mode derivative, sharing every intermediate of the primal
        (:meth:`jacobian_columns`); else dS is None.
        """
        plan = self.plan
        t = _tensors(self.settings, plan, x.device, x.dtype)
        pad, s = plan.pad, plan.log2_T
        L_s = pad.N_pad // 2**s
        i0, i1 = plan.frame_start, plan.frame_start + plan.n_frames
        energy = t["energy"]
        tan = dx is not None

        def padded(v):
            if self.pad_mode == "zero":
                return nnf.pad(v, (pad.pad_left, pad.pad_right))
            if "reflect_index" in t:
                return torch.index_select(v, -1, t["reflect_index"])
            return v

        xp = padded(x)
        x_f = torch.fft.rfft(xp)                                      # (B, N_pad/2+1)
        dxp = padded(dx) if tan else None
        dx_f = torch.fft.rfft(dxp) if tan else None

        blocks = []
        if self.include_s0:
            if plan.global_T:
                s0 = xp.mean(dim=-1, keepdim=True)[:, None]           # (B, 1, 1)
                ds0 = dxp.mean(dim=-1, keepdim=True)[:, :, None] if tan else None
            else:
                s0 = _lowpass_from_rfft(x_f, t["phi"][0], L_s, i0, i1)[:, None]
                ds0 = None
            blocks.append(("S0", (s0 * energy)[:, None], None if ds0 is None else (ds0 * energy)[:, :, None]))

        # first order: U1 per j1-group, kept in Fourier for S1 and Y2; with tangents
        # the primal and its P tangents travel as one stack of 1 + P streams (Q, B, …)
        u1_f, s1, ds1 = [], [], []
        xs_f = torch.cat([x_f[None], dx_f], dim=0) if tan else None   # (Q, B, N_pad/2+1)
        for g, psi in zip(plan.groups, t["psi1"]):
            if tan:
                u_f = _first_order_streams(xs_f, psi, g)              # (Q, B, n_g, L_k/2+1)
                low = _lowpass_from_rfft(u_f, t["phi"][g.k], L_s, i0, i1)
                s1.append(low[0])
                ds1.append(low[1:])
            else:
                y = torch.fft.ifft(x_f[:, None, :g.n_bins] * psi, n=g.length, norm="forward")
                u_f = torch.fft.rfft(modulus(y))                      # (B, n_g, L_k/2+1)
                s1.append(_lowpass_from_rfft(u_f, t["phi"][g.k], L_s, i0, i1))
            u1_f.append(u_f)
        # |·| is exact here (S1 ≥ 0) and removes FFT round-off negatives
        S1raw = torch.cat(s1, dim=1) * energy                          # (B, n1, frames)
        S1 = torch.abs(S1raw)
        dS1 = torch.sgn(S1raw) * torch.cat(ds1, dim=2) * energy if tan else None
        blocks.append(("S1", S1[:, None], None if dS1 is None else dS1[:, :, None]))

        # first-order joint paths (φ_t): n1-convolutions of the averaged scalogram
        R1 = plan.rows_phi_t
        z = torch.matmul(t["H1_phi"], S1)
        dz = torch.sgn(z) * torch.matmul(t["H1_phi"], dS1) if tan else None
        blocks.append(("phi_t*phi_f", torch.abs(z)[:, None], None if dz is None else dz[:, :, None]))
        n_up = len(plan.fbank1.psi_index)
        if n_up:
            z = torch.matmul(t["H1_up"], S1.to(t["H1_up"].dtype))   # (B, n_up·R1, frames)
            out = (modulus(z) * math.sqrt(2.0)).unflatten(1, (n_up, R1))
            dout = None
            if tan:
                dz = torch.view_as_real(torch.matmul(t["H1_up"], dS1.to(t["H1_up"].dtype)))
                zr = torch.view_as_real(z)
                inv = _safe_inverse(torch.hypot(zr[..., 0], zr[..., 1]))
                dm = (dz[..., 0] * zr[..., 0] + dz[..., 1] * zr[..., 1]) * inv
                dout = (dm * math.sqrt(2.0)).unflatten(2, (n_up, R1))
            blocks.append(("phi_t*psi_f", out, dout))

        # second order: one stack per ψ2
        phi_f, up, down = [], [], []
        views = list(u1_f)                       # narrowed stack by stack (_second_order)
        for index, st in enumerate(plan.stacks):
            y2 = _second_order(views, plan.groups, st, t)           # (B, R, L) or (Q, B, R, L)
            y2, dy2 = (y2[0], y2[1:]) if tan else (y2, None)        # dy2 (P, B, R, L)
            S, dS = self._frequential(y2, st, t, index, L_s, i0, i1, dy2)
            S = S * energy                                                  # (B, n_f, R, frames)
            dS = None if dS is None else dS * energy
            n_k = len(st.fbank.psi_index)

            def sl(v, lo, hi):
                return None if v is None else v[..., lo:hi, :, :]
            phi_f.append(("psi_t*phi_f", S[:, :1], sl(dS, 0, 1)))
            if n_k:
                up.append(("psi_t*psi_f_up", S[:, 1:1 + n_k], sl(dS, 1, 1 + n_k)))
                down.append(("psi_t*psi_f_down", S[:, 1 + n_k:], sl(dS, 1 + n_k, 1 + 2 * n_k)))
        return blocks + phi_f + up + down

    def _frequential(self, y2, st: _Stack, t: dict, index: int, L_s: int, i0: int,
                     i1: int, dy2=None):
        """|Y2 ⋆_n1 (φ_F, ψ_fr up, ψ_fr down)| averaged in time → (B, n_f, R, frames).

        Y2 (B, R, L) complex. Global: mean over the padded time axis (over the
        trimmed window when ``trim``), :func:`_global_stack`, which also pushes
        tangents dy2 (P, B, R, L). Local: lowpass φ_T, chunked over filters so
        that at most ``_CHUNK_ELEMENTS`` complex values of H @ Y2 live at once.
        Returns (S, dS or None).
        """
        R = st.n_rows
        n_k = len(st.fbank.psi_index)
        if self.plan.global_T:
            A, dA = _global_stack(y2, t["H2"][index], R, n_k, st.window, dy2)
            A = (A / st.length).unflatten(1, (1 + 2 * n_k, R)).unsqueeze(-1)
            if dA is not None:
                dA = (dA / st.length).unflatten(2, (1 + 2 * n_k, R)).unsqueeze(-1)
            return A, dA
        if dy2 is not None:
            raise NotImplementedError("tangents through local time averaging")
        H = t["H2c"][index]                                            # (n_f, R, R)
        n_f = H.shape[0]
        chunk = max(1, _CHUNK_ELEMENTS // max(1, y2.shape[0] * R * y2.shape[-1]))
        res = []
        for f0 in range(0, n_f, chunk):
            f1 = min(n_f, f0 + chunk)
            amp = modulus(torch.matmul(H[f0:f1].reshape((f1 - f0) * R, R), y2))
            # |·|: the lowpass of |·| ≥ 0 is ≥ 0; this only removes FFT round-off
            avg = torch.abs(_lowpass_time(amp, t["phi"][st.k], L_s, i0, i1))
            res.append(avg.unflatten(1, (f1 - f0, R)))
        return torch.cat(res, dim=1), None


def calibrate_eps(S: torch.Tensor) -> float:
    """A helper for choosing ε in log1p(S/ε): the median of S (docs/jtfs.md).

    Not a default: both presets use the paper's ε = 1e-3.

    Parameters
    ----------
    S : Tensor, shape (B, K) or any shape
        Uncompressed coefficients (``JTFS.coefficients``) of a sample of
        training sounds (e.g. 64–256 draws from the training fold).

    Returns
    -------
    float
        median of all entries with S > 0 (drops signed S0 and exact zeros of
        silent paths, which carry no scale information).
    """
    flat = S.detach().flatten()
    flat = flat[flat > 0]
    if flat.numel() == 0:
        raise ValueError("calibrate_eps: S has no positive coefficient (silent sounds?)")
    return float(flat.double().median())
