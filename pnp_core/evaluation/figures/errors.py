"""Per-parameter squared error against the matching diagonal entry of M (log–log), one
panel per parameter, one colour per method, for one synthesizer's test fold.

Input: ``results/eval/{synth}/{run}/metrics.parquet`` (format ``pnp-eval/1``): per test
sound, ``sqerr_<p>`` = (ν̂_p − ν_p)² in the run's rescaling and ``m_diag_<p>`` = M_pp of
the test fold in the same rescaling (NaN when the test-fold M was not computed). A
sensitive parameter (large M_pp) should be matched more closely by a perceptual loss:
the legend gives each method's Spearman rank correlation ρ between the two.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pnp_core.evaluation.figures.runs import read_metrics
from pnp_core.evaluation.figures.style import COLOURS, METHOD_ORDER, pyplot, save_figure


def param_names(metrics: pd.DataFrame) -> list[str]:
    return [c[len("sqerr_"):] for c in metrics.columns if c.startswith("sqerr_")]


def plot_errors(metrics: pd.DataFrame, pdf, png, title: str = "") -> None:
    """``metrics``: stacked per-sample metrics of one synth's runs
    (:func:`pnp_core.evaluation.figures.runs.read_metrics`)."""
    from scipy.stats import spearmanr

    plt = pyplot()
    names = param_names(metrics)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axs = plt.subplots(nrows, ncols, figsize=(4.4 * ncols, 3.7 * nrows), squeeze=False,
                            layout="constrained")
    methods = [m for m in METHOD_ORDER if m in set(metrics["method"])]
    methods += sorted(set(metrics["method"]) - set(methods))
    for ax, p in zip(axs.flat, names):
        x_col, y_col = f"m_diag_{p}", f"sqerr_{p}"
        if x_col not in metrics or not np.isfinite(metrics[x_col].to_numpy(float)).any():
            ax.text(0.5, 0.5, "M of the test fold not computed\n(add 'test' to jacobian.folds)",
                    ha="center", va="center", transform=ax.transAxes)
            ax.set_title(p)
            continue
        for method in methods:
            g = metrics[metrics["method"] == method]
            x, y = g[x_col].to_numpy(float), g[y_col].to_numpy(float)
            ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
            rho = spearmanr(x[ok], y[ok])[0] if ok.sum() > 2 else float("nan")
            ax.scatter(x[ok], y[ok], s=10, alpha=0.6, color=COLOURS.get(method, "tab:gray"),
                       lw=0, rasterized=True,  # 10,000 points per method at paper scale
                       label=f"{method} (ρ = {rho:.2f}, n = {int(ok.sum())})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"M_pp of {p}  [Φ² per ν²] (log)")
        ax.set_ylabel(f"(ν̂ − ν)² of {p}  [ν²] (log)")
        ax.set_title(p)
        ax.legend(loc="best", fontsize=7, markerscale=1.5)
    for ax in axs.flat[len(names):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    save_figure(fig, pdf, png)


def figure_errors(metrics_paths, pdf, png) -> pd.DataFrame:
    metrics = read_metrics(metrics_paths)
    synths = sorted(set(metrics["synth"]))
    plot_errors(metrics, pdf, png,
                title=f"{', '.join(synths)}: per-parameter squared error vs sensitivity, "
                      "test fold")
    return metrics


__all__ = ["plot_errors", "figure_errors", "param_names"]
