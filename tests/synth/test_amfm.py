
import numpy as np
import pytest
import scipy.signal
import torch

from pnp_core.synth import get_synth


def test_shapes_dtypes_devices(device):
    g = get_synth("amfm", sr=8192, n_samples=8192)
    for dtype in (torch.float32, torch.float64):
        x = g(torch.tensor([[700.0, 8.0, 2.0]] * 3, dtype=dtype, device=device))
        assert x.shape == (3, 8192) and x.dtype == dtype and x.device.type == device.type
        assert torch.isfinite(x).all()


@pytest.mark.parametrize("f_c,f_m,gamma", [(600.0, 6.0, 1.0), (900.0, 12.0, 3.0)])
def test_instantaneous_frequency_follows_exponential_chirp(f_c, f_m, gamma):
    sr, n = 8192, 4 * 8192
    g = get_synth("amfm", sr=sr, n_samples=n)
    x = g(torch.tensor([[f_c, f_m, gamma]], dtype=torch.float64))[0].numpy()
    z = scipy.signal.hilbert(x)
    inst = np.diff(np.unwrap(np.angle(z))) * sr / (2 * np.pi)
    t = (np.arange(n) - n // 2) / sr
    t_mid = 0.5 * (t[1:] + t[:-1])
    env = np.abs(z)
    # Where the envelope is strong the phase derivative is the carrier's; AM zero
    # crossings (phase jumps of π) are excluded by the envelope threshold.
    strong = (env[1:] > 0.3 * env.max()) & (env[:-1] > 0.3 * env.max())
    expected = f_c * 2.0 ** (gamma * t_mid)
    assert strong.sum() > 500
    rel = np.abs(inst[strong] - expected[strong]) / expected[strong]
    assert np.median(rel) < 2e-3
    assert np.quantile(rel, 0.9) < 2e-2


def test_jacfwd_matches_finite_differences():
    g = get_synth("amfm", sr=8192, n_samples=2048)
    theta = torch.tensor([700.0, 8.0, 2.0], dtype=torch.float64)
    jac = torch.func.jacfwd(g)(theta)
    for j in range(3):
        eps = 1e-6 * theta[j]
        d = torch.zeros(3, dtype=torch.float64)
        d[j] = eps
        fd = (g(theta + d) - g(theta - d)) / (2 * eps)
        assert torch.allclose(jac[:, j], fd, rtol=0, atol=1e-6 * fd.abs().max())
    th = theta.clone().requires_grad_(True)
    g(th).pow(2).sum().backward()
    assert torch.allclose(th.grad, (2 * g(theta)[:, None] * jac).sum(0), rtol=1e-8)
