import math

import pytest
import torch

from pnp_core.features import get_feature
from pnp_core.features.mss import PAPER_N_FFTS
from pnp_core.synth import get_synth


def _sounds(n=3, N=4096, dtype=torch.float64, device="cpu"):
    g = get_synth("ftm", sr=22050, n_samples=N)
    theta = torch.tensor([[2 * math.pi * f, 0.3, 1e-3, 1e-3, 0.6] for f in (110, 220, 440)][:n],
                         dtype=dtype, device=device)
    return g(theta)


def test_paper_scales_and_shape(device):
    mss = get_feature("mss", n_samples=4096)
    assert mss.n_ffts == PAPER_N_FFTS == (2048, 1024, 512, 256, 128, 64)
    x = _sounds(device=device)
    S = mss(x)
    assert S.shape == (3, mss.n_coefficients) and S.device.type == device.type
    assert (S >= 0).all()
    spec = mss.spectrograms(x)
    assert [s.shape[1] for s in spec] == [n // 2 + 1 for n in PAPER_N_FFTS]
    assert [s.shape[2] for s in spec] == [4096 // (n // 4) + 1 for n in PAPER_N_FFTS]


def test_distance_is_per_sample_and_batch_independent():
    mss = get_feature("mss", n_samples=4096, log_weight=1.0)
    x, y = _sounds(), _sounds().flip(0)
    d = mss.distance(x, y)
    assert d.shape == (3,)
    assert d[1] == pytest.approx(0.0, abs=1e-9)  # middle sound is paired with itself
    single = torch.stack([mss.distance(x[i:i + 1], y[i:i + 1])[0] for i in range(3)])
    assert torch.allclose(d, single, rtol=1e-12)
    # adding more samples to the batch does not change a sample's distance
    d2 = mss.distance(torch.cat([x, x]), torch.cat([y, x]))
    assert torch.allclose(d2[:3], d, rtol=1e-12) and torch.all(d2[3:] == 0)


def test_mss_is_torch_func_ready():
    mss = get_feature("mss", n_samples=1024, n_ffts=(256, 64))
    g = get_synth("ftm", sr=22050, n_samples=1024)
    theta = torch.tensor([2 * math.pi * 300, 0.3, 1e-3, 1e-3, 0.6], dtype=torch.float64)
    J = torch.func.jacfwd(lambda t: mss(g(t.unsqueeze(0)))[0])(theta)
    assert J.shape == (mss.n_coefficients, 5) and torch.isfinite(J).all()
    eps = 1e-6 * theta[0]
    d = torch.zeros(5, dtype=torch.float64)
    d[0] = eps
    fd = (mss(g((theta + d)[None]))[0] - mss(g((theta - d)[None]))[0]) / (2 * eps)
    assert torch.linalg.vector_norm(J[:, 0] - fd) <= 1e-4 * torch.linalg.vector_norm(fd)


def test_bad_settings():
    with pytest.raises(ValueError, match="n_ffts"):
        get_feature("mss", n_samples=1024, n_ffts=())
