"""Figures of the DTFA experiment (matplotlib, Agg backend): loss landscapes with
gradient-descent paths, loss against a time shift, convergence curves.

Each ``plot_*`` function takes precomputed numbers and writes a PDF and a PNG
(atomically) of the same figure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pnp_core.evaluation.figures.style import save_figure

LOSS_LABELS = {"jtfs": "JTFS", "mss": "MSS", "p": "P-loss (oracle)", "pnp": "PNP (M at init)",
               "jtfs_lm": "JTFS, Levenberg–Marquardt"}
LOSS_COLOURS = {"jtfs": "tab:blue", "mss": "tab:orange", "p": "tab:green", "pnp": "tab:red",
                "jtfs_lm": "tab:purple"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def axis_label(space, col: int) -> str:
    p = space.params[col]
    return f"{p.name} [{p.unit}]" + (" (log scale)" if p.log else "")


def plot_landscapes(panels, space, axes, theta_target, pdf, png) -> None:
    """One panel per loss: the loss (log colour scale) over the slice, paths on top.

    Parameters
    ----------
    panels : list of dict with ``loss``, ``grid_a``, ``grid_b`` (ν, (n,)), ``values`` (n, n)
        and ``paths`` (T + 1, B, 2) ν
    space : ParamSpace (for names, units and the physical tick values)
    axes : the two columns of the slice
    theta_target : (P,) physical θ of the target
    """
    import torch

    from pnp_core.matching.matchers import box_scaler

    plt = _pyplot()
    scaler = box_scaler(space)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    fig, axs = plt.subplots(1, len(panels), figsize=(5.8 * len(panels), 4.4), squeeze=False,
                            layout="constrained")

    def phys(col, nu_vals):  # physical values of ν along one column
        nu = np.zeros((len(nu_vals), len(space)))
        nu[:, col] = nu_vals
        return scaler.inverse(torch.as_tensor(nu)).numpy()[:, col]

    a, b = axes
    for ax, panel in zip(axs[0], panels):
        ga, gb = phys(a, panel["grid_a"]), phys(b, panel["grid_b"])
        vals = panel["values"]
        floor = np.min(vals[vals > 0]) if np.any(vals > 0) else 1.0
        mesh = ax.pcolormesh(ga, gb, np.log10(np.maximum(vals, floor)).T, shading="nearest",
                             cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=f"log10 {LOSS_LABELS.get(panel['loss'], panel['loss'])}"
                                         " loss")
        for k in range(panel["paths"].shape[1]):
            pa, pb = phys(a, panel["paths"][:, k, 0]), phys(b, panel["paths"][:, k, 1])
            ax.plot(pa, pb, "-", color="white", lw=1.2)
            ax.plot(pa[0], pb[0], "o", color="white", ms=4)
            ax.plot(pa[-1], pb[-1], "x", color="red", ms=6, mew=2)
        ax.plot(theta_target[a], theta_target[b], "*", color="gold", ms=14, mec="black",
                label="target")
        for col, setter, axis in ((a, ax.set_xscale, ax.xaxis), (b, ax.set_yscale, ax.yaxis)):
            if space.params[col].log:
                setter("log")
                axis.set_major_formatter(ScalarFormatter())   # 3, not 3×10⁰
                axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(axis_label(space, a))
        ax.set_ylabel(axis_label(space, b))
        ax.set_title(f"{LOSS_LABELS.get(panel['loss'], panel['loss'])}: "
                     "landscape and Adam paths (o start, x end)", fontsize=9)
        ax.legend(loc="upper right", fontsize=8)
    save_figure(fig, pdf, png)


def plot_time_shift(shifts_s, curves: dict, pdf, png) -> None:
    """Loss against the shift (ms), one curve per loss; values relative to silence."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    ms = 1000.0 * np.asarray(shifts_s)
    for loss, vals in curves.items():
        ax.plot(ms, vals, "-o", ms=3, color=LOSS_COLOURS.get(loss), label=LOSS_LABELS.get(loss, loss))
    ax.axhline(1.0, color="grey", ls=":", lw=1, label="distance to silence")
    ax.set_xlabel("time shift of the target [ms]")
    ax.set_ylabel("d(target, shifted) / d(target, silence)")
    ax.set_title("Sensitivity of the distance to a time shift of the target", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_figure(fig, pdf, png)


def plot_convergence(traces: pd.DataFrame, tolerance: float, pdf, png) -> None:
    """Median and interquartile band of the normalised parameter error per iteration,
    one panel per synthesizer, one curve per loss."""
    plt = _pyplot()
    synths = list(dict.fromkeys(traces["synth"]))
    fig, axs = plt.subplots(1, len(synths), figsize=(5.5 * len(synths), 3.8), squeeze=False)
    for ax, synth in zip(axs[0], synths):
        sub = traces[traces["synth"] == synth]
        for loss, g in sub.groupby("loss", sort=False):
            q = g.groupby("iteration")["error"].quantile([0.25, 0.5, 0.75]).unstack()
            c = LOSS_COLOURS.get(loss)
            n = g["pair"].nunique()
            ax.plot(q.index, q[0.5], color=c, label=f"{LOSS_LABELS.get(loss, loss)} (n={n})")
            ax.fill_between(q.index, q[0.25], q[0.75], color=c, alpha=0.2, lw=0)
        ax.axhline(tolerance, color="black", ls="--", lw=1, label=f"tolerance {tolerance:g}")
        ax.set_yscale("log")
        ax.set_xlabel("Adam iteration")
        ax.set_ylabel("normalised parameter error ‖ν̂−ν‖/(2√P)")
        ax.set_title(f"{synth}: median and interquartile range over pairs", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    save_figure(fig, pdf, png)


def plot_match_spectrograms(target, match, sr: int, pdf, png, title: str = "") -> None:
    """Log-magnitude STFTs of the target and the match, side by side (1-D float arrays)."""
    from scipy.signal import stft

    plt = _pyplot()
    fig, axs = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    specs = []
    for x in (target, match):
        f, t, Z = stft(np.asarray(x, np.float64), fs=sr, nperseg=512, noverlap=384)
        specs.append((f, t, 20 * np.log10(np.abs(Z) + 1e-8)))
    vmax = max(s[2].max() for s in specs)
    for ax, (f, t, S), name in zip(axs, specs, ("target", "match")):
        mesh = ax.pcolormesh(t, f, S, shading="auto", vmin=vmax - 80, vmax=vmax, cmap="magma")
        ax.set_xlabel("time [s]")
        ax.set_title(name, fontsize=10)
    axs[0].set_ylabel("frequency [Hz]")
    fig.colorbar(mesh, ax=axs, label="magnitude [dB]")
    if title:
        fig.suptitle(title, fontsize=9)
    save_figure(fig, pdf, png)
