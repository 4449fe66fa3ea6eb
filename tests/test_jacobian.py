"""The Jacobian / metric stage: J by forward mode, M = JᵀJ, shards, merge, CLI, workflow.

Small settings throughout (FTM 2**12 samples, a tiny JTFS / spectrogram) so the file runs
in well under three minutes on two CPU cores.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from pnp_core.cli import main
from pnp_core.config import validate_entry
from pnp_core.datasets import GridDesign, load_params, make_grid_dataset
from pnp_core.features import FEATURES, Feature, get_feature
from pnp_core.io import write_parquet
from pnp_core.jacobian import (JacobianComputer, NonFiniteJacobianError, choose_vmap_chunk,
                               compute_metrics, condition_numbers, forward_map, jacobian_jvp,
                               jacobian_vmap, synth_tangents)
from pnp_core.metric_io import (MetricFileError, fold_shard_files, merge_metric_shards,
                                metric_in_rescaling, read_metric, shard_slice, summarise,
                                write_metric)
from pnp_core.params import Param, ParamSpace, Scaler, reparametrise_metric
from pnp_core.synth import SYNTHS, Synth, get_synth

N = 2**12


# ---------------------------------------------------------------------------------------------
# test-only synthesizer and features


@FEATURES.register("_test_power")
class PowerSpectrogram(Feature):
    """log1p(|STFT|²/ε): smooth everywhere (no |z| kink), so finite differences converge."""

    def __init__(self, n_samples: int, n_fft: int = 256) -> None:
        self.n_samples, self.n_fft = n_samples, n_fft

    def __call__(self, x):
        win = torch.hann_window(self.n_fft, dtype=x.dtype, device=x.device)
        X = torch.stft(x, self.n_fft, hop_length=self.n_fft // 4, window=win, center=False,
                       return_complex=True)
        return torch.log1p(torch.view_as_real(X).pow(2).sum(-1) / 1e-3).flatten(1)

    @property
    def n_coefficients(self) -> int:
        return (self.n_fft // 2 + 1) * (1 + (self.n_samples - self.n_fft) // (self.n_fft // 4))


@FEATURES.register("_test_identity")
class Identity(Feature):
    def __init__(self, n_samples: int) -> None:
        self.n_samples = n_samples

    def __call__(self, x):
        return x

    @property
    def n_coefficients(self) -> int:
        return self.n_samples


@SYNTHS.register("_test_sqrt")
class SqrtSynth(Synth):
    """x(t) = √(a − 1.5)·sin(2π b t): NaN for a < 1.5, infinite ∂x/∂a at a = 1.5."""

    space = ParamSpace([Param("a", "1", 1.0, 2.0), Param("b", "Hz", 1.0, 10.0, log=True)])

    def __init__(self, sr: int = 100, n_samples: int = 64) -> None:
        self.sr, self.n_samples = sr, n_samples

    def synthesize(self, theta):
        a, b = theta[:, :1], theta[:, 1:]
        return torch.sqrt(a - 1.5) * torch.sin(2 * math.pi * b * self.time(theta))


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
    # ε = 1e-6 in ν (jtfs_spec §9: the ω and α columns have huge curvature; larger steps
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
    # The reference's min-max script evaluated J at the unscaled θ (paper_spec §4).
    feature = PowerSpectrogram(N)
    scaler = fit(ftm.space, "logminmax", ftm_df)
    computer = JacobianComputer(ftm, feature, scaler, method="jvp")
    theta = test_theta(ftm_df, ftm.space)
    nu = computer.nu(theta)
    assert nu.abs().max() <= 1 + 1e-9
    torch.testing.assert_close(computer.F(nu), feature(ftm(theta)), rtol=1e-9, atol=1e-9)
    primal, _ = torch.func.jvp(computer.F, (nu,), (torch.ones_like(nu),))
    torch.testing.assert_close(primal, feature(ftm(theta)), rtol=1e-9, atol=1e-9)


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
    synth.synthesize = lambda theta: original(theta) ** 3  # no longer what ftm_tangents knows
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
    table = _table(np.arange(3), M_src.numpy(), meta={"rescaling": src.state()})
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


# ---------------------------------------------------------------------------------------------
# shard files and merge


def _table(ids, M=None, meta=None):
    from pnp_core.metric_io import MetricTable

    ids = np.asarray(ids, dtype=np.int64)
    if M is None:
        rng = np.random.default_rng(int(ids.sum()))
        A = rng.normal(size=(len(ids), 3, 3))
        M = A @ np.swapaxes(A, 1, 2)
    return MetricTable(ids=ids, M=M, eig=np.linalg.eigvalsh(M), meta=dict(meta or {}))


def _write_shards(folder: Path, fold_ids, shard_size, **meta_over):
    paths = []
    k = -(-len(fold_ids) // shard_size)
    for s in range(k):
        t = _table(fold_ids[shard_slice(len(fold_ids), shard_size, s)])
        meta = {"synth": "x", "fold": "test", "shard": s, "n_shards": k, "shard_size": shard_size,
                "rescaling": {"kind": "logminmax", "lo": [0, 0, 0], "hi": [1, 1, 1]},
                **meta_over}
        path = folder / f"shard-{s:04d}.parquet"
        write_metric(path, t.ids, t.M, t.eig, meta)
        paths.append(path)
    return paths


def test_shard_roundtrip_and_merge_is_complete_and_sorted(tmp_path):
    fold_ids = np.array([3, 8, 9, 15, 21, 40, 41])
    paths = _write_shards(tmp_path, fold_ids, 3)
    t0 = read_metric(paths[0])
    assert list(t0.ids) == [3, 8, 9] and t0.M.shape == (3, 3, 3) and t0.meta["shard"] == 0
    schema = pq.read_schema(paths[0])
    assert str(schema.field("M").type) == "fixed_size_list<element: double>[9]"
    merged = merge_metric_shards(paths[::-1], fold_ids)
    assert list(merged.ids) == list(fold_ids)
    assert merged.meta["shard"] == "merged"
    np.testing.assert_array_equal(merged.M[:3], t0.M)
    out = tmp_path / "merged.parquet"
    write_metric(out, merged.ids, merged.M, merged.eig, merged.meta)
    back = read_metric(out)
    np.testing.assert_array_equal(back.ids, fold_ids)
    np.testing.assert_array_equal(back.eig, merged.eig)


def test_merge_detects_a_missing_id(tmp_path):
    fold_ids = np.arange(10, 17)
    paths = _write_shards(tmp_path, fold_ids, 3)
    with pytest.raises(MetricFileError, match=r"1 id\(s\) of the fold are missing.*: 16"):
        merge_metric_shards(paths[:2], fold_ids)
    with pytest.raises(MetricFileError, match=r"missing.*: 99"):
        merge_metric_shards(paths, np.append(fold_ids, 99))


def test_merge_detects_a_duplicate_id(tmp_path):
    fold_ids = np.arange(10, 17)
    paths = _write_shards(tmp_path, fold_ids, 3)
    t = _table([12, 13, 14, 15])  # shard 1 now also holds id 12 of shard 0
    write_metric(paths[1], t.ids, t.M, t.eig, read_metric(paths[1]).meta)
    with pytest.raises(MetricFileError, match=r"duplicate sample id\(s\).*12.*shard-0000.parquet "
                                              r"and .*shard-0001.parquet"):
        merge_metric_shards(paths, fold_ids)


def test_merge_detects_a_foreign_id_and_inconsistent_shards(tmp_path):
    fold_ids = np.arange(10, 16)
    paths = _write_shards(tmp_path, fold_ids, 3)
    t = _table([13, 14, 15, 77])
    write_metric(paths[1], t.ids, t.M, t.eig, read_metric(paths[1]).meta)
    with pytest.raises(MetricFileError, match=r"not in the fold: 77 .*shard-0001"):
        merge_metric_shards(paths, fold_ids)
    other = tmp_path / "other"
    other.mkdir()
    paths = _write_shards(tmp_path, fold_ids, 3)
    stale = _write_shards(other, fold_ids, 3, rescaling={"kind": "log", "lo": None, "hi": None})
    with pytest.raises(MetricFileError, match=r"other/shard-0001.parquet: metadata rescaling"):
        merge_metric_shards([paths[0], stale[1]], fold_ids)


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "empty"])
def test_merge_detects_a_damaged_shard_naming_the_file(tmp_path, damage):
    fold_ids = np.arange(100)
    paths = _write_shards(tmp_path, fold_ids, 50)
    raw = paths[1].read_bytes()
    if damage == "truncate":
        paths[1].write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        paths[1].write_bytes(b"")
    else:  # flip bytes inside the first data page (after the 4-byte magic)
        buf = bytearray(raw)
        for i in range(40, 60):
            buf[i] ^= 0xFF
        paths[1].write_bytes(bytes(buf))
    with pytest.raises(MetricFileError, match=r"shard-0001\.parquet: .*(corrupt|truncated)"):
        merge_metric_shards(paths, fold_ids)


def test_checksum_catches_silent_data_changes(tmp_path):
    # A file that Parquet reads fine but whose data changed (e.g. rewritten by other code).
    path = _write_shards(tmp_path, np.arange(5), 5)[0]
    table = pq.read_table(path)
    meta = table.schema.metadata
    ids = table.column("id").to_numpy().copy()
    ids[0] = 99
    import pyarrow as pa

    forged = table.set_column(0, "id", pa.array(ids)).replace_schema_metadata(meta)
    pq.write_table(forged, path)
    with pytest.raises(MetricFileError, match=r"shard-0000.parquet: data checksum mismatch"):
        read_metric(path)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq_mod

    def dies(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(pq_mod, "write_table", dies)
    t = _table([1, 2])
    with pytest.raises(KeyboardInterrupt):
        write_metric(tmp_path / "shard-0000.parquet", t.ids, t.M, t.eig, {})
    assert list(tmp_path.iterdir()) == []


def test_shard_slices_partition_the_fold():
    rows = [shard_slice(10, 4, k) for k in range(3)]
    assert [(r.start, r.stop) for r in rows] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="shard 3 does not exist"):
        shard_slice(10, 4, 3)
    entry = validate_entry({"type": "ftm", "dataset": {"bins": 3, "val_margin": 1, "n_test": 6}})
    files = fold_shard_files(entry, "train", 100, "results/jacobian/ftm/train")
    assert len(files) == 3 and files[-1].endswith("train/shard-0002.parquet")  # 3**5-1-6 = 236


# ---------------------------------------------------------------------------------------------
# summaries


def test_condition_numbers_and_summary():
    eig = np.array([[1e-2, 1.0, 1e4], [0.0, 2.0, 8.0], [-1e-18, 1e-3, 1.0]])
    c1, c2 = condition_numbers(eig)
    np.testing.assert_allclose(c1[:1], [1e6])
    assert np.isinf(c1[1:]).all()
    np.testing.assert_allclose(c2, [1e4, 4.0, 1e3])
    table = _table([5, 6, 7])
    table.eig = eig
    per, quant = summarise(table)
    df = per.to_pandas()
    assert list(df["id"]) == [5, 6, 7]
    np.testing.assert_allclose(df["log10_cond2"], np.log10([1e4, 4.0, 1e3]))
    assert list(df["singular"]) == [False, True, True]
    assert np.isnan(df["log10_eigenvalues"][1][0])
    q = quant.to_pandas().set_index(["quantity", "q"])["value"]
    assert q[("log10_cond2", 0.5)] == pytest.approx(3.0)
    assert q[("log10_lambda_3", 1.0)] == pytest.approx(4.0)


# ---------------------------------------------------------------------------------------------
# CLI end to end


AMFM_ENTRY = {"type": "amfm", "settings": {"sr": 8192, "n_samples": 2048},
              "rescaling": "logminmax",
              "dataset": {"bins": 3, "val_margin": 1, "n_test": 5, "seed": 1, "jitter": "linear"},
              "feature": {"type": "mss", "settings": {"n_ffts": [256, 64]}}}


def test_cli_jacobian_merge_summary_end_to_end(tmp_path, capsys):
    entry = json.dumps(AMFM_ENTRY)
    params = tmp_path / "params.parquet"
    assert main(["dataset", "--entry", entry, "--out", str(params)]) == 0
    shards = [tmp_path / "test" / f"shard-{k:04d}.parquet" for k in range(3)]
    for k, path in enumerate(shards):
        assert main(["jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                     "--shard", f"{k:04d}", "--shard-size", "2", "--batch-size", "2",
                     "--device", "cpu", "--no-progress", "--out", str(path)]) == 0
    merged = tmp_path / "test.parquet"
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(merged), *map(str, shards)]) == 0
    summary, quant = tmp_path / "test.summary.parquet", tmp_path / "test.quantiles.parquet"
    assert main(["jacobian-summary", str(merged), "--out", str(summary),
                 "--quantiles-out", str(quant)]) == 0

    fold = load_params(params, "test")
    table = read_metric(merged)
    np.testing.assert_array_equal(table.ids, fold["id"].to_numpy())
    meta = table.meta
    assert meta["synth"] == "amfm" and meta["fold"] == "test" and meta["n_params"] == 3
    assert meta["param_names"] == ["f_c", "f_m", "gamma"] and meta["n_shards"] == 3
    # the scaler is fitted on the train fold, not on the fold being computed
    synth = get_synth("amfm", sr=8192, n_samples=2048)
    space = synth.space
    all_df = load_params(params)
    train_scaler = fit(space, "logminmax", all_df)
    assert meta["rescaling"] == train_scaler.state()
    assert meta["rescaling"] != Scaler.fit(space, "logminmax", fold[space.names]).state()
    # the stored metrics are the direct computation
    feature = get_feature("mss", n_samples=2048, n_ffts=[256, 64])
    computer = JacobianComputer(synth, feature, train_scaler, method="jvp")
    ids, M, eig = compute_metrics(fold, computer, batch_size=5, progress=False)
    np.testing.assert_allclose(table.M, M, rtol=1e-10)
    np.testing.assert_allclose(table.eig, eig, rtol=1e-8)
    per = pq.read_table(summary).to_pandas()
    assert list(per["id"]) == list(ids) and (per["cond"] >= per["cond2"]).all()
    assert set(pq.read_table(quant).column("quantity").to_pylist()) >= {"log10_cond", "log10_cond2"}

    # a truncated shard stops the merge with an error naming it
    shards[2].write_bytes(shards[2].read_bytes()[:100])
    capsys.readouterr()
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(tmp_path / "again.parquet"), *map(str, shards)]) == 2
    assert "shard-0002.parquet" in capsys.readouterr().err
    assert not (tmp_path / "again.parquet").exists()
    # so does a missing shard
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(tmp_path / "again.parquet"), *map(str, shards[:2])]) == 2
    assert "missing" in capsys.readouterr().err


def test_cli_jacobian_nan_stops_without_output(tmp_path, capsys):
    params = tmp_path / "params.parquet"
    df = pd.DataFrame({"id": np.arange(4, dtype=np.int64), "fold": ["train", "train", "test", "test"],
                       "bin_code": ["0", "1", "2", "3"], "a": [1.6, 1.9, 1.2, 1.8],
                       "b": [2.0, 3.0, 4.0, 5.0]})
    write_parquet(df, params)
    entry = json.dumps({"type": "_test_sqrt", "rescaling": "logminmax",
                        "dataset": {"bins": 2, "val_margin": 0, "n_test": 0},
                        "feature": {"type": "_test_identity", "settings": {}}})
    out = tmp_path / "shard-0000.parquet"
    assert main(["jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--no-progress", "--method", "jvp", "--out", str(out)]) == 2
    assert "ids: 2" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [params]


# ---------------------------------------------------------------------------------------------
# workflow


def test_workflow_plans_one_job_per_shard(workdir):
    bindir = Path(sys.executable).parent
    (workdir / "shards.yaml").write_text("jacobian: {shard_size: 300, folds: [train]}\n")
    proc = subprocess.run(
        [str(bindir / "snakemake"), "results/jacobian/ftm/train.summary.parquet", "-n",
         "--configfile", "shards.yaml", "--quiet", "rules"],
        cwd=workdir, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = dict(line.split()[:2] for line in proc.stdout.splitlines()
                  if line.split()[:1] and line.split()[0].endswith("_jacobian"))
    # default FTM design: 4**5 − 2**5 − 64 = 928 train samples → ceil(928 / 300) = 4 shards
    assert counts == {"compute_jacobian": "4", "merge_jacobian": "1", "summarise_jacobian": "1"}
