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
``mss_dist`` and ``param_err``, the micro JTFS distance (mean of ``jtfs_dist`` weighted
by ``micro_weight``) and the mean of the history's ``seconds`` per epoch. Each table
cell is the mean and the sample standard deviation (ddof = 1) of those run values
over the group's runs (seeds); with one run the std is NaN.

Paired test of a variant against its baseline (ablation tables), on ``jtfs_dist``:
with ≥ 2 seeds in both, a paired t-test over the common seeds of the run means
(``scipy.stats.ttest_rel``); with one common seed, a Wilcoxon signed-rank test over
the paired per-sample distances of the common test ids (``scipy.stats.wilcoxon``).
Both two-sided.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from pnp_core.errors import DataError
from pnp_core.formats import EVAL_FORMAT, HISTORY_FORMAT
from pnp_core.io import atomic_path, read_table, write_csv
from pnp_core.run_names import (LOSS_NAMES, METHOD_LABELS, TABLE1_LOSSES, run_group,
                                run_label)

#: columns of Table 1 (and the first columns of every ablation table), in order
TABLE_COLUMNS = ["synth", "method", "run_group", "n_runs", "n_test", "jtfs_mean", "jtfs_std",
                 "micro_mean", "micro_std", "mss_mean", "mss_std", "param_err_mean",
                 "param_err_std", "sec_per_epoch_mean", "sec_per_epoch_std"]
#: extra columns of an ablation table
ABLATION_COLUMNS = TABLE_COLUMNS + ["axis", "role", "baseline", "test", "n_pairs", "statistic",
                                    "p_value"]
#: Table-1 rows, in order: loss → method label
TABLE1_METHODS = {loss: METHOD_LABELS[LOSS_NAMES[loss]] for loss in TABLE1_LOSSES}
#: per-run values aggregated into the tables: output prefix → how
VALUES = ("jtfs", "micro", "mss", "param_err", "sec_per_epoch")
TEST_SEEDS = "paired t-test over seeds (run means of jtfs_dist)"
TEST_SAMPLES = "Wilcoxon signed-rank over paired test samples (jtfs_dist)"

#: the tests' names in the Markdown tables (the notes spell them out)
SHORT_TESTS = {TEST_SEEDS: "paired t (seeds)", TEST_SAMPLES: "Wilcoxon (samples)"}

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


def run_values(metrics: pd.DataFrame, history: pd.DataFrame) -> dict:
    """The per-run numbers a table aggregates (see the module docstring)."""
    if len(metrics) == 0:
        raise DataError("an evaluation with no test sample cannot be tabulated")
    return {"jtfs": float(metrics["jtfs_dist"].mean()),
            "micro": micro_mean(metrics["jtfs_dist"], metrics["micro_weight"]),
            "mss": float(metrics["mss_dist"].mean()),
            "param_err": float(metrics["param_err"].mean()),
            "sec_per_epoch": float(history["seconds"].mean()) if len(history) else math.nan,
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
        samples = pd.Series(metrics["jtfs_dist"].to_numpy(np.float64),
                            index=metrics["id"].to_numpy(np.int64))
        out.append({**r, "group": run_group(r["name"]), "values": run_values(metrics, history),
                    "samples": samples})
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


def paired_test(variant: list[dict], baseline: list[dict]) -> dict:
    """Paired test of ``variant`` runs against ``baseline`` runs on jtfs_dist (see module doc)."""
    from scipy import stats

    by_seed_v = {r.get("seed"): r for r in variant}
    by_seed_b = {r.get("seed"): r for r in baseline}
    seeds = [s for s in by_seed_v if s in by_seed_b]
    nan = {"test": "none (no common seed)", "n_pairs": 0, "statistic": math.nan,
           "p_value": math.nan}
    if len(seeds) >= 2:
        a = np.array([by_seed_v[s]["values"]["jtfs"] for s in seeds])
        b = np.array([by_seed_b[s]["values"]["jtfs"] for s in seeds])
        if np.allclose(a, b, rtol=0, atol=0):
            return {**nan, "test": TEST_SEEDS, "n_pairs": len(seeds)}
        res = stats.ttest_rel(a, b)
        return {"test": TEST_SEEDS, "n_pairs": len(seeds), "statistic": float(res.statistic),
                "p_value": float(res.pvalue)}
    if len(seeds) == 1:
        va, vb = by_seed_v[seeds[0]]["samples"], by_seed_b[seeds[0]]["samples"]
        ids = va.index.intersection(vb.index)
        a, b = va.loc[ids].to_numpy(), vb.loc[ids].to_numpy()
        ok = np.isfinite(a) & np.isfinite(b)
        a, b = a[ok], b[ok]
        out = {**nan, "test": TEST_SAMPLES, "n_pairs": int(a.size)}
        if a.size == 0 or np.all(a == b):
            return out
        res = stats.wilcoxon(a, b)
        return {**out, "statistic": float(res.statistic), "p_value": float(res.pvalue)}
    return nan


def ablation_table(runs: list[dict], axis: str) -> pd.DataFrame:
    """An ablation table: per synth, each baseline row followed by its variants, with the
    paired test of each variant against its baseline (``axis``: the runs' axis name)."""
    runs = [r for r in runs if r.get("axis", axis) == axis]
    loaded = load_runs(runs)
    rows = []
    for synth in dict.fromkeys(r["synth"] for r in loaded):
        mine = [r for r in loaded if r["synth"] == synth]
        baselines = dict.fromkeys(r["group"] for r in mine if r.get("role") == "baseline")
        for base in baselines:
            rows.append({**aggregate(loaded, synth, base), "axis": axis, "role": "baseline",
                         "baseline": base, "test": "", "n_pairs": 0, "statistic": math.nan,
                         "p_value": math.nan})
            base_runs = [r for r in mine if r["group"] == base]
            variants = dict.fromkeys(r["group"] for r in mine
                                     if r.get("role") == "variant" and r.get("baseline") == base)
            for group in variants:
                var_runs = [r for r in mine if r["group"] == group]
                rows.append({**aggregate(loaded, synth, group), "axis": axis,
                             "role": "variant", "baseline": base,
                             **paired_test(var_runs, base_runs)})
        orphans = {r["group"] for r in mine if r.get("role") == "variant"
                   and r.get("baseline") not in baselines}
        if orphans:
            raise DataError(f"{synth}: ablation runs {sorted(orphans)} name a baseline that is "
                            "not in the run list")
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS)


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


def markdown(df: pd.DataFrame, title: str, notes: list[str] = ()) -> str:
    """A readable Markdown table: "mean ± std" cells, counts, test columns if present."""
    cols = ["synth", "method", "n_runs", "n_test"]
    heads = ["synth", "method", "runs", "test samples"]
    pairs = [("jtfs", "JTFS distance"), ("micro", "JTFS distance, micro"),
             ("mss", "MSS distance"), ("param_err", "parameter error"),
             ("sec_per_epoch", "s / epoch")]
    extra = [("role", "role"), ("test", "test vs baseline"), ("n_pairs", "pairs"),
             ("p_value", "p")] if "p_value" in df.columns else []
    lines = [f"# {title}", "",
             "| " + " | ".join(heads + [h for _, h in pairs] + [h for _, h in extra]) + " |",
             "|" + "---|" * (len(heads) + len(pairs) + len(extra))]
    for _, row in df.iterrows():
        cells = [format_value(row[c]) for c in cols]
        cells += [mean_std_cell(row[f"{k}_mean"], row[f"{k}_std"]) for k, _ in pairs]
        if extra and row["role"] == "baseline":
            cells += ["baseline", "—", "—", "—"]
        elif extra:
            cells += ["variant", SHORT_TESTS.get(row["test"], row["test"]), format_value(row["n_pairs"]),
                      format_value(row["p_value"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def table_notes(df: pd.DataFrame) -> list[str]:
    """The footnotes every table carries (what the numbers are, when std is NaN)."""
    notes = ["Each cell: mean ± standard deviation (ddof = 1) over seeds of each run's mean "
             "over the whole test fold. JTFS distance ‖Φ(g(θ̂)) − Φ(g(θ))‖₂; micro: weighted "
             "by √(σ₁σ₂) of the sample's M; MSS: auraloss MultiResolutionSTFTLoss (defaults); "
             "parameter error: mean squared error in the normalised parameter space; s / epoch "
             "from the training histories (docs/evaluation.md)."]
    if len(df) and (df["n_runs"] == 1).any():
        notes.append("A cell without ± comes from a single run (one seed): no spread to report "
                     "(std is NaN in the CSV).")
    if "test" in df.columns:
        notes.append(f"Tests vs the baseline row (two-sided, on jtfs_dist): paired t (seeds) = "
                     f"{TEST_SEEDS}, used with ≥ 2 seeds; Wilcoxon (samples) = {TEST_SAMPLES} "
                     "(same test ids), used with one seed.")
    return notes


def write_tables(df: pd.DataFrame, csv_path, md_path, title: str) -> None:
    """Write ``df`` as CSV (:func:`pnp_core.io.write_csv`) and as Markdown, atomically."""
    write_csv(df, csv_path)
    with atomic_path(md_path) as tmp:
        Path(tmp).write_text(markdown(df, title, table_notes(df)), encoding="utf-8")


__all__ = ["table1", "ablation_table", "aggregate", "paired_test", "load_runs", "run_values",
           "run_group", "method_label", "micro_mean", "format_value", "mean_std_cell", "markdown", "write_tables", "TABLE_COLUMNS",
           "ABLATION_COLUMNS", "TABLE1_METHODS", "TEST_SEEDS", "TEST_SAMPLES"]
