import math

import numpy as np
import pytest
import scipy.signal
import torch

from pnp_core.synth import get_synth

THETA = [2 * math.pi * 220.0, 0.3, 1e-3, 1e-3, 0.6]  # ω₁ (rad/s), τ₁ (s), p, D, α


def test_shapes_dtypes_devices(device):
    g = get_synth("ftm", sr=22050, n_samples=4096)
    for dtype in (torch.float32, torch.float64):
        theta = torch.tensor([THETA, THETA], dtype=dtype, device=device)
        x = g(theta)
        assert x.shape == (2, 4096) and x.dtype == dtype and x.device.type == device.type
        assert torch.isfinite(x).all()
        assert torch.allclose(x.abs().amax(-1), torch.ones(2, dtype=dtype, device=device))
        assert g(theta[0]).shape == (4096,)


def test_rejects_wrong_width():
    g = get_synth("ftm", sr=22050, n_samples=256)
    with pytest.raises(ValueError, match="expected 5"):
        g(torch.zeros(1, 3))


def test_fundamental_frequency_and_decay_match_omega_and_tau():
    sr, n = 22050, 2**15
    g = get_synth("ftm", sr=sr, n_samples=n)
    omega, tau = THETA[0], THETA[1]
    x = g(torch.tensor([THETA], dtype=torch.float64))[0].numpy()
    f1 = omega / (2 * math.pi)
    # Spectral peak near f1 (zero-padded FFT, parabolic interpolation).
    nfft = 8 * n
    spec = np.abs(np.fft.rfft(x * np.hanning(n), nfft))
    freqs = np.fft.rfftfreq(nfft, 1 / sr)
    band = (freqs > 0.8 * f1) & (freqs < 1.15 * f1)
    k = np.flatnonzero(band)[np.argmax(spec[band])]
    a, b, c = np.log(spec[k - 1 : k + 2])
    peak = freqs[k] + 0.5 * (a - c) / (a - 2 * b + c) * (freqs[1] - freqs[0])
    assert peak == pytest.approx(f1, rel=2e-3)
    # Decay of the (1,1) mode: band-pass around f1, Hilbert envelope, log-linear fit.
    sos = scipy.signal.butter(4, [0.85 * f1, 1.15 * f1], btype="band", fs=sr, output="sos")
    env = np.abs(scipy.signal.hilbert(scipy.signal.sosfiltfilt(sos, x)))
    t = np.arange(n) / sr
    fit = (t > 0.1) & (t < 1.2)
    slope = np.polyfit(t[fit], np.log(env[fit]), 1)[0]
    assert -slope == pytest.approx(1 / tau, rel=0.03)


def test_modes_above_nyquist_are_masked_one_by_one():
    sr, n = 8000, 2048
    g = get_synth("ftm", sr=sr, n_samples=n)
    theta = torch.tensor([[2 * math.pi * 900, 0.5, 1e-5, 0.2, 0.9]], dtype=torch.float64)
    amp, sigma, w = (v[0].numpy() for v in g.modal(theta))
    keep = w < math.pi * sr
    assert 0 < keep.sum() < len(keep), "θ must put some, not all, modes above Nyquist"
    # not a rectangle: the kept modes do not form a full sub-grid of rows × columns
    grid = keep.reshape(10, 10)
    assert not np.array_equal(grid, np.outer(grid.any(1), grid.any(0)))
    t = np.arange(n) / sr
    ref = (amp[keep, None] * np.exp(-sigma[keep, None] * t) * np.sin(w[keep, None] * t)).sum(0)
    np.testing.assert_allclose(g(theta)[0].numpy(), ref / np.abs(ref).max(), atol=1e-12)


def _fd_grad(fn, theta, eps):
    cols = []
    for j in range(theta.shape[-1]):
        d = torch.zeros_like(theta)
        d[..., j] = eps[j]
        cols.append((fn(theta + d) - fn(theta - d)) / (2 * eps[j]))
    return torch.stack(cols, dim=-1)


def test_gradient_and_jacfwd_match_finite_differences():
    g = get_synth("ftm", sr=22050, n_samples=1024)
    theta = torch.tensor(THETA, dtype=torch.float64)
    eps = theta.abs() * 1e-6
    fd = _fd_grad(g, theta, eps)                              # (N, P)
    jac = torch.func.jacfwd(g)(theta)                         # (N, P)
    assert jac.shape == (1024, 5)
    scale = fd.abs().amax(dim=0)
    assert torch.all((jac - fd).abs().amax(dim=0) <= 1e-5 * scale)
    # reverse mode on a scalar loss agrees with jacfwd
    th = theta.clone().requires_grad_(True)
    w = torch.linspace(-1, 1, 1024, dtype=torch.float64)
    (g(th) * w).sum().backward()
    assert torch.allclose(th.grad, (jac * w[:, None]).sum(0), rtol=1e-8, atol=1e-12)


def test_vmap_matches_batch():
    g = get_synth("ftm", sr=22050, n_samples=512)
    theta = torch.tensor([THETA, [2 * math.pi * 80, 0.7, 0.05, 0.1, 0.3]], dtype=torch.float64)
    assert torch.allclose(torch.func.vmap(g)(theta), g(theta), atol=1e-12)


def test_float32_is_finite_at_extremes():
    g = get_synth("ftm", sr=22050, n_samples=2048)
    low = [p.low for p in g.space]
    high = [p.high for p in g.space]
    x = g(torch.tensor([low, high], dtype=torch.float32))
    assert torch.isfinite(x).all()
