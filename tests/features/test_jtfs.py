"""Tests for our JTFS (pnp_core.features.jtfs) and its filter bank.

Small settings (N = 2**12 or 2**13, J ≤ 8) keep the file fast on 2 CPU cores;
only the paper-size coefficient count builds N = 2**16 filters (no forward).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.func import jacfwd, jvp, vjp, vmap

from pnp_core.features import Feature, get_feature
from pnp_core.features.jtfs import (JTFS, LAPTOP_FTM, PAPER_AMFM, PAPER_FTM, _tensors, calibrate_eps,
                                    _global_stack, _StackModulusSum)
from pnp_core.synth import get_synth

N = 2**12
SMALL = dict(n_samples=N, J=6, Q=(8, 1), Q_fr=1, F=2, T="global")


def small(**kw) -> JTFS:
    return JTFS(**{**SMALL, **kw})


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def drum(n: int = N, dtype=torch.float64, f0: float = 200.0) -> torch.Tensor:
    g = get_synth("ftm", sr=22050, n_samples=n)
    theta = torch.tensor([[2 * math.pi * f0, 0.4, 1e-3, 1e-3, 0.5]], dtype=dtype)
    return g(theta)


def chirp(n: int, f_start: float, f_end: float) -> torch.Tensor:
    """Hann-windowed exponential chirp over the middle half, (1, n) float64."""
    m = n // 2
    t = torch.arange(m, dtype=torch.float64)
    k = math.log(f_end / f_start) / m
    phase = 2 * math.pi * f_start * (torch.exp(k * t) - 1) / k
    x = torch.zeros(n, dtype=torch.float64)
    x[n // 4:n // 4 + m] = torch.hann_window(m, dtype=torch.float64) * torch.cos(phase)
    return x[None]


# ---------------------------------------------------------------------------
# engine helpers (filter design: test_filterbank.py; the reference: test_jtfs_reference.py)
# ---------------------------------------------------------------------------

def _stack_mats(R: int, n_k: int, seed: int = 1):
    """Random frequential matrices of one stack in the three layouts of _tensors."""
    rng = np.random.default_rng(seed)
    Hd = rng.standard_normal((n_k, R, R)) + 1j * rng.standard_normal((n_k, R, R))
    Hphi = rng.standard_normal((R, R))
    Hr, Hi = Hd.real.reshape(-1, R), Hd.imag.reshape(-1, R)
    Z = 0 * Hphi
    mats = {"block": torch.tensor(np.block([[Hphi, Z], [Hr, Hi], [Hr, -Hi], [Z, Hphi], [-Hi, Hr], [Hi, Hr]])),
            "conj": torch.tensor(np.concatenate([Hphi, Hr, Hi]))}
    return Hd, Hphi, mats


def test_global_stack_equals_direct_complex_products_and_their_tangents():
    R, n_k, L = 5, 2, 300
    Hd, Hphi, mats = _stack_mats(R, n_k)
    gen = torch.Generator().manual_seed(0)
    y = torch.randn(2, R, L, dtype=torch.complex128, generator=gen)
    dy = torch.randn(3, 2, R, L, dtype=torch.complex128, generator=gen)
    y[0, :, 7] = 0                                         # exact zeros: phase 0, finite
    H_all = torch.tensor(np.concatenate([Hphi[None] + 0j, Hd.conj(), Hd]).reshape(-1, R))
    direct = (H_all @ y).abs().sum(-1)                     # φ, up (= conj), down
    with torch.no_grad():
        A, dA = _global_stack(y, mats, R, n_k, (0, L), dy)
        A2, _ = _global_stack(y, mats, R, n_k, (0, L))
    torch.testing.assert_close(A, direct, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(A2, direct, rtol=1e-12, atol=1e-12)
    for p in range(3):                                     # jvp of the differentiable path
        _, t = jvp(lambda v: _global_stack(v, mats, R, n_k, (0, L))[0], (y,), (dy[p],))
        torch.testing.assert_close(dA[p], t, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("L", [200, 12])      # T ≥ 2M (g scales the matrix) and T < 2M
def test_stack_modulus_sum_gradcheck_jvp_vmap_and_zero(L):
    # the frequential stage's autograd.Function: reverse and forward mode against finite
    # differences (float64), over several time blocks, with exact zeros in Z
    R, n_k = 3, 1
    _, _, mats = _stack_mats(R, n_k)
    Hb = mats["block"]
    gen = torch.Generator().manual_seed(2)
    Ys = torch.randn(2, 2 * R, L, dtype=torch.float64, generator=gen)
    Ys[:, :, 5:9] = 0                                      # Z = 0 there: phase 0, finite
    import pnp_core.features.jtfs as jt
    old, jt._BLOCK_NUMBERS = jt._BLOCK_NUMBERS, 2**9       # several blocks of 32 steps
    try:
        assert torch.autograd.gradcheck(lambda v: _StackModulusSum.apply(v, Hb),
                                         (Ys.clone().requires_grad_(),), check_forward_ad=True,
                                         check_batched_grad=True, check_batched_forward_grad=True)
        # vmap over the primal and over tangents/cotangents (torch.func)
        f = lambda v: _StackModulusSum.apply(v, Hb)        # noqa: E731
        torch.testing.assert_close(vmap(f)(Ys[:, None]).squeeze(1), f(Ys))
        T = torch.randn(4, *Ys.shape, dtype=torch.float64, generator=gen)
        cols = vmap(lambda d: jvp(f, (Ys,), (d,))[1])(T)
        _, pull = vjp(f, Ys)
        G = torch.randn(4, 2, Hb.shape[0] // 2, dtype=torch.float64, generator=gen)
        rows = vmap(pull)(G)[0]
        torch.testing.assert_close((rows * T).sum((1, 2, 3)), (G * cols).sum((1, 2)))
    finally:
        jt._BLOCK_NUMBERS = old
    zero = torch.zeros(1, 2 * R, 40, dtype=torch.float64)
    assert (jacfwd(lambda v: _StackModulusSum.apply(v, Hb))(zero) == 0).all()
    g = torch.func.grad(lambda v: _StackModulusSum.apply(v, Hb).sum())(zero)
    assert torch.isfinite(g).all() and (g == 0).all()


# ---------------------------------------------------------------------------
# sizes and metadata
# ---------------------------------------------------------------------------

def test_paper_sizes_without_forward():
    # the paper's operator (kymatio PR #674 with average_global) gives 20,762 (docs/jtfs.md)
    f = JTFS(**PAPER_FTM)
    assert f.n_coefficients == 20762
    assert f.path_sizes() == {"S0": 1, "S1": 1096, "phi_t*phi_f": 1048, "phi_t*psi_f": 7336,
                              "psi_t*phi_f": 811, "psi_t*psi_f_up": 5235, "psi_t*psi_f_down": 5235}
    assert f.J_fr == 6
    assert JTFS(**{**PAPER_FTM, "include_s0": False}).n_coefficients == 20761
    assert JTFS(**PAPER_AMFM).n_coefficients == 16018
    assert JTFS(**LAPTOP_FTM).n_coefficients == 21578
    assert JTFS(2**16).n_coefficients == 20762          # the defaults are the paper's


@pytest.mark.parametrize("kw", [dict(), dict(include_s0=False), dict(T=2**5), dict(pad_mode="reflect"),
                                dict(pad_mode_fr="reflect", Q_fr=2, J_fr=3)])
def test_n_coefficients_meta_and_paths_agree(kw):
    f = small(**kw)
    x = torch.randn(2, N, dtype=torch.float64)
    out = f(x)
    paths = f.paths(x)
    meta = f.meta()
    assert out.shape == (2, f.n_coefficients)
    assert len(meta) == f.n_coefficients
    assert sum(p["coef"][0].numel() for p in paths) == f.n_coefficients
    assert [p["name"] for p in paths] == [s.name for s in f.plan.paths]
    names = {p["name"] for p in paths}
    assert names >= {"S1", "phi_t*phi_f", "phi_t*psi_f", "psi_t*phi_f", "psi_t*psi_f_up", "psi_t*psi_f_down"}
    assert ("S0" in names) == kw.get("include_s0", True)
    for p in paths:
        assert p["coef"].shape[1:] == (len(p["n1"]), p["frames"])
        assert p["spin"] == {"psi_t*psi_f_up": 1, "psi_t*psi_f_down": -1, "phi_t*psi_f": 1}.get(p["name"], 0)
    # the flat vector is the paths in order; meta rows line up with it
    flat = torch.cat([p["coef"].flatten(1) for p in paths], dim=1)
    torch.testing.assert_close(f.coefficients(x), flat)
    up = torch.tensor((meta.path == "psi_t*psi_f_up").values)
    assert (meta.spin[meta.path == "psi_t*psi_f_up"] == 1).all()
    assert up.sum() == sum(p["coef"][0].numel() for p in paths if p["name"] == "psi_t*psi_f_up")
    assert set(meta.order.unique()) <= {0, 1, 2}
    assert (meta.j1[meta.order == 2] < meta.j2[meta.order == 2]).all()


def test_global_frames_and_local_frames():
    f = small()
    x = torch.randn(1, N, dtype=torch.float64)
    for p in f.paths(x):
        expected = 1 if p["name"].startswith("psi_t") or p["name"] == "S0" else N // 2**6
        assert p["frames"] == expected == p["coef"].shape[-1]
    g = small(T=2**5)
    assert all(p["coef"].shape[-1] == N // 2**5 for p in g.paths(x))


def test_registry_and_settings_errors():
    assert isinstance(get_feature("jtfs", **SMALL), JTFS)
    x = torch.randn(1, N + 1)
    with pytest.raises(ValueError, match="n_samples"):
        small()(x)
    with pytest.raises(ValueError, match="pad_mode"):
        small(pad_mode="circular")
    with pytest.raises(ValueError, match="T must be"):
        small(T="local")
    with pytest.raises(ValueError, match="log_eps"):
        small(log_eps=0.0)
    with pytest.raises(ValueError, match="J"):
        small(J=13)


# ---------------------------------------------------------------------------
# the transform
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(T=2**5, pad_mode="reflect", pad_mode_fr="reflect")])
def test_coefficients_non_negative_except_s0(device, kw):
    f = small(include_s0=True, **kw)
    gen = torch.Generator().manual_seed(0)
    impulse = torch.zeros(1, N, dtype=torch.float64)
    impulse[0, N // 3] = 1.0
    x = torch.cat([torch.randn(1, N, generator=gen, dtype=torch.float64), drum(), impulse]).to(device)
    for p in f.paths(x):
        if p["name"] != "S0":
            assert (p["coef"] >= 0).all(), p["name"]
    not_s0 = torch.tensor((f.meta().path != "S0").values, device=x.device)
    assert (f(x)[:, not_s0] >= 0).all()


def test_global_averaging_is_invariant_to_delay():
    # S1 and the φ_t paths are averaged at T = 2^J; with 2^J = N they have one frame
    # spanning the whole input, so every path is (near) global.
    f = JTFS(N, J=12, Q=(8, 1), T="global", log_eps=None)
    gen = torch.Generator().manual_seed(1)
    burst = torch.randn(N // 4, generator=gen, dtype=torch.float64) * torch.hann_window(N // 4, dtype=torch.float64)
    x = torch.zeros(2, N, dtype=torch.float64)
    x[0, 3 * N // 8:5 * N // 8] = burst
    x[1, 3 * N // 8 + 256:5 * N // 8 + 256] = burst
    S = f.coefficients(x)
    assert rel(S[1], S[0]) < 0.01
    # control: with local averaging (T = 2^6) the same delay is clearly visible
    g = JTFS(N, J=12, Q=(8, 1), T=2**6, log_eps=None)
    L = g.coefficients(x)
    assert rel(L[1], L[0]) > 0.1


def test_chirp_direction_excites_matching_spin():
    # the reference's names: a rising chirp lands in ``down`` (spin -1, analytic ψ_fr)
    f = JTFS(2**13, J=8, Q=(8, 1), T="global", log_eps=None)

    def up_down_energy(x):
        paths = f.paths(x)
        up = sum(float((p["coef"] ** 2).sum()) for p in paths if p["name"] == "psi_t*psi_f_up")
        down = sum(float((p["coef"] ** 2).sum()) for p in paths if p["name"] == "psi_t*psi_f_down")
        return up / down

    rising, falling = up_down_energy(chirp(2**13, 0.01, 0.2)), up_down_energy(chirp(2**13, 0.2, 0.01))
    assert rising < 0.1 and falling > 10.0
    assert rising * falling == pytest.approx(1.0, rel=0.05)    # time reversal swaps the spins


def test_batch_equals_per_sample(device):
    f = small(include_s0=True)
    gen = torch.Generator().manual_seed(2)
    x = torch.cat([torch.randn(2, N, generator=gen, dtype=torch.float64), drum()]).to(device)
    batched = f(x)
    single = torch.cat([f(x[i:i + 1]) for i in range(3)])
    torch.testing.assert_close(batched, single, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(vmap(f)(x[:, None])[:, 0], batched, rtol=1e-10, atol=1e-12)


def test_float32_matches_float64(device):
    f = small(include_s0=True, log_eps=None)
    x = torch.cat([drum(), torch.randn(1, N, dtype=torch.float64, generator=torch.Generator().manual_seed(3))])
    x = x.to(device)
    S64 = f.coefficients(x)
    S32 = f.coefficients(x.float())
    assert S32.dtype == torch.float32
    assert rel(S32.double(), S64) < 1e-4
    g = small(include_s0=True)
    assert rel(g(x.float()).double(), g(x)) < 1e-4


def test_filters_cached_per_settings_device_dtype():
    f, g = small(), small()
    assert f.settings == g.settings and hash(f.settings) == hash(g.settings)
    assert f.plan is g.plan
    cpu = torch.device("cpu")
    t64 = _tensors(f.settings, f.plan, cpu, torch.float64)
    assert _tensors(g.settings, g.plan, cpu, torch.float64) is t64
    t32 = _tensors(f.settings, f.plan, cpu, torch.float32)
    assert t32 is not t64 and t32["psi1"][0].dtype == torch.float32
    assert t64["psi1"][0].dtype == torch.float64
    assert small(F=1).settings != f.settings


def test_trimmed_global_mean_is_close_to_full_padded_mean():
    f = JTFS(2**13, J=8, Q=(8, 1), T="global", log_eps=None, trim=False, include_s0=False)
    g = JTFS(2**13, J=8, Q=(8, 1), T="global", log_eps=None, trim=True, include_s0=False)
    assert all(st.window == (0, st.length) for st in f.plan.stacks)
    assert any(st.window != (0, st.length) for st in g.plan.stacks)   # trimming is active
    x = torch.cat([drum(2**13), torch.randn(1, 2**13, dtype=torch.float64,
                                             generator=torch.Generator().manual_seed(4))])
    trimmed, full = g.coefficients(x), f.coefficients(x)
    assert rel(trimmed, full) < 1e-2                                     # docs/jtfs.md
    assert (torch.log1p(trimmed / 1e-3) - torch.log1p(full / 1e-3)).abs().max() < 0.1


# ---------------------------------------------------------------------------
# log compression and ε
# ---------------------------------------------------------------------------

def test_log_compression_and_signed_s0():
    f = small(include_s0=True, log_eps=1e-3)
    x = -1.0 - torch.rand(1, N, dtype=torch.float64)                # negative mean → S0 < 0
    S = f.coefficients(x)
    assert S[0, 0] < -1e-3
    out = f(x)
    assert torch.isfinite(out).all()
    assert out[0, 0] == pytest.approx(-math.log1p(-float(S[0, 0]) / 1e-3))
    torch.testing.assert_close(out[:, 1:], torch.log1p(S[:, 1:].clamp_min(0) / 1e-3))
    torch.testing.assert_close(small(include_s0=True, log_eps=None)(x), S)


def test_calibrate_eps_is_median_of_positive_coefficients():
    S = torch.tensor([[-5.0, 0.0, 1.0, 2.0, 3.0, 10.0, 100.0]])
    assert calibrate_eps(S) == pytest.approx(float(torch.tensor([1.0, 2, 3, 10, 100]).median()))
    with pytest.raises(ValueError):
        calibrate_eps(torch.zeros(3, 4))
    f = small(log_eps=None)
    eps = calibrate_eps(f.coefficients(drum()))
    assert 0 < eps < float(f.coefficients(drum()).max())


# ---------------------------------------------------------------------------
# derivatives
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["silent", "impulse", "noise"])
@pytest.mark.parametrize("kw", [dict(include_s0=True), dict(T=2**5, include_s0=True)])
def test_gradients_finite(device, kind, kw):
    f = small(**kw)
    x = torch.zeros(1, N, dtype=torch.float64, device=device)
    if kind == "impulse":
        x[0, N // 2] = 1.0
    elif kind == "noise":
        x = torch.randn(1, N, dtype=torch.float64, generator=torch.Generator().manual_seed(5)).to(device)
    # reverse mode (.backward and vjp)
    xr = x.clone().requires_grad_()
    f(xr).sum().backward()
    assert torch.isfinite(xr.grad).all()
    (g,) = vjp(f, x)[1](torch.ones(1, f.n_coefficients, dtype=x.dtype, device=device))
    assert torch.isfinite(g).all()
    # forward mode: jvp at the point, including a zero input
    v = torch.randn(1, N, dtype=x.dtype, generator=torch.Generator().manual_seed(6)).to(device)
    out, tangent = jvp(f, (x,), (v,))
    assert torch.isfinite(out).all() and torch.isfinite(tangent).all()
    torch.testing.assert_close(g.flatten() @ v.flatten(), tangent.sum(), rtol=1e-8, atol=1e-8)


def test_jacfwd_of_jtfs_of_ftm_matches_central_differences():
    # ν = natural parameters (log10 on log-scaled columns); float64; steps small
    # enough for the high-curvature ω column (FD error ~1 % at 1e-5), large enough for round-off.
    n = 2**12
    g = get_synth("ftm", sr=22050, n_samples=n)
    f = JTFS(n, J=6, Q=(8, 1), T="global", include_s0=True, log_eps=1e-3)
    space = g.space
    log_mask = torch.tensor(space.log_mask)
    nu0 = torch.tensor(space.to_natural(np.array([2 * math.pi * 220.0, 0.3, 1e-2, 3e-3, 0.6])))

    def phi(nu):
        theta = torch.where(log_mask, 10.0 ** nu, nu)
        return f(g(theta[None]))[0]

    J = jacfwd(phi)(nu0)                                            # (K, 5)
    for p, step in enumerate([1e-7, 1e-6, 1e-6, 1e-6, 1e-7]):
        e = torch.zeros(5, dtype=torch.float64)
        e[p] = step
        fd = (phi(nu0 + e) - phi(nu0 - e)) / (2 * step)
        assert rel(J[:, p], fd) < 1e-4, space.names[p]
    # jvp loop and vmap agree with jacfwd
    col = jvp(phi, (nu0,), (torch.eye(5, dtype=torch.float64)[2],))[1]
    torch.testing.assert_close(col, J[:, 2], rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------
# the Jacobian hook (shared-intermediate override of Feature.jacobian_columns)
# ---------------------------------------------------------------------------

def _ftm_tangents(n: int, B: int = 2):
    g = get_synth("ftm", sr=22050, n_samples=n)
    theta = torch.tensor([[2 * math.pi * 220.0, 0.3, 1e-2, 3e-3, 0.6],
                          [2 * math.pi * 90.0, 0.8, 3e-3, 1e-3, 0.2]][:B], dtype=torch.float64)
    x = g(theta).detach()
    eye = torch.eye(5, dtype=torch.float64)
    dx = torch.stack([jvp(g, (theta,), (e.expand(B, 5),))[1] for e in eye]).detach()
    return x, dx


@pytest.mark.parametrize("kw", [dict(), dict(trim=True), dict(include_s0=False, log_eps=None)])
def test_jacobian_columns_override_equals_default(kw):
    f = small(**kw)
    x, dx = _ftm_tangents(N)
    ours = f.jacobian_columns(x, dx)
    assert ours.shape == (2, f.n_coefficients, 5) and ours.dtype == torch.float64
    for method in ("jvp", "vmap"):
        ref = Feature.jacobian_columns(f, x, dx, method=method)
        assert rel(ours, ref) < 1e-10, method
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-10 * float(ref.abs().max()))
    torch.testing.assert_close(f.jacobian_columns(x, dx, chunk=2), ours, rtol=1e-10, atol=1e-12)


def test_jacobian_columns_matches_finite_differences():
    f = small()
    x, dx = _ftm_tangents(N, B=1)
    cols = f.jacobian_columns(x, dx)[0]                             # (K, 5)
    for p in range(5):
        d = dx[p] / dx[p].norm() * x.norm()                         # unit-scale direction
        h = 1e-6
        with torch.no_grad():
            fd = (f(x + h * d) - f(x - h * d)) / (2 * h)
        assert rel(cols[:, p] * (x.norm() / dx[p].norm()), fd[0]) < 1e-5, p


def test_jacobian_columns_float32_and_local_T_fall_back():
    x, dx = _ftm_tangents(N)
    f = small()
    c32 = f.jacobian_columns(x.float(), dx.float())
    assert c32.dtype == torch.float32
    assert rel(c32.double(), f.jacobian_columns(x, dx)) < 1e-3
    g = small(T=2**5)                                               # default implementation
    torch.testing.assert_close(g.jacobian_columns(x, dx[:2]), Feature.jacobian_columns(g, x, dx[:2]))
