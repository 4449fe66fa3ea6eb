"""The evaluation and table rules in a real Snakemake run of a tiny config."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pnp_core.io import read_table
from test_workflow import snakemake

TINY = """
plugins: []
device: cpu
synths:
  amfm:
    type: amfm
    settings: {sr: 8192, n_samples: 2048}
    rescaling: logminmax
    dataset: {bins: 4, val_margin: 1, n_test: 6, seed: 1, jitter: linear}
    feature:
      type: jtfs
      settings: {J: 6, Q: [8, 1], Q_fr: 1, F: 2, T: global, log_eps: 0.001}
    cqt: {octaves: 4, hop_length: 256}
features: {folds: [test], batch_size: 8}
jacobian: {folds: [train, val, test], shard_size: 64, batch_size: 1, threads: 1}
training:
  encoder: {type: small_cnn, channels: [4, 8]}
  epochs: 1
  samples_per_epoch: 8
  batch_size: {p: 8, pnp: 8, ddsp_mss: 4, ddsp_jtfs: 4}
  val_batch_size: 8
  mss: {n_ffts: [256, 64]}
  ablations: [damping_matrix]
evaluation: {batch_size: 4}
"""


@pytest.mark.slow
def test_tiny_config_builds_table1_and_an_ablation_table(workdir):
    (workdir / "config.yaml").write_text(TINY)
    snakemake(workdir, "--cores", "2", "results/table1.csv", "results/tables/ablation_damping.csv")
    params = pd.read_parquet(workdir / "results/data/amfm/params.parquet")
    n_test = int((params["fold"] == "test").sum())
    table = pd.read_csv(workdir / "results/table1.csv")
    assert table["method"].tolist() == ["P-loss", "DDSP-MSS", "DDSP-JTFS", "PNP-JTFS"]
    assert (table["n_test"] == n_test).all() and (table["n_runs"] == 1).all()
    cols = ["jtfs_mean", "micro_mean", "mss_mean", "param_err_mean", "sec_per_epoch_mean"]
    assert np.isfinite(table[cols].to_numpy()).all()
    assert "PNP-JTFS" in (workdir / "results/table1.md").read_text()
    met = read_table(workdir / "results/eval/amfm/pnp-jtfs_seed0/metrics.parquet", "pnp-eval/1")
    assert met.meta["n_test"] == n_test and np.isfinite(met.data["test_loss"]).all()
    abl = pd.read_csv(workdir / "results/tables/ablation_damping.csv")
    assert abl["run_group"].tolist() == ["pnp-jtfs", "pnp-jtfs_D-diag", "pnp-jtfs_D-mean"]
    assert abl["test"].iloc[1].startswith("none: one seed")   # no test across methods
    tests = pd.read_csv(workdir / "results/table1_tests.csv")
    assert len(tests) == 3 * 3 and tests["p_boot"].isna().all()
    assert np.isfinite(table["centre_err_mean"]).all()
    assert np.isfinite(table["sec_per_step_mean"]).all()
    # a second run has nothing to do
    again = snakemake(workdir, "--cores", "2", "results/table1.csv",
                      "results/tables/ablation_damping.csv", "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
