"""The Jacobian / metric computation: J by forward mode, M = JᵀJ, synth tangents.

Small settings throughout (FTM 2**12 samples, a tiny JTFS / spectrogram) so the file runs
in well under three minutes on two CPU cores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from testing_plugins import Identity, PowerSpectrogram, SqrtSynth

from pnp_core.synth.datasets import GridDesign, make_grid_dataset
from pnp_core.features import get_feature
from pnp_core.metric.jacobian import (JacobianComputer, NonFiniteJacobianError, choose_vmap_chunk,
                               forward_map, jacobian_jvp, jacobian_vmap, synth_tangents)
from pnp_core.metric.file import MetricTable, metric_in_rescaling
from pnp_core.params import Scaler, reparametrise_metric
from pnp_core.synth import get_synth

N = 2**12

# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # Many small ops: with 2 OpenMP threads on a shared 2-core machine every op can stall for
    # a scheduler time slice (measured 8× slower under load); one thread is steady.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ftm():
    return get_synth("ftm", sr=22050, n_samples=N)


@pytest.fixture(scope="module")
def ftm_df(ftm):
    return make_grid_dataset(ftm.space, GridDesign(bins=3, val_margin=1, n_test=6, seed=0))


def fit(space, kind, df):
    return Scaler.fit(space, kind, df[df["fold"] == "train"][space.names].to_numpy())


def test_theta(df, space, n=3):
    return torch.as_tensor(df[df["fold"] == "test"][space.names].to_numpy()[:n])


test_theta.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def tiny_jtfs():
    return get_feature("jtfs", n_samples=N, J=6, Q=(8, 1), Q_fr=1, F=2, T="global",
                       log_eps=1e-3)


def central_differences(F, nu, eps):
    """Fourth-order central differences of F (B, P) → (B, K): J_fd (B, K, P)."""
    cols = []
    for p in range(nu.shape[1]):
        d = torch.zeros_like(nu)
        d[:, p] = eps
        cols.append((8 * (F(nu + d) - F(nu - d)) - (F(nu + 2 * d) - F(nu - 2 * d))) / (12 * eps))
    return torch.stack(cols, dim=-1)


# ---------------------------------------------------------------------------------------------
# Jacobian and metric


@pytest.mark.parametrize("feature_name", ["power", "jtfs"])
def test_jacobian_matches_central_differences(ftm, ftm_df, tiny_jtfs, feature_name):
    # ε = 1e-6 in ν (docs/jtfs.md: the ω and α columns have huge curvature; larger steps
    # give 1e-3…1e-1 truncation errors), float64 throughout.
    feature = tiny_jtfs if feature_name == "jtfs" else PowerSpectrogram(N)
    scaler = fit(ftm.space, "logminmax", ftm_df)
    computer = JacobianComputer(ftm, feature, scaler, method="jvp")
    theta = test_theta(ftm_df, ftm.space)
    J = computer.jacobian(theta)
    J_fd = central_differences(computer.F, computer.nu(theta), 1e-6)
    assert J.shape == (3, feature.n_coefficients, 5) and J.dtype == torch.float64
    # Every column of every sample to 1e-4 relative. FD round-off noise is ~|F|·1e-13/ε
    # whatever the column, so a column more than 1e4× smaller than the sample's largest
    # one (here D near its lower bound: ‖J_D‖ ≈ 0.02 vs ‖J_ω‖ ≈ 2e4) is checked against
    # that floor instead (1e-8 of the largest column).
    col = J.norm(dim=1)  # (B, P)
    scale = torch.maximum(col, 1e-4 * col.amax(dim=1, keepdim=True))
    err = (J - J_fd).norm(dim=1) / scale
    assert err.max() < 1e-4, err
    big = col > 1e-4 * col.amax(dim=1, keepdim=True)
    assert big.sum() >= 13  # the floor applies to a few tiny columns only
    assert ((J - J_fd).norm(dim=(1, 2)) / J.norm(dim=(1, 2))).max() < 1e-5


def test_jacobian_is_taken_at_h_of_theta(ftm, ftm_df):
    # The reference's min-max script evaluated J at the unscaled θ (docs/paper.md).
    feature = PowerSpectrogram(N)
    scaler = fit(ftm.space, "logminmax", ftm_df)
    computer = JacobianComputer(ftm, feature, scaler, method="jvp")
    theta = test_theta(ftm_df, ftm.space)
    nu = computer.nu(theta)
    assert nu.abs().max() <= 1 + 1e-9
    torch.testing.assert_close(computer.F(nu), feature(ftm(theta)), rtol=1e-9, atol=1e-9)
    primal, _ = torch.func.jvp(computer.F, (nu,), (torch.ones_like(nu),))
    torch.testing.assert_close(primal, feature(ftm(theta)), rtol=1e-9, atol=1e-9)
    # the production path (metric) against central finite differences of Φ(g(h⁻¹(ν))) in ν
    # at ν = h(θ), through the synth, the feature and the scaler directly
    J, M, _ = computer.metric(theta)
    h = 1e-6
    nu_ref = scaler.forward(theta)
    for p in range(len(ftm.space)):
        step = torch.zeros_like(nu_ref)
        step[:, p] = h
        fd = (feature(ftm(scaler.inverse(nu_ref + step)))
              - feature(ftm(scaler.inverse(nu_ref - step)))) / (2 * h)
        torch.testing.assert_close(J[:, :, p], fd, rtol=1e-4, atol=1e-6 * fd.abs().max())


def test_metric_is_symmetric_psd_with_ascending_eigenvalues(ftm, ftm_df, tiny_jtfs):
    scaler = fit(ftm.space, "logminmax", ftm_df)
    computer = JacobianComputer(ftm, tiny_jtfs, scaler, method="vmap")
    J, M, eig = computer.metric(test_theta(ftm_df, ftm.space))
    assert M.dtype == eig.dtype == torch.float64 and M.shape == (3, 5, 5)
    assert torch.equal(M, M.mT)
    torch.testing.assert_close(M, J.mT @ J, rtol=1e-12, atol=0)
    assert (eig[:, 1:] >= eig[:, :-1]).all()
    assert (eig >= -1e-12 * eig[:, -1:]).all()
    torch.testing.assert_close(eig, torch.linalg.eigvalsh(J.mT @ J), rtol=1e-9, atol=1e-9)
    # every direction has a non-negative quadratic form
    v = torch.randn(3, 5, dtype=torch.float64)
    assert (torch.einsum("bi,bij,bj->b", v, M, v) >= 0).all()


@pytest.mark.parametrize("method", ["jvp", "vmap"])
def test_batched_equals_per_sample(ftm, ftm_df, tiny_jtfs, method):
    scaler = fit(ftm.space, "logminmax", ftm_df)
    computer = JacobianComputer(ftm, tiny_jtfs, scaler, method=method)
    theta = test_theta(ftm_df, ftm.space, 4)
    J_batch = computer.jacobian(theta)
    J_one = torch.cat([computer.jacobian(theta[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(J_batch, J_one, rtol=1e-10, atol=1e-10)


def test_jvp_loop_equals_vmap(ftm, ftm_df, tiny_jtfs):
    scaler = fit(ftm.space, "logminmax", ftm_df)
    theta = test_theta(ftm_df, ftm.space)
    F = forward_map(ftm, tiny_jtfs, scaler)
    nu = scaler.forward(theta)
    J_jvp = jacobian_jvp(F, nu)  # autodiff through the whole map
    torch.testing.assert_close(jacobian_vmap(F, nu), J_jvp, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(jacobian_vmap(F, nu, chunk=2), J_jvp, rtol=1e-10, atol=1e-10)
    for method, chunk in (("jvp", None), ("vmap", None), ("vmap", 2)):  # the split path
        computer = JacobianComputer(ftm, tiny_jtfs, scaler, method=method, chunk=chunk)
        torch.testing.assert_close(computer.jacobian(theta), J_jvp, rtol=1e-9, atol=1e-9)


def test_analytic_ftm_tangents_equal_autodiff(ftm_df):
    # includes drums with modes above Nyquist (high ω and D, thin membrane α → 0)
    synth = get_synth("ftm", sr=22050, n_samples=N)
    theta = torch.tensor([[2 * math.pi * 990, 0.75, 0.15, 0.25, 0.05],
                          [2 * math.pi * 45, 0.08, 1e-5, 1e-5, 0.99],
                          [2 * math.pi * 300, 0.4, 1e-2, 0.1, 0.5]], dtype=torch.float64)
    _, w = synth.modal(theta)[1:]
    assert (w >= math.pi * synth.sr).any() and (w < math.pi * synth.sr).any()
    for kind in ("logminmax", "raw"):
        scaler = fit(synth.space, kind, ftm_df)
        nu = scaler.forward(theta)
        x_a, dx_a = synth_tangents(synth, scaler, nu, analytic=True)
        x_d, dx_d = synth_tangents(synth, scaler, nu, analytic=False)
        torch.testing.assert_close(x_a, x_d, rtol=0, atol=1e-12)
        err = (dx_a - dx_d).norm(dim=-1) / dx_d.norm(dim=-1)  # (P, B)
        assert err.max() < 1e-10, err
    # the full Jacobian by the split equals autodiff through Φ∘g∘h⁻¹
    feature = PowerSpectrogram(N)
    computer = JacobianComputer(synth, feature, scaler, method="vmap")
    assert computer.analytic_synth
    J_ref = jacobian_vmap(forward_map(synth, feature, scaler), nu)
    torch.testing.assert_close(computer.jacobian(theta), J_ref, rtol=1e-9, atol=1e-9)


def test_analytic_tangents_fall_back_when_the_synth_changes(ftm_df, caplog):
    synth = get_synth("ftm", sr=22050, n_samples=N)
    scaler = fit(synth.space, "logminmax", ftm_df)
    original = synth.synthesize
    synth.synthesize = lambda theta: original(theta) ** 3  # no longer what FTMDrum.tangents knows
    computer = JacobianComputer(synth, PowerSpectrogram(N), scaler, method="jvp")
    theta = test_theta(ftm_df, synth.space, 2)
    with caplog.at_level("WARNING"):
        J = computer.jacobian(theta)
    assert not computer.analytic_synth and "disagree" in caplog.text
    J_ref = jacobian_jvp(computer.F, computer.nu(theta))
    torch.testing.assert_close(J, J_ref, rtol=1e-10, atol=1e-10)


def test_auto_measures_both_and_keeps_the_faster(ftm, ftm_df):
    scaler = fit(ftm.space, "logminmax", ftm_df)
    feature = PowerSpectrogram(N)
    auto = JacobianComputer(ftm, feature, scaler, method="auto", memory_budget_mb=1e6)
    theta = test_theta(ftm_df, ftm.space)
    J = auto.jacobian(theta)
    cal = auto.calibration
    assert [t["method"] for t in cal.trials] == ["jvp", "vmap"]
    fastest = min(cal.trials, key=lambda t: t["seconds"])["method"]
    assert auto.chosen_method == fastest
    J_ref = JacobianComputer(ftm, feature, scaler, method="jvp").jacobian(theta)
    torch.testing.assert_close(J, J_ref, rtol=1e-10, atol=1e-10)
    # later batches reuse the choice
    torch.testing.assert_close(auto.jacobian(theta[:1]), J_ref[:1], rtol=1e-10, atol=1e-10)


def test_vmap_chunk_follows_the_memory_budget():
    # jvp holds primal + 1 tangent (2 units); vmap with c tangents holds 1 + c units.
    assert choose_vmap_chunk(5, jvp_peak_mb=200, budget_mb=10_000) == 5
    assert choose_vmap_chunk(5, jvp_peak_mb=200, budget_mb=400) == 3
    assert choose_vmap_chunk(5, jvp_peak_mb=200, budget_mb=250) == 1  # → jvp only
    assert choose_vmap_chunk(3, jvp_peak_mb=None, budget_mb=100) == 3  # unmeasured: try


@pytest.mark.parametrize("dst_kind", ["raw", "log", "minmax"])
def test_chain_rule_reparametrisation_equals_direct_recomputation(ftm, ftm_df, dst_kind):
    feature = PowerSpectrogram(N)
    theta = test_theta(ftm_df, ftm.space)
    src, dst = fit(ftm.space, "logminmax", ftm_df), fit(ftm.space, dst_kind, ftm_df)
    _, M_src, _ = JacobianComputer(ftm, feature, src, method="vmap").metric(theta)
    _, M_dst, _ = JacobianComputer(ftm, feature, dst, method="vmap").metric(theta)
    M_chain = reparametrise_metric(M_src, theta, src, dst)

    # compare scale-free: diagonals relatively, off-diagonals as correlations
    d_dst, d_chain = M_dst.diagonal(dim1=-2, dim2=-1), M_chain.diagonal(dim1=-2, dim2=-1)
    torch.testing.assert_close(d_chain, d_dst, rtol=1e-8, atol=0)
    norm = (d_dst.unsqueeze(-1) * d_dst.unsqueeze(-2)).sqrt()
    torch.testing.assert_close(M_chain / norm, M_dst / norm, rtol=0, atol=1e-9)
    # the stored-file route gives the same
    table = MetricTable(ids=np.arange(3), M=M_src.numpy(), eig=np.linalg.eigvalsh(M_src.numpy()),
                        meta={"scaler": src.state()})
    np.testing.assert_allclose(metric_in_rescaling(table, theta.numpy(), dst), M_chain.numpy(),
                               rtol=1e-12)


def test_nonfinite_jacobian_stops_with_the_sample_ids():
    synth = SqrtSynth()
    scaler = Scaler(synth.space, "log")
    computer = JacobianComputer(synth, Identity(64), scaler, method="jvp")
    theta = torch.tensor([[1.7, 2.0], [1.5, 3.0], [1.2, 4.0], [1.9, 5.0]], dtype=torch.float64)
    with pytest.raises(NonFiniteJacobianError) as err:
        computer.metric(theta, ids=[10, 11, 12, 13])
    # id 11: finite sound, infinite ∂x/∂a; id 12: NaN everywhere
    assert err.value.ids == [11, 12]
    assert "ids: 11, 12" in str(err.value)
    J, M, eig = computer.metric(theta[[0, 3]], ids=[10, 13])
    assert torch.isfinite(M).all()


