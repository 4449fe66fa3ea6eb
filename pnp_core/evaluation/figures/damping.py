"""The damping λ of PNP runs per epoch, one panel per synthesizer, one line per run
(the Table-1 adaptive run and, when given, the damping ablations), markers by what the
damping rule did after that epoch's validation.

Input: ``results/runs/{synth}/{run}/history.parquet`` of PNP runs (columns ``lam``, the
λ used during the epoch, and ``damping_event``; :mod:`pnp_core.training.damping`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pnp_core.evaluation.figures.runs import read_histories
from pnp_core.evaluation.figures.style import pyplot, run_label, save_figure

#: damping event → marker (what happened after the epoch's validation)
EVENTS = {"improved": ("v", "val. improved → λ × accelerator"),
          "braked": ("^", "no improvement → λ × brake"),
          "restored": ("X", "no improvement → λ × brake, best weights back"),
          "held": ("o", "constant λ"),
          "decayed": ("s", "scheduled decay")}


#: sideways offset between runs (epochs) and their line styles
DODGE = 0.04
STYLES = ("-", "--", "-.", ":")


def plot_damping(hist: pd.DataFrame, pdf, png) -> None:
    """``hist``: stacked histories of PNP runs (:func:`~pnp_core.evaluation.figures.runs.read_histories`)."""
    plt = pyplot()
    synths = list(dict.fromkeys(hist["synth"]))
    fig, axs = plt.subplots(len(synths), 1, figsize=(8.5, 3.6 * len(synths)), squeeze=False,
                            layout="constrained")
    palette = plt.get_cmap("tab10")
    labels = sorted(dict.fromkeys(run_label(r) for r in hist["run"]),
                    key=lambda s: (s != "PNP-JTFS", s))
    for ax, synth in zip(axs[:, 0], synths):
        sub = hist[hist["synth"] == synth]
        seen_events = set()
        runs = sorted(set(sub["run"]), key=lambda r: (labels.index(run_label(r)), r))
        labelled = set()
        for i, run in enumerate(runs):
            g = sub[sub["run"] == run].sort_values("epoch")
            label = run_label(run)
            c = palette(labels.index(label) % 10)
            # runs often share a λ path (e.g. every epoch improved): offset them sideways
            x = g["epoch"].to_numpy(float) + DODGE * (i - (len(runs) - 1) / 2)
            ax.plot(x, g["lam"], STYLES[labels.index(label) % len(STYLES)], color=c, lw=1.5,
                    label=label if label not in labelled else "_nolegend_")
            labelled.add(label)
            events = g["damping_event"].to_numpy() if "damping_event" in g else []
            for event, (marker, _) in EVENTS.items():
                hit = np.asarray(events) == event
                if hit.any():
                    seen_events.add(event)
                    ax.plot(x[hit], g["lam"].to_numpy()[hit], marker, color=c, ms=6,
                            mec="black", mew=0.5, ls="none")
        lam = sub["lam"].to_numpy(float)
        positive = lam[lam > 0]
        if positive.size and (lam <= 0).any():
            ax.set_yscale("symlog", linthresh=float(positive.min()))
            ax.axhline(0.0, color="grey", lw=0.8)
        elif positive.size:
            ax.set_yscale("log")
        handles, names = ax.get_legend_handles_labels()
        for event in EVENTS:
            if event in seen_events:
                marker, text = EVENTS[event]
                handles.append(plt.Line2D([], [], marker=marker, color="grey", mec="black",
                                          mew=0.5, ls="none"))
                names.append(text)
        ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        ax.set_xlabel("epoch (runs offset sideways so that equal paths stay visible)")
        ax.set_ylabel("damping λ during the epoch (log)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        n0 = int(np.sum(sub.groupby("run")["lam"].max() <= 0))
        ax.set_title(f"{synth}: λ of the PNP runs" + (f" ({n0} undamped, λ = 0)" if n0 else ""))
    save_figure(fig, pdf, png)


def figure_damping(history_paths, pdf, png) -> pd.DataFrame:
    hist = read_histories(history_paths)
    plot_damping(hist, pdf, png)
    return hist


__all__ = ["plot_damping", "figure_damping", "EVENTS"]
