"""Learning curves: validation loss (each run's own objective) and validation P-loss per
epoch, one row of panels per synthesizer, one curve per method (mean over seeds, with a
±1 standard-deviation band when there are several).

Input: ``results/runs/{synth}/{run}/history.parquet`` (format ``pnp-history/1``,
:mod:`pnp_core.training.train`).
"""

from __future__ import annotations

import pandas as pd

from pnp_core.evaluation.figures.runs import read_histories
from pnp_core.evaluation.figures.style import COLOURS, METHOD_ORDER, log_axis, pyplot, save_figure

PANELS = (
    ("val_loss", "validation loss, own objective (log)"),
    ("val_ploss", "validation P-loss: MSE in ν (log)"),
)


def plot_curves(hist: pd.DataFrame, pdf, png) -> None:
    """``hist``: stacked histories (:func:`pnp_core.evaluation.figures.runs.read_histories`)."""
    import seaborn as sns

    plt = pyplot()
    synths = list(dict.fromkeys(hist["synth"]))
    fig, axs = plt.subplots(len(synths), len(PANELS), figsize=(10, 3.4 * len(synths)),
                            squeeze=False, layout="constrained")
    methods = [m for m in METHOD_ORDER if m in set(hist["method"])]
    methods += sorted(set(hist["method"]) - set(methods))
    for row, synth in zip(axs, synths):
        sub = hist[hist["synth"] == synth]
        n_seeds = sub.groupby("method")["run"].nunique().max()
        for ax, (col, label) in zip(row, PANELS):
            sns.lineplot(data=sub, x="epoch", y=col, hue="method", hue_order=methods,
                         palette={m: COLOURS.get(m, "tab:gray") for m in methods},
                         marker="o", errorbar="sd" if n_seeds > 1 else None, ax=ax)
            log_axis(ax)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.xaxis.get_major_locator().set_params(integer=True)
            seeds = f"mean ± sd over {n_seeds} seeds" if n_seeds > 1 else "1 seed"
            ax.set_title(f"{synth}: {label.split(',')[0].split(':')[0]} ({seeds})")
            ax.legend(title=None)
    save_figure(fig, pdf, png)


def figure_curves(history_paths, pdf, png) -> pd.DataFrame:
    hist = read_histories(history_paths)
    plot_curves(hist, pdf, png)
    return hist


__all__ = ["plot_curves", "figure_curves"]
