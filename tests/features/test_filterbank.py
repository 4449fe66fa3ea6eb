"""Filter design of our JTFS (pnp_core.features.filterbank) against the paper's operator.

The design facts (centre frequencies, bandwidths, counts) are checked against the
fixture ``tests/data/jtfs_pr674_dev.npz`` (kymatio PR #674's own values); the rest are
properties of the design (analyticity, Nyquist treatment, Littlewood–Paley peaks,
folds, convolution matrices). Plan construction only, no transform: fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pnp_core.features import filterbank as fb
from pnp_core.features.jtfs import JTFS

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "jtfs_pr674_dev.npz"


@pytest.fixture(scope="module")
def ref():
    return np.load(FIXTURE)


def plan_of(ref, setting):
    kw = json.loads(str(ref[f"{setting}_kwargs"]))
    return JTFS(n_samples=kw["shape"][0], J=kw["J"], Q=tuple(kw["Q"]), Q_fr=kw["Q_fr"], F=kw["F"],
                max_pad_factor=kw["max_pad_factor"], max_pad_factor_fr=kw["max_pad_factor_fr"]).plan


@pytest.mark.parametrize("setting", ["paper", "small"])
def test_centre_frequencies_and_bandwidths_equal_the_reference(ref, setting):
    plan = plan_of(ref, setting)
    for bank, key in ((plan.psi1, "1"), (plan.psi2, "2")):
        np.testing.assert_allclose(bank.xi, ref[f"{setting}_xi{key}"], rtol=1e-12)
        np.testing.assert_allclose(bank.sigma, ref[f"{setting}_sigma{key}"], rtol=1e-12)
    np.testing.assert_allclose(plan.fdesign.xi, ref[f"{setting}_xi_fr"], rtol=1e-12)
    np.testing.assert_allclose(plan.fdesign.sigma, ref[f"{setting}_sigma_fr"], rtol=1e-12)


def test_paper_counts():
    xis, sigmas, js = fb.wavelet_params(fb.SIGMA0 / 2**13, 12, xi_min=2.0 / 2**17)
    assert len(xis) == 137 and xis[0] == pytest.approx(1 / (1 + 2 ** (1 / 12)))
    assert min(js) == 0 and max(js) == 12
    xis2, _, js2 = fb.wavelet_params(fb.SIGMA0 / 2**13, 1, xi_min=2.0 / 2**17)
    np.testing.assert_allclose(xis2, 0.4 * 2.0 ** -np.arange(14))
    assert js2 == (0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


@pytest.mark.parametrize("Q", [1, 8, 12])
def test_centre_frequencies_geometric_then_linear(Q):
    xis, sigmas, js = fb.wavelet_params(fb.SIGMA0 / 2**7, Q, xi_min=2.0 / 2**13)
    xi = np.array(xis)
    n_geo = len(xi) - (Q - 1)
    np.testing.assert_allclose(xi[:n_geo - 1] / xi[1:n_geo], 2 ** (1 / Q), rtol=1e-12)
    assert np.all(np.diff(xi) < 0)
    for x, s, j in zip(xis, sigmas, js):        # j: largest alias-free subsampling (α = 4)
        assert x + fb.ALPHA * s <= 2.0 ** -(j + 1) or j == 0
        assert min(x + fb.ALPHA * s, 0.5) > 2.0 ** -(j + 2)
        assert fb.max_dyadic_subsampling(-x, s) == j


@pytest.mark.parametrize("Q", [1, 12])
def test_time_wavelets_analytic_nyquist_halved_lp_peak_two(Q):
    N = 2**14
    phi = fb.lowpass(N, 2**8)
    bank = fb.time_wavelets(N, 8, Q, phi)
    filt = bank.filters
    assert np.all(filt[:, N // 2 + 1:] == 0)                              # analytic
    np.testing.assert_allclose(filt[:, N // 2], bank.morlets[:, N // 2] / 2)  # Nyquist halved
    # per-wavelet 'l1-energy': the LP sum (with |φ̂|², before the analytic projection)
    # peaks at 2 around every wavelet
    lp = fb.littlewood_paley(bank.morlets) + np.abs(phi) ** 2
    assert lp.max() == pytest.approx(fb.LP_PEAK_TIME, rel=1e-3)
    for n in range(len(bank.xi)):
        peak = int(np.argmax(bank.morlets[n]))
        assert lp[max(peak - 1, 1):peak + 2].max() == pytest.approx(2.0, rel=5e-2)
    # levels: sum fold of the normalised Morlet, then analytic at that resolution
    level = bank.level(len(bank.xi) - 1, 3)
    folded = bank.morlets[-1].reshape(8, N // 8).sum(0)
    np.testing.assert_allclose(level[:N // 16], folded[:N // 16])
    assert level[N // 16] == pytest.approx(folded[N // 16] / 2) and np.all(level[N // 16 + 1:] == 0)


def test_frequential_wavelets_spins_and_lp_peak(ref):
    plan = plan_of(ref, "paper")
    d = plan.fdesign
    assert sorted(d.up) == [32, 64, 128, 256, 512]
    for L in d.up:
        up, down = d.up[L], d.down[L]
        assert np.all(down[:, L // 2 + 1:] == 0) and np.all(up[:, :L // 2] == 0)   # (anti-)analytic
        np.testing.assert_allclose(up, fb.mirror(down), atol=1e-15)              # spin up = mirror
        if up.shape[0] > 3:
            lp = fb.littlewood_paley(up) + fb.littlewood_paley(down)
            assert lp.max() == pytest.approx(fb.LP_PEAK_FREQ, rel=2e-2)
    # the first wavelet keeps (virtually) no energy at the other spin's frequencies
    psi = d.down[512][0]
    assert psi[257:].sum() == 0 and psi[256] == pytest.approx(0.5 * d.down[512][0][255], rel=0.2)


def test_paper_stacks_padding_and_kept_wavelets(ref):
    plan = plan_of(ref, "paper")
    assert plan.J_fr == 6 and plan.pad.N_pad == 2**17 and plan.n_frames == 8
    assert [s.n_rows for s in plan.stacks] == [14, 26, 38, 50, 62, 74, 86, 98, 110, 122, 131]
    assert [s.fbank.L for s in plan.stacks] == [32, 64, 128, 128, 128, 256, 256, 256, 256, 256, 512]
    assert [len(s.fbank.psi_index) for s in plan.stacks] == [4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7]
    # the φ_t stack: all 137 first-order rows in, the largest stack's 131 rows out
    assert (plan.fbank1.n_in, plan.fbank1.n_out, plan.fbank1.L) == (137, 131, 512)
    assert plan.fbank1.H_up.shape == (7, 131, 137)


def test_fold_levels_are_sum_folds():
    h = fb.lowpass(2**12, 2**5)
    for k, level in enumerate(fb.fold_levels(h, 4)):
        assert level.shape == (2**12 // 2**k,)
        assert level[0] == pytest.approx(1.0, rel=1e-12)                 # DC gain kept
        np.testing.assert_allclose(np.fft.ifft(level), np.fft.ifft(h)[::2**k] * 2**k, atol=1e-14)


@pytest.mark.parametrize("mode", ["zero", "reflect"])
def test_convolution_matrices_equal_padded_fft_convolution(mode):
    rng = np.random.default_rng(0)
    n_in, n_out, L = 11, 9, 32
    filt = np.stack([fb.morlet_1d(L, 0.2, 0.05), fb.lowpass(L, 2)])
    H = fb.convolution_matrices(filt, n_in, n_out, mode)
    v = rng.standard_normal(n_in) + 1j * rng.standard_normal(n_in)
    padded = fb.padding_matrix(n_in, L, mode) @ v
    if mode == "zero":                                                  # rows first, zeros after
        np.testing.assert_array_equal(padded, np.pad(v, (0, L - n_in)))
    direct = np.fft.ifft(np.fft.fft(padded)[None] * filt, axis=-1)[:, :n_out]
    np.testing.assert_allclose(H @ v, direct, atol=1e-12)


def test_temporal_width_of_a_gaussian_is_its_width():
    for T in (4, 16, 64):
        assert fb.temporal_width(fb.lowpass(1024, T), 512) == pytest.approx(T, abs=1)
