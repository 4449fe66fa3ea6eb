"""Table 1 as bar charts: one row of panels per synthesizer, one panel per metric, one
bar per method (mean over seeds) with ±1 standard deviation error bars.

Input: ``results/table1.csv`` (``pnp table1``): columns ``synth``, ``method``,
``n_runs``, ``n_test`` and ``<metric>_mean`` / ``<metric>_std``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pnp_core.evaluation.figures.style import COLOURS, METHOD_ORDER, pyplot, save_figure

#: Table-1 metric → (panel title, y-axis label, log axis)
METRICS = {
    "jtfs": ("JTFS distance ↓", "‖Φ(x̂) − Φ(x)‖, log-JTFS", False),
    "mss": ("MSS distance ↓", "multi-resolution STFT distance", False),
    "param_err": ("parameter error ↓", "MSE in ν (rescaled θ)", False),
    "sec_per_epoch": ("training time", "seconds per epoch [s] (log)", True),
}


def plot_table1(table: pd.DataFrame, pdf, png) -> None:
    plt = pyplot()
    metrics = [m for m in METRICS if f"{m}_mean" in table.columns]
    synths = list(dict.fromkeys(table["synth"]))
    fig, axs = plt.subplots(len(synths), len(metrics), figsize=(3.4 * len(metrics),
                            3.2 * len(synths)), squeeze=False, layout="constrained")
    for row, synth in zip(axs, synths):
        sub = table[table["synth"] == synth].copy()
        order = [m for m in METHOD_ORDER if m in set(sub["method"])]
        order += [m for m in sub["method"] if m not in order]
        sub = sub.set_index("method").loc[order]
        for ax, metric in zip(row, metrics):
            title, label, log = METRICS[metric]
            mean = sub[f"{metric}_mean"].to_numpy(float)
            std = sub.get(f"{metric}_std", pd.Series(np.nan, index=sub.index)).to_numpy(float)
            yerr = np.where(np.isfinite(std), std, 0.0)
            x = np.arange(len(order))
            ax.bar(x, mean, yerr=yerr, capsize=4, color=[COLOURS.get(m, "tab:gray")
                                                         for m in order], edgecolor="black",
                   lw=0.5)
            ax.set_xticks(x, order, rotation=30, ha="right")
            if log:
                ax.set_yscale("log")
            ax.set_ylabel(label)
            runs = sub["n_runs"].to_numpy() if "n_runs" in sub else np.array([np.nan])
            n_seeds = f"{int(np.nanmin(runs))}" if np.isfinite(runs).all() else "?"
            ax.set_title(f"{synth}: {title}\nmean ± sd over {n_seeds} run(s)", fontsize=9)
            ax.grid(axis="x", visible=False)
    save_figure(fig, pdf, png)


def figure_table1(csv_path, pdf, png) -> pd.DataFrame:
    table = pd.read_csv(csv_path)
    plot_table1(table, pdf, png)
    return table


__all__ = ["plot_table1", "figure_table1", "METRICS"]
