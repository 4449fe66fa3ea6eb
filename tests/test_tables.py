"""Table 1 and ablation tables on a fixture of per-run metrics and histories."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from pnp_core.cli import main
from pnp_core.errors import DataError
from pnp_core.io import write_table
from pnp_core.tables import (ABLATION_COLUMNS, TABLE_COLUMNS, TEST_SAMPLES, TEST_SEEDS,
                             ablation_table, method_label, run_group, table1)

N_TEST = 5
IDS = np.arange(100, 100 + N_TEST, dtype=np.int64)


def write_run(tmp, synth, name, jtfs, weight=None, seconds=(1.0, 3.0), mss=None, perr=None):
    """metrics.parquet + history.parquet of one fake run; returns its run-list entry."""
    folder = tmp / synth / name
    jtfs = np.asarray(jtfs, dtype=np.float64)
    met = pd.DataFrame({"id": IDS, "jtfs_dist": jtfs,
                        "micro_weight": np.ones(N_TEST) if weight is None else weight,
                        "mss_dist": jtfs / 10 if mss is None else mss,
                        "param_err": jtfs / 100 if perr is None else perr,
                        "sqerr_a": jtfs / 100, "test_loss": jtfs, "m_diag_a": np.ones(N_TEST)})
    write_table(met, folder / "metrics.parquet", "pnp-eval/1", {"n_test": N_TEST})
    hist = pd.DataFrame({"epoch": np.arange(1, len(seconds) + 1), "train_loss": 1.0,
                         "val_loss": 1.0, "val_ploss": 1.0, "lam": 0.0, "lr": 1e-3,
                         "seconds": list(seconds), "damping_event": ""})
    write_table(hist, folder / "history.parquet", "pnp-history/1", {})
    loss = {"p": "p", "pnp-jtfs": "pnp", "ddsp-mss": "ddsp_mss",
            "ddsp-jtfs": "ddsp_jtfs"}[name.split("_")[0]]
    return {"synth": synth, "name": name, "loss": loss, "seed": int(name.rsplit("seed", 1)[1]),
            "metrics": str(folder / "metrics.parquet"),
            "history": str(folder / "history.parquet")}


def test_names():
    assert run_group("pnp-jtfs_D-diag_seed12") == "pnp-jtfs_D-diag"
    assert method_label("pnp-jtfs_D-diag") == "PNP-JTFS (D-diag)"
    assert method_label("ddsp-mss") == "DDSP-MSS"


def test_table1_mean_std_counts_and_order(tmp_path):
    runs = []
    # listed out of order: the table orders P, DDSP-MSS, DDSP-JTFS, PNP-JTFS
    for name in ("pnp-jtfs", "p", "ddsp-jtfs", "ddsp-mss"):
        base = {"p": 1.0, "ddsp-mss": 2.0, "ddsp-jtfs": 3.0, "pnp-jtfs": 4.0}[name]
        runs.append(write_run(tmp_path, "ftm", f"{name}_seed0", [base] * N_TEST,
                              seconds=(1.0, 3.0)))
        runs.append(write_run(tmp_path, "ftm", f"{name}_seed1", [base + 2] * N_TEST,
                              seconds=(5.0,)))
    # micro: weighted mean per run (weights 1, 3 on distances 2, 6 → 5)
    runs.append(write_run(tmp_path, "amfm", "p_seed0", [2, 6, 1, 1, 1],
                          weight=np.array([1, 3, 0, 0, np.nan])))
    df = table1(runs)
    assert list(df.columns) == TABLE_COLUMNS
    assert df["method"].tolist() == ["P-loss", "DDSP-MSS", "DDSP-JTFS", "PNP-JTFS", "P-loss"]
    assert df["synth"].tolist() == ["ftm"] * 4 + ["amfm"]
    row = df.iloc[3]
    assert row["run_group"] == "pnp-jtfs" and row["n_runs"] == 2 and row["n_test"] == N_TEST
    assert row["jtfs_mean"] == pytest.approx(5.0)                 # runs 4 and 6
    assert row["jtfs_std"] == pytest.approx(math.sqrt(2))         # ddof = 1
    assert row["mss_mean"] == pytest.approx(0.5) and row["param_err_mean"] == pytest.approx(0.05)
    assert row["micro_mean"] == pytest.approx(5.0)                # unit weights: = macro
    assert row["sec_per_epoch_mean"] == pytest.approx(3.5)        # run means 2 and 5
    assert row["sec_per_epoch_std"] == pytest.approx(math.sqrt(4.5))
    amfm = df.iloc[4]
    assert amfm["n_runs"] == 1 and math.isnan(amfm["jtfs_std"])
    assert amfm["jtfs_mean"] == pytest.approx(2.2)
    assert amfm["micro_mean"] == pytest.approx((2 + 18) / 4)


def test_table1_command_writes_csv_and_markdown(tmp_path):
    runs = [write_run(tmp_path, "ftm", f"{n}_seed0", [1.0, 2.0, 3.0, 4.0, 5.0])
            for n in ("p", "ddsp-mss", "ddsp-jtfs", "pnp-jtfs")]
    csv, md = tmp_path / "table1.csv", tmp_path / "table1.md"
    assert main(["table1", "--runs", json.dumps({"runs": runs}), "--csv", str(csv),
                 "--md", str(md)]) == 0
    df = pd.read_csv(csv)
    assert list(df.columns) == TABLE_COLUMNS and len(df) == 4
    assert df["jtfs_mean"].tolist() == [3.0] * 4 and df["jtfs_std"].isna().all()
    text = md.read_text()
    assert "| ftm | PNP-JTFS | 1 | 5 | 3 |" in text   # one run: the mean alone, no "± NaN"
    assert "single run (one seed)" in text


def test_evaluations_of_different_sizes_are_refused(tmp_path):
    a = write_run(tmp_path, "ftm", "p_seed0", [1.0] * N_TEST)
    b = write_run(tmp_path, "ftm", "p_seed1", [1.0] * N_TEST)
    met = pd.read_parquet(b["metrics"]).iloc[:3]
    write_table(met, b["metrics"], "pnp-eval/1", {})
    with pytest.raises(DataError, match="different numbers of test samples"):
        table1([a, b])


def ablation_runs(tmp_path, seeds):
    rng = np.random.default_rng(0)
    runs = []
    for seed in seeds:
        base = rng.uniform(1, 2, N_TEST)
        for name, shift in (("pnp-jtfs", 0.0), ("pnp-jtfs_D-diag", 0.5), ("pnp-jtfs_D-mean", 0.0)):
            r = write_run(tmp_path, "ftm", f"{name}_seed{seed}",
                          base + shift + rng.normal(0, 0.1, N_TEST) * (name != "pnp-jtfs"))
            r.update(axis="damping", role="baseline" if name == "pnp-jtfs" else "variant",
                     baseline="pnp-jtfs")
            runs.append(r)
    return runs


def test_ablation_one_seed_uses_wilcoxon_over_test_samples(tmp_path):
    runs = ablation_runs(tmp_path, [0])
    df = ablation_table(runs, "damping")
    assert list(df.columns) == ABLATION_COLUMNS
    assert df["run_group"].tolist() == ["pnp-jtfs", "pnp-jtfs_D-diag", "pnp-jtfs_D-mean"]
    assert df["role"].tolist() == ["baseline", "variant", "variant"]
    a = pd.read_parquet(runs[1]["metrics"])["jtfs_dist"]
    b = pd.read_parquet(runs[0]["metrics"])["jtfs_dist"]
    want = stats.wilcoxon(a, b)
    row = df.iloc[1]
    assert row["test"] == TEST_SAMPLES and row["n_pairs"] == N_TEST
    assert row["p_value"] == pytest.approx(want.pvalue)
    assert row["statistic"] == pytest.approx(want.statistic)
    assert math.isnan(df.iloc[0]["p_value"])


def test_ablation_several_seeds_uses_paired_t_test_over_seeds(tmp_path):
    runs = ablation_runs(tmp_path, [0, 1, 2])
    df = ablation_table(runs, "damping")
    row = df[df["run_group"] == "pnp-jtfs_D-diag"].iloc[0]
    means = {r["name"]: pd.read_parquet(r["metrics"])["jtfs_dist"].mean() for r in runs}
    a = [means[f"pnp-jtfs_D-diag_seed{s}"] for s in range(3)]
    b = [means[f"pnp-jtfs_seed{s}"] for s in range(3)]
    want = stats.ttest_rel(a, b)
    assert row["test"] == TEST_SEEDS and row["n_pairs"] == 3 and row["n_runs"] == 3
    assert row["p_value"] == pytest.approx(want.pvalue)
    assert row["jtfs_mean"] == pytest.approx(np.mean(a))
    assert row["jtfs_std"] == pytest.approx(np.std(a, ddof=1))
    csv, md = tmp_path / "ablation.csv", tmp_path / "ablation.md"
    assert main(["ablation-table", "--axis", "damping", "--runs", json.dumps({"runs": runs}),
                 "--csv", str(csv), "--md", str(md)]) == 0
    assert "paired t-test over seeds" in md.read_text()
    assert pd.read_csv(csv)["p_value"].notna().sum() == 2


def test_ablation_variant_without_its_baseline_is_refused(tmp_path):
    runs = [r for r in ablation_runs(tmp_path, [0]) if r["role"] == "variant"]
    with pytest.raises(DataError, match="baseline that is not in the run list"):
        ablation_table(runs, "damping")
