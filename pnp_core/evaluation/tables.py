"""Table 1 and the ablation tables, aggregated from per-run evaluations and histories.

A *run list* says which runs a table holds: one dict per trained run,

``synth``, ``name`` (run name, e.g. ``pnp-jtfs_seed0``), ``loss``, ``seed``,
``metrics`` (its ``metrics.parquet``, format ``pnp-eval/1``), ``history`` (its
``history.parquet``, format ``pnp-history/1``) and, for ablation tables, ``axis``,
``role`` (``baseline`` or ``variant``) and ``baseline`` (the run group a variant is
compared with).

The workflow writes it from the run grid; this module knows nothing of Snakemake.

Aggregation: runs are grouped by synth and *run group* (the name without its
``_seed<k>`` suffix). For each run: the mean over its test samples of ``jtfs_dist``,
``mss_dist``, ``param_err`` and ``centre_err`` (the box-centre chance predictor's parameter
error), the micro JTFS distance (Σ w·d / Σ w with w = ``micro_weight``; the reference code's
mean(w·d) differs by the constant factor mean(w), docs/evaluation.md) and, from the history,
seconds per epoch with validation (``seconds``), without it (``train_seconds``) and per
optimizer step (``train_seconds / steps``). Each table cell is the mean and the sample
standard deviation (ddof = 1) of those run values over the group's runs (seeds); with one
run the std is NaN. Each metric also gets a 95 % confidence interval
(``<metric>_ci_lo``/``_ci_hi``) by the two-way bootstrap of :mod:`pnp_core.evaluation.stats`, which
resamples seeds and test sounds together.

Table 1's tests (:func:`table1_tests`, ``table1_tests.csv``): PNP-JTFS against every other
method of its synth, on ``jtfs_dist``, ``mss_dist`` and ``param_err``: the mean difference
PNP − other with its two-way bootstrap interval and p-value (paired on seeds and sounds),
a paired t-test over the common seeds of the run means (``scipy.stats.ttest_rel``), and
Holm's correction over all the rows of the table (one family).

Ablation tables: each variant against its baseline on the same three metrics, a paired
t-test over the common seeds of the run means, Holm-corrected within each metric over the
table's variants. With one common seed there is no test across methods (a test over the
test sounds of one training says nothing about another training): the row says so and its
p-values are NaN.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pnp_core.errors import DataError
from pnp_core.formats import EVAL_FORMAT, HISTORY_FORMAT
from pnp_core.io import atomic_path, read_table, write_csv
from pnp_core.evaluation.stats import N_BOOT, bootstrap_ci, holm, paired_bootstrap
from pnp_core.run_names import (LOSS_NAMES, METHOD_LABELS, TABLE1_LOSSES, run_group,
                                run_label)

#: columns of Table 1 (and the first columns of every ablation table), in order
#: the per-sample metrics with a bootstrap interval (``micro`` is the weighted jtfs_dist)
CI_METRICS = ("jtfs", "micro", "mss", "param_err", "centre_err")
#: the metrics the tests compare (table prefix → metrics.parquet column)
TESTED = {"jtfs": "jtfs_dist", "mss": "mss_dist", "param_err": "param_err"}
#: the other distances of the field (per-sample columns of pnp_core.evaluation.audio_metrics):
#: table prefix → metrics.parquet column; a run's value is the mean over the test sounds where
#: the distance is defined (f0: where both sounds are pitched)
AUDIO_VALUES = {"logmel": "logmel_dist", "mfcc_dtw": "mfcc_dtw_dist", "f0_cents": "f0_err_cents",
                "rms": "rms_dist"}
TABLE_COLUMNS = (["synth", "method", "run_group", "n_runs", "n_test", "jtfs_mean", "jtfs_std",
                  "micro_mean", "micro_std", "mss_mean", "mss_std"]
                 + [f"{k}_{s}" for k in AUDIO_VALUES for s in ("mean", "std")]
                 + ["param_err_mean",
                  "param_err_std", "sec_per_epoch_mean", "sec_per_epoch_std",
                  "centre_err_mean", "centre_err_std", "train_sec_per_epoch_mean",
                  "train_sec_per_epoch_std", "sec_per_step_mean", "sec_per_step_std"]
                 + [f"{m}_ci_{e}" for m in CI_METRICS for e in ("lo", "hi")])
#: extra columns of an ablation table
ABLATION_COLUMNS = TABLE_COLUMNS + ["axis", "role", "baseline", "test", "n_pairs", "statistic",
                                    "p_value", "p_holm", "p_value_mss", "p_holm_mss",
                                    "p_value_param_err", "p_holm_param_err"]
#: columns of Table 1's tests
TESTS_COLUMNS = ["synth", "method", "versus", "metric", "n_seeds", "n_test", "diff", "ci_lo",
                 "ci_hi", "p_boot", "p_holm", "p_t_seeds", "test"]
#: Table-1 rows, in order: loss → method label
TABLE1_METHODS = {loss: METHOD_LABELS[LOSS_NAMES[loss]] for loss in TABLE1_LOSSES}
#: per-run values aggregated into the tables: output prefix → how
VALUES = ("jtfs", "micro", "mss", *AUDIO_VALUES, "param_err", "centre_err", "sec_per_epoch",
          "train_sec_per_epoch", "sec_per_step")
TEST_SEEDS = "paired t-test over seeds (run means)"
TEST_NONE = "none: one seed, no test across methods is possible"
TEST_BOOT = "two-way bootstrap over seeds and test sounds (paired)"

#: the tests' names in the Markdown tables (the notes spell them out)
SHORT_TESTS = {TEST_SEEDS: "paired t (seeds)", TEST_NONE: "none (one seed)"}

#: a run group's method name (``pnp-jtfs_D-diag`` → ``PNP-JTFS (D-diag)``)
method_label = run_label


# ----------------------------------------------------------------------------------------------
# per run


def micro_mean(dist: np.ndarray, weight: np.ndarray) -> float:
    """Σ w d / Σ w over the samples with a finite weight (NaN when there are none)."""
    dist, weight = np.asarray(dist, np.float64), np.asarray(weight, np.float64)
    ok = np.isfinite(weight) & np.isfinite(dist)
    if not ok.any() or weight[ok].sum() <= 0:
        return float("nan")
    return float((weight[ok] * dist[ok]).sum() / weight[ok].sum())


def _history_mean(history: pd.DataFrame, column: str) -> float:
    return float(history[column].mean()) if len(history) and column in history else math.nan


def defined_mean(values) -> float:
    """Mean over the finite values (NaN when there are none: e.g. no pitched test sound)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def run_values(metrics: pd.DataFrame, history: pd.DataFrame) -> dict:
    """The per-run numbers a table aggregates (see the module docstring); evaluations and
    histories from before ``centre_err``/``train_seconds`` or the audio metrics existed give
    NaN there."""
    if len(metrics) == 0:
        raise DataError("an evaluation with no test sample cannot be tabulated")
    per_step = (history["train_seconds"] / history["steps"]
                if len(history) and {"train_seconds", "steps"} <= set(history) else None)
    return {"jtfs": float(metrics["jtfs_dist"].mean()),
            "micro": micro_mean(metrics["jtfs_dist"], metrics["micro_weight"]),
            "mss": float(metrics["mss_dist"].mean()),
            **{k: defined_mean(metrics[c]) if c in metrics else math.nan
               for k, c in AUDIO_VALUES.items()},
            "param_err": float(metrics["param_err"].mean()),
            "centre_err": (float(metrics["centre_err"].mean()) if "centre_err" in metrics
                           else math.nan),
            "sec_per_epoch": _history_mean(history, "seconds"),
            "train_sec_per_epoch": _history_mean(history, "train_seconds"),
            "sec_per_step": float(per_step.mean()) if per_step is not None else math.nan,
            "n_test": int(len(metrics))}


def load_runs(runs: list[dict]) -> list[dict]:
    """Read each run's metrics and history; returns the run dicts with ``values``,
    ``group`` and ``samples`` (id → jtfs_dist, for the paired tests) added."""
    out = []
    for r in runs:
        for key in ("synth", "name", "metrics", "history"):
            if key not in r:
                raise DataError(f"run list entry {r!r} lacks {key!r}")
        metrics = read_table(r["metrics"], EVAL_FORMAT, what="the run's evaluation").data
        history = read_table(r["history"], HISTORY_FORMAT, what="the run's history").data
        cols = [c for c in SAMPLE_COLUMNS if c in metrics]
        samples = metrics[cols].astype(np.float64).set_index(metrics["id"].to_numpy(np.int64))
        out.append({**r, "group": run_group(r["name"]), "values": run_values(metrics, history),
                    "samples": samples})
    return out


#: the per-sample columns kept for the intervals and the tests
SAMPLE_COLUMNS = ("jtfs_dist", "micro_weight", "mss_dist", "param_err", "centre_err")


def sample_matrix(members: list[dict], column: str) -> np.ndarray:
    """(runs, common test ids) of one per-sample column, rows in ``members`` order; NaN
    where the column is absent (an evaluation from before it existed)."""
    ids = members[0]["samples"].index
    for r in members[1:]:
        ids = ids.intersection(r["samples"].index)
    ids = ids.sort_values()
    return np.stack([r["samples"][column].reindex(ids).to_numpy(np.float64)
                     if column in r["samples"] else np.full(len(ids), np.nan)
                     for r in members])


def _intervals(members: list[dict]) -> dict:
    out = {}
    for key in CI_METRICS:
        col = {"jtfs": "jtfs_dist", "micro": "jtfs_dist", "mss": "mss_dist"}.get(key, key)
        values = sample_matrix(members, col)
        weights = sample_matrix(members, "micro_weight") if key == "micro" else None
        if np.isnan(values).all() or (weights is not None and not np.isfinite(weights).any()):
            lo = hi = math.nan
        else:
            lo, hi = bootstrap_ci(values, weights)
        out[f"{key}_ci_lo"], out[f"{key}_ci_hi"] = lo, hi
    return out


# ----------------------------------------------------------------------------------------------
# aggregation


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan, math.nan
    mean = float(arr.mean())
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return mean, std


def aggregate(loaded: list[dict], synth: str, group: str) -> dict:
    """One table row: mean ± std over the runs of ``group`` (a run group of ``synth``)."""
    members = [r for r in loaded if r["synth"] == synth and r["group"] == group]
    if not members:
        raise DataError(f"no run of group {group!r} for synth {synth!r} in the run list")
    n_tests = sorted({r["values"]["n_test"] for r in members})
    if len(n_tests) > 1:
        raise DataError(f"{synth}/{group}: runs were evaluated on different numbers of test "
                        f"samples {n_tests}; rerun their evaluations")
    row = {"synth": synth, "method": method_label(group), "run_group": group,
           "n_runs": len(members), "n_test": n_tests[0]}
    for key in VALUES:
        row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([r["values"][key] for r in members])
    row.update(_intervals(members))
    return row


def table1(runs: list[dict]) -> pd.DataFrame:
    """Table 1: one row per synth (in run-list order) × method (P-loss, DDSP-MSS, DDSP-JTFS,
    PNP-JTFS) present in ``runs``."""
    loaded = load_runs(runs)
    rows = []
    for synth in dict.fromkeys(r["synth"] for r in loaded):
        for loss in TABLE1_METHODS:
            groups = dict.fromkeys(r["group"] for r in loaded
                                   if r["synth"] == synth and r.get("loss") == loss)
            for group in groups:
                row = aggregate(loaded, synth, group)
                row["method"] = TABLE1_METHODS[loss] if len(groups) == 1 else row["method"]
                rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def _by_seed(runs: list[dict]) -> dict:
    return {r.get("seed"): r for r in runs}


def paired_test(variant: list[dict], baseline: list[dict], metric: str = "jtfs") -> dict:
    """Paired t-test of the run means of ``metric`` (a :data:`VALUES` key) of ``variant``
    against ``baseline`` over their common seeds; no test below two common seeds."""
    from scipy import stats

    va, vb = _by_seed(variant), _by_seed(baseline)
    seeds = [s for s in va if s in vb]
    out = {"test": TEST_SEEDS, "n_pairs": len(seeds), "statistic": math.nan,
           "p_value": math.nan}
    if len(seeds) < 2:
        return {**out, "test": TEST_NONE if seeds else "none (no common seed)"}
    a = np.array([va[s]["values"][metric] for s in seeds])
    b = np.array([vb[s]["values"][metric] for s in seeds])
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or np.array_equal(a, b):
        return out
    res = stats.ttest_rel(a, b)
    return {**out, "statistic": float(res.statistic), "p_value": float(res.pvalue)}


def _add_holm(df: pd.DataFrame, column: str, target: str) -> None:
    df[target] = holm(df[column].to_numpy(np.float64)) if len(df) else []


def ablation_table(runs: list[dict], axis: str) -> pd.DataFrame:
    """An ablation table: per synth, each baseline row followed by its variants, with the
    paired tests of each variant against its baseline (``axis``: the runs' axis name)."""
    runs = [r for r in runs if r.get("axis", axis) == axis]
    loaded = load_runs(runs)
    nan_tests = {"test": "", "n_pairs": 0, "statistic": math.nan, "p_value": math.nan,
                 "p_value_mss": math.nan, "p_value_param_err": math.nan}
    rows = []
    for synth in dict.fromkeys(r["synth"] for r in loaded):
        mine = [r for r in loaded if r["synth"] == synth]
        baselines = dict.fromkeys(r["group"] for r in mine if r.get("role") == "baseline")
        for base in baselines:
            rows.append({**aggregate(loaded, synth, base), "axis": axis, "role": "baseline",
                         "baseline": base, **nan_tests})
            base_runs = [r for r in mine if r["group"] == base]
            variants = dict.fromkeys(r["group"] for r in mine
                                     if r.get("role") == "variant" and r.get("baseline") == base)
            for group in variants:
                var_runs = [r for r in mine if r["group"] == group]
                tests = paired_test(var_runs, base_runs, "jtfs")
                for key in ("mss", "param_err"):
                    tests[f"p_value_{key}"] = paired_test(var_runs, base_runs, key)["p_value"]
                rows.append({**aggregate(loaded, synth, group), "axis": axis,
                             "role": "variant", "baseline": base, **tests})
        orphans = {r["group"] for r in mine if r.get("role") == "variant"
                   and r.get("baseline") not in baselines}
        if orphans:
            raise DataError(f"{synth}: ablation runs {sorted(orphans)} name a baseline that is "
                            "not in the run list")
    df = pd.DataFrame(rows)
    for col, target in (("p_value", "p_holm"), ("p_value_mss", "p_holm_mss"),
                        ("p_value_param_err", "p_holm_param_err")):
        _add_holm(df, col, target)
    return df.reindex(columns=ABLATION_COLUMNS)


def table1_tests(runs: list[dict]) -> pd.DataFrame:
    """PNP-JTFS against every other Table-1 method of its synth on jtfs_dist, mss_dist and
    param_err (see the module docstring): one row per synth × method × metric."""
    from scipy import stats

    loaded = [r for r in load_runs(runs) if r.get("loss") in TABLE1_METHODS]
    rows = []
    for synth in dict.fromkeys(r["synth"] for r in loaded):
        mine = [r for r in loaded if r["synth"] == synth]
        groups = dict.fromkeys(r["group"] for r in mine)
        pnp_groups = [g for g in groups if any(r["group"] == g and r["loss"] == "pnp"
                                               for r in mine)]
        for pg in pnp_groups:
            pnp = _by_seed([r for r in mine if r["group"] == pg])
            for other in groups:
                if other == pg:
                    continue
                oth = _by_seed([r for r in mine if r["group"] == other])
                seeds = sorted(s for s in pnp if s in oth)
                base = {"synth": synth, "method": method_label(pg),
                        "versus": method_label(other), "n_seeds": len(seeds)}
                for key, col in TESTED.items():
                    row = {**base, "metric": col, "diff": math.nan, "ci_lo": math.nan,
                           "ci_hi": math.nan, "p_boot": math.nan, "p_t_seeds": math.nan,
                           "n_test": 0, "test": TEST_BOOT}
                    if len(seeds) < 2:
                        rows.append({**row, "test": TEST_NONE if seeds else
                                     "none (no common seed)"})
                        continue
                    both = sample_matrix([pnp[s] for s in seeds] + [oth[s] for s in seeds],
                                         col)
                    a, b = both[:len(seeds)], both[len(seeds):]
                    boot = paired_bootstrap(a, b)
                    row.update(n_test=int(a.shape[1]), diff=boot["diff"], ci_lo=boot["ci_lo"],
                               ci_hi=boot["ci_hi"], p_boot=boot["p_value"])
                    ma = [pnp[s]["values"][key] for s in seeds]
                    mb = [oth[s]["values"][key] for s in seeds]
                    if not np.array_equal(ma, mb):
                        row["p_t_seeds"] = float(stats.ttest_rel(ma, mb).pvalue)
                    rows.append(row)
    df = pd.DataFrame(rows, columns=[c for c in TESTS_COLUMNS if c != "p_holm"])
    _add_holm(df, "p_boot", "p_holm")
    return df.reindex(columns=TESTS_COLUMNS)


# ----------------------------------------------------------------------------------------------
# output


def format_value(x, missing: str = "NaN") -> str:
    """A table cell: floats to 4 significant digits, ``missing`` for NaN/Inf."""
    if isinstance(x, (float, np.floating)):
        return missing if not math.isfinite(x) else f"{x:.4g}"
    return str(x)


def mean_std_cell(mean, std, std_format: str = ".4g", missing: str = "NaN") -> str:
    """"mean ± std", or the mean alone where std is undefined (a single run)."""
    if not np.isfinite(std):
        return format_value(mean, missing)
    return f"{format_value(mean, missing)} ± {std:{std_format}}"


def _cell(row, key: str) -> str:
    """"mean ± std [CI]" of a metric, "mean ± std" of a time."""
    cell = mean_std_cell(row[f"{key}_mean"], row[f"{key}_std"])
    lo, hi = row.get(f"{key}_ci_lo", math.nan), row.get(f"{key}_ci_hi", math.nan)
    if np.isfinite(lo) and np.isfinite(hi):
        cell += f" [{lo:.4g}, {hi:.4g}]"
    return cell


def markdown(df: pd.DataFrame, title: str, notes: list[str] = (),
             tests: pd.DataFrame | None = None) -> str:
    """A readable Markdown table: "mean ± std [95 % CI]" cells, counts, the chance line,
    test columns if present, and Table 1's tests below it when given."""
    cols = ["synth", "method", "n_runs", "n_test"]
    heads = ["synth", "method", "runs", "test samples"]
    pairs = [("jtfs", "JTFS distance"), ("micro", "JTFS distance, micro"),
             ("mss", "MSS distance"), ("logmel", "log-mel MSS"), ("mfcc_dtw", "MFCC-DTW"),
             ("f0_cents", "f0 error (cents)"), ("rms", "RMS envelope (dB)"),
             ("param_err", "parameter error"),
             ("centre_err", "box centre's parameter error (chance)"),
             ("sec_per_epoch", "s / epoch"), ("train_sec_per_epoch", "s / epoch w/o validation"),
             ("sec_per_step", "s / step")]
    extra = [("role", "role"), ("test", "test vs baseline"), ("n_pairs", "pairs"),
             ("p_value", "p (JTFS)"), ("p_holm", "p Holm (JTFS)"),
             ("p_holm_mss", "p Holm (MSS)"), ("p_holm_param_err", "p Holm (param)")] \
        if "p_value" in df.columns else []
    lines = [f"# {title}", "",
             "| " + " | ".join(heads + [h for _, h in pairs] + [h for _, h in extra]) + " |",
             "|" + "---|" * (len(heads) + len(pairs) + len(extra))]
    for _, row in df.iterrows():
        cells = [format_value(row[c]) for c in cols]
        cells += [_cell(row, k) for k, _ in pairs]
        if extra and row["role"] == "baseline":
            cells += ["baseline"] + ["—"] * (len(extra) - 1)
        elif extra:
            cells += ["variant", SHORT_TESTS.get(row["test"], row["test"]),
                      format_value(row["n_pairs"])]
            cells += [format_value(row[c]) for c, _ in extra[3:]]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    if tests is not None and len(tests):
        lines += ["", "## PNP-JTFS against each method", "",
                  "| synth | method | versus | metric | seeds | test samples | PNP − other "
                  "[95 % CI] | p (bootstrap) | p Holm | p (paired t, seeds) |",
                  "|" + "---|" * 10]
        for _, t in tests.iterrows():
            if not np.isfinite(t["diff"]):
                diff = SHORT_TESTS.get(t["test"], t["test"])
            else:
                diff = f"{t['diff']:.4g} [{t['ci_lo']:.4g}, {t['ci_hi']:.4g}]"
            lines.append("| " + " | ".join([
                t["synth"], t["method"], t["versus"], t["metric"], format_value(t["n_seeds"]),
                format_value(t["n_test"]), diff, format_value(t["p_boot"], "—"),
                format_value(t["p_holm"], "—"), format_value(t["p_t_seeds"], "—")]) + " |")
        lines += ["", f"- Bootstrap: {TEST_BOOT}, {N_BOOT} draws; p two-sided; Holm over every "
                  "row of this table (one family). The paired t-test over seeds uses each "
                  "run's mean; with 3 seeds it has 2 degrees of freedom and little power. "
                  "A negative difference: PNP-JTFS is lower (better)."]
    return "\n".join(lines) + "\n"


def table_notes(df: pd.DataFrame) -> list[str]:
    """The footnotes every table carries (what the numbers are, when std is NaN)."""
    notes = ["Each cell: mean ± standard deviation (ddof = 1) over seeds of each run's mean "
             "over the whole test fold, and in brackets the 95 % interval of the two-way "
             "bootstrap over seeds and test sounds (docs/evaluation.md). JTFS distance "
             "‖Φ(g(θ̂)) − Φ(g(θ))‖₂; micro: Σw·d/Σw with w = √(σ₁σ₂) of the sample's M; MSS: "
             "auraloss MultiResolutionSTFTLoss (defaults); log-mel MSS, MFCC-DTW, f0 error and "
             "RMS envelope: the distances of docs/evaluation.md (librosa; f0 over the test "
             "sounds where both are pitched, none for the drum: NaN); parameter error: mean squared "
             "error in the normalised parameter space; chance: the parameter error of "
             "always predicting the centre of the parameter box (a model must be below it); "
             "s / epoch with and without validation and s / optimizer step from the "
             "training histories."]
    if len(df) and (df["n_runs"] == 1).any():
        notes.append("A cell without ± comes from a single run (one seed): no spread to report "
                     "(std is NaN in the CSV), and no test across methods is possible.")
    if "test" in df.columns:
        notes.append(f"Tests vs the baseline row (two-sided, on each metric): paired t (seeds) "
                     f"= {TEST_SEEDS}, with ≥ 2 common seeds; p Holm: Holm's correction over "
                     "the table's variants, per metric. With one seed: no test.")
    return notes


def write_tables(df: pd.DataFrame, csv_path, md_path, title: str,
                 tests: pd.DataFrame | None = None, tests_csv=None) -> None:
    """Write ``df`` as CSV (:func:`pnp_core.io.write_csv`) and as Markdown, atomically, and
    Table 1's ``tests`` (CSV at ``tests_csv``, and below the Markdown table) when given."""
    write_csv(df, csv_path)
    if tests is not None and tests_csv is not None:
        write_csv(tests, tests_csv)
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(markdown(df, title, table_notes(df), tests), encoding="utf-8")


__all__ = ["table1", "table1_tests", "AUDIO_VALUES", "defined_mean", "ablation_table", "sample_matrix", "TESTS_COLUMNS", "aggregate", "paired_test", "load_runs", "run_values",
           "run_group", "method_label", "micro_mean", "format_value", "mean_std_cell", "markdown", "write_tables", "TABLE_COLUMNS",
           "ABLATION_COLUMNS", "TABLE1_METHODS", "TEST_SEEDS", "TEST_NONE",
           "TEST_BOOT"]
