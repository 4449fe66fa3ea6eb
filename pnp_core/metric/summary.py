"""Figure-ready summaries of a metric file: eigenvalue spectra, condition numbers, quantiles.

Formats (tables of :mod:`pnp_core.io`): ``pnp-metric-summary/1`` (one row per
sample) and ``pnp-metric-quantiles/1`` (long format); columns in :func:`summarise`.
Both carry the source file's ``provenance``, ``scaler`` and ``fold``.
"""

from __future__ import annotations

import os

import numpy as np

from pnp_core.io import write_table
from pnp_core.metric.file import MetricTable, fixed_list

SUMMARY_FORMAT = "pnp-metric-summary/1"
QUANTILES_FORMAT = "pnp-metric-quantiles/1"
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def condition_numbers(eig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """λ_max/λ_min and λ_max/λ_2 (2nd smallest) from ascending eigenvalues (n, P).

    A non-positive denominator (numerically singular M) gives +inf.
    """
    eig = np.asarray(eig, dtype=np.float64)
    lmax = eig[:, -1]
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(eig[:, 0] > 0, lmax / eig[:, 0], np.inf)
        c2 = np.where(eig[:, 1] > 0, lmax / eig[:, 1], np.inf) if eig.shape[1] > 1 else c1
    return c1, c2


def summarise(table: MetricTable):
    """Per-sample spectra and condition numbers, and their quantiles.

    Returns
    -------
    per_sample : pyarrow.Table, one row per id:
        ``id`` int64; ``eigenvalues`` and ``log10_eigenvalues`` fixed_size_list<double>[P]
        (ascending; log10 is NaN for λ ≤ 0); ``lambda_min``, ``lambda_2`` (2nd smallest),
        ``lambda_max``, ``trace``; ``cond`` = λ_max/λ_min and ``cond2`` = λ_max/λ_2
        (+inf when the denominator is ≤ 0); ``log10_cond``, ``log10_cond2``;
        ``singular`` (bool, λ_min ≤ P·ε·λ_max, i.e. numerically zero).
    quantiles : pyarrow.Table, long format: ``quantity`` (str), ``q`` (float64),
        ``value`` (float64), for quantities ``log10_lambda_1`` … ``log10_lambda_P``
        (1 = smallest), ``log10_cond``, ``log10_cond2``, ``log10_trace``; NaN-aware.
    """
    import pyarrow as pa

    eig = np.asarray(table.eig, dtype=np.float64)
    n, P = eig.shape
    c1, c2 = condition_numbers(eig) if n else (np.empty(0), np.empty(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eig = np.where(eig > 0, np.log10(np.where(eig > 0, eig, 1.0)), np.nan)
        log_c1, log_c2 = np.log10(c1), np.log10(c2)
        trace = eig.sum(axis=1)
        log_trace = np.where(trace > 0, np.log10(np.where(trace > 0, trace, 1.0)), np.nan)
    singular = eig[:, 0] <= P * np.finfo(np.float64).eps * eig[:, -1] if n else np.empty(0, bool)
    per_sample = pa.table({
        "id": pa.array(table.ids, type=pa.int64()),
        "eigenvalues": fixed_list(eig, P),
        "log10_eigenvalues": fixed_list(log_eig, P),
        "lambda_min": eig[:, 0], "lambda_2": eig[:, min(1, P - 1)], "lambda_max": eig[:, -1],
        "trace": trace, "cond": c1, "cond2": c2, "log10_cond": log_c1, "log10_cond2": log_c2,
        "singular": pa.array(singular, type=pa.bool_()),
    })
    rows = []
    series = {f"log10_lambda_{i + 1}": log_eig[:, i] for i in range(P)}
    series.update(log10_cond=log_c1, log10_cond2=log_c2, log10_trace=log_trace)
    for name, values in series.items():
        finite = values[np.isfinite(values)]
        for q in QUANTILES:
            v = float(np.quantile(finite, q)) if finite.size else float("nan")
            rows.append((name, q, v))
    quantiles = pa.table({"quantity": [r[0] for r in rows], "q": [r[1] for r in rows],
                          "value": [r[2] for r in rows]})
    return per_sample, quantiles


def write_summaries(table: MetricTable, summary_path: str | os.PathLike,
                    quantiles_path: str | os.PathLike, source: str = "") -> None:
    """Write :func:`summarise`'s two tables atomically, with the metric file's provenance."""
    per_sample, quantiles = summarise(table)
    keep = ("provenance", "scaler", "fold", "n_params", "param_names", "eigenvalue_order")
    meta = {k: table.meta[k] for k in keep if k in table.meta}
    meta.update(source=str(source), n_samples=len(table))
    write_table(per_sample, summary_path, SUMMARY_FORMAT, meta)
    write_table(quantiles, quantiles_path, QUANTILES_FORMAT, meta)


__all__ = ["SUMMARY_FORMAT", "QUANTILES_FORMAT", "QUANTILES", "condition_numbers", "summarise",
           "write_summaries"]
