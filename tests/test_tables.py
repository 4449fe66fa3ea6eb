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
from pnp_core.evaluation.stats import bootstrap_ci, holm, paired_bootstrap
from pnp_core.evaluation.tables import (ABLATION_COLUMNS, TABLE_COLUMNS, TEST_NONE, TEST_SEEDS,
                             TESTS_COLUMNS, ablation_table, method_label, run_group, table1,
                             table1_tests)

N_TEST = 5
IDS = np.arange(100, 100 + N_TEST, dtype=np.int64)


def write_run(tmp, synth, name, jtfs, weight=None, seconds=(1.0, 3.0), mss=None, perr=None,
              centre=None):
    """metrics.parquet + history.parquet of one fake run; returns its run-list entry."""
    folder = tmp / synth / name
    jtfs = np.asarray(jtfs, dtype=np.float64)
    met = pd.DataFrame({"id": IDS, "jtfs_dist": jtfs,
                        "micro_weight": np.ones(N_TEST) if weight is None else weight,
                        "mss_dist": jtfs / 10 if mss is None else mss,
                        "param_err": jtfs / 100 if perr is None else perr,
                        "centre_err": np.full(N_TEST, 0.4) if centre is None else centre,
                        "sqerr_a": jtfs / 100, "test_loss": jtfs, "m_diag_a": np.ones(N_TEST)})
    write_table(met, folder / "metrics.parquet", "pnp-eval/1", {"n_test": N_TEST})
    hist = pd.DataFrame({"epoch": np.arange(1, len(seconds) + 1), "train_loss": 1.0,
                         "val_loss": 1.0, "val_ploss": 1.0, "lam": 0.0, "lr": 1e-3,
                         "seconds": list(seconds), "damping_event": "",
                         "train_seconds": [0.5 * x for x in seconds], "steps": 4})
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
    assert "| ftm | PNP-JTFS | 1 | 5 | 3 [" in text   # one run: no "± NaN", a sounds-only CI
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


def test_ablation_one_seed_has_no_test_across_methods(tmp_path):
    runs = ablation_runs(tmp_path, [0])
    df = ablation_table(runs, "damping")
    assert list(df.columns) == ABLATION_COLUMNS
    assert df["run_group"].tolist() == ["pnp-jtfs", "pnp-jtfs_D-diag", "pnp-jtfs_D-mean"]
    assert df["role"].tolist() == ["baseline", "variant", "variant"]
    assert (df.loc[df["role"] == "variant", "test"] == TEST_NONE).all()
    for col in ("p_value", "p_holm", "p_value_mss", "p_holm_param_err"):
        assert df[col].isna().all(), col
    md = tmp_path / "a.md"
    assert main(["ablation-table", "--axis", "damping", "--runs", json.dumps({"runs": runs}),
                 "--csv", str(tmp_path / "a.csv"), "--md", str(md)]) == 0
    assert "none (one seed)" in md.read_text()


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
    out = pd.read_csv(csv)
    assert out["p_value"].notna().sum() == 2
    # Holm over the two variants, per metric, by hand
    p = sorted(out["p_value"].dropna())
    holm_by_hand = [min(1, 2 * p[0]), min(1, max(2 * p[0], p[1]))]
    assert sorted(out["p_holm"].dropna()) == pytest.approx(holm_by_hand, rel=1e-4)
    mss = {r["name"]: pd.read_parquet(r["metrics"])["mss_dist"].mean() for r in runs}
    want_mss = stats.ttest_rel([mss[f"pnp-jtfs_D-diag_seed{s}"] for s in range(3)],
                               [mss[f"pnp-jtfs_seed{s}"] for s in range(3)])
    assert row["p_value_mss"] == pytest.approx(want_mss.pvalue)


def test_ablation_variant_without_its_baseline_is_refused(tmp_path):
    runs = [r for r in ablation_runs(tmp_path, [0]) if r["role"] == "variant"]
    with pytest.raises(DataError, match="baseline that is not in the run list"):
        ablation_table(runs, "damping")


def test_holm_by_hand():
    # p sorted 0.01, 0.02, 0.04 → 3·0.01, max(0.03, 2·0.02), max(0.04, 1·0.04); NaN ignored
    got = holm([0.04, 0.01, np.nan, 0.02])
    assert got[[1, 3, 0]] == pytest.approx([0.03, 0.04, 0.04])
    assert np.isnan(got[2])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_two_way_bootstrap_resamples_seeds_and_sounds():
    rng = np.random.default_rng(0)
    sounds = rng.normal(0, 1, 200)
    # no seed effect: the interval reflects the sounds (≈ ±1.96/√200 around the mean)
    flat = np.tile(sounds, (3, 1))
    lo, hi = bootstrap_ci(flat)
    assert lo < sounds.mean() < hi
    assert hi - lo == pytest.approx(2 * 1.96 * sounds.std() / np.sqrt(200), rel=0.25)
    # a large seed effect widens it: resampling seeds is part of the interval
    shifted = flat + np.array([[-5.0], [0.0], [5.0]])
    lo2, hi2 = bootstrap_ci(shifted)
    assert hi2 - lo2 > 5 * (hi - lo)
    # weighted: all weight on one sound → the interval is that sound's spread over seeds only
    w = np.zeros_like(flat)
    w[:, 0] = 1.0
    assert bootstrap_ci(flat, w) == pytest.approx((sounds[0], sounds[0]))
    # paired: a constant shift of −1 is found exactly, p tiny; no shift → p large
    test = paired_bootstrap(shifted - 1.0, shifted)
    assert test["diff"] == pytest.approx(-1.0) and test["ci_hi"] == pytest.approx(-1.0)
    assert test["p_value"] < 0.001
    noise = paired_bootstrap(shifted + rng.normal(0, 1, shifted.shape), shifted)
    assert noise["ci_lo"] < 0 < noise["ci_hi"] and noise["p_value"] > 0.05


def test_table1_intervals_chance_times_and_tests(tmp_path):
    rng = np.random.default_rng(3)
    runs = []
    for seed in range(3):
        base = rng.uniform(1, 2, N_TEST)
        for name, shift in (("p", 1.0), ("ddsp-mss", 0.0), ("pnp-jtfs", 0.0)):
            runs.append(write_run(tmp_path, "ftm", f"{name}_seed{seed}",
                                  base + shift + 0.01 * rng.normal(size=N_TEST),
                                  seconds=(2.0, 4.0)))
    df = table1(runs)
    assert list(df.columns) == TABLE_COLUMNS
    pnp = df[df["method"] == "PNP-JTFS"].iloc[0]
    assert pnp["jtfs_ci_lo"] < pnp["jtfs_mean"] < pnp["jtfs_ci_hi"]
    assert pnp["centre_err_mean"] == pytest.approx(0.4)
    assert pnp["train_sec_per_epoch_mean"] == pytest.approx(1.5)
    assert pnp["sec_per_step_mean"] == pytest.approx(1.5 / 4)
    tests = table1_tests(runs)
    assert list(tests.columns) == TESTS_COLUMNS
    assert len(tests) == 2 * 3                       # 2 other methods × 3 metrics
    vs_p = tests[(tests["versus"] == "P-loss") & (tests["metric"] == "jtfs_dist")].iloc[0]
    assert vs_p["diff"] == pytest.approx(-1.0, abs=0.05) and vs_p["ci_hi"] < 0
    assert vs_p["p_boot"] < 0.01 and vs_p["n_seeds"] == 3 and vs_p["n_test"] == N_TEST
    means = {r["name"]: pd.read_parquet(r["metrics"])["jtfs_dist"].mean() for r in runs}
    want = stats.ttest_rel([means[f"pnp-jtfs_seed{s}"] for s in range(3)],
                           [means[f"p_seed{s}"] for s in range(3)])
    assert vs_p["p_t_seeds"] == pytest.approx(want.pvalue)
    assert tests["p_holm"].to_numpy() == pytest.approx(holm(tests["p_boot"].to_numpy()),
                                                      nan_ok=True)
    # one seed: no test across methods
    one = table1_tests([r for r in runs if r["name"].endswith("seed0")])
    assert (one["test"] == TEST_NONE).all() and one["p_boot"].isna().all()
    csv, md, tcsv = tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "tests.csv"
    assert main(["table1", "--runs", json.dumps({"runs": runs}), "--csv", str(csv),
                 "--md", str(md), "--tests-csv", str(tcsv)]) == 0
    text = md.read_text()
    assert "PNP-JTFS against each method" in text and "chance" in text
    assert len(pd.read_csv(tcsv)) == 6


def test_run_values_of_the_other_distances_skip_undefined_samples():
    from pnp_core.evaluation.tables import AUDIO_VALUES, run_values

    metrics = pd.DataFrame({"id": [1, 2, 3], "jtfs_dist": [1.0, 2.0, 3.0],
                            "micro_weight": [1.0, 1.0, 1.0], "mss_dist": [0.5, 0.5, 0.5],
                            "param_err": [0.1, 0.2, 0.3], "logmel_dist": [1.0, 2.0, 6.0],
                            "mfcc_dtw_dist": [3.0, 3.0, 3.0],
                            "f0_err_cents": [np.nan, 10.0, 30.0], "rms_dist": [0.0, 0.0, 1.5]})
    v = run_values(metrics, pd.DataFrame())
    # by hand: (1+2+6)/3, 3, (10+30)/2 over the pitched pairs only, 1.5/3
    assert (v["logmel"], v["mfcc_dtw"], v["f0_cents"], v["rms"]) == (3.0, 3.0, 20.0, 0.5)
    # no pitched pair (the drum): NaN, not 0; an evaluation from before the columns: NaN
    v = run_values(metrics.assign(f0_err_cents=np.nan), pd.DataFrame())
    assert math.isnan(v["f0_cents"])
    old = run_values(metrics.drop(columns=list(AUDIO_VALUES.values())), pd.DataFrame())
    assert all(math.isnan(old[k]) for k in AUDIO_VALUES)
    assert {f"{k}_mean" for k in AUDIO_VALUES} <= set(TABLE_COLUMNS)
