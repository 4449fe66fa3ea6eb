"""Eigenvalue spectra of M = JᵀJ across a fold, one panel per synthesizer.

Input: the per-sample summaries ``results/jacobian/{synth}/{fold}.summary.parquet``
(:mod:`pnp_core.metric.summary`). For each eigenvalue rank k (1 = smallest) the
median over the fold's sounds is drawn with its interquartile and 5–95 % bands and
the min/max, on a log axis; the title gives the fold size and the median condition
number λ_max/λ_min.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pnp_core.evaluation.figures.style import pyplot, save_figure


def read_spectra(path) -> tuple[np.ndarray, dict]:
    """Eigenvalues (n, P), ascending per row, and the metadata of a summary file."""
    from pnp_core.io import read_table
    from pnp_core.metric.summary import SUMMARY_FORMAT

    table = read_table(path, SUMMARY_FORMAT, what="the metric summary (pnp jacobian-summary)")
    eig = np.stack(table.data["eigenvalues"].to_numpy()) if len(table.data) else np.empty((0, 0))
    return eig.astype(np.float64), table.meta


def plot_spectra(spectra: dict, pdf, png, fold: str = "train") -> None:
    """``spectra``: synth → eigenvalues (n, P) ascending. One panel per synth."""
    plt = pyplot()
    fig, axs = plt.subplots(1, len(spectra), figsize=(4.6 * len(spectra), 3.6), squeeze=False,
                            layout="constrained")
    for ax, (synth, eig) in zip(axs[0], spectra.items()):
        n, P = eig.shape
        k = np.arange(1, P + 1)
        pos = np.where(eig > 0, eig, np.nan)   # log axis: λ ≤ 0 (numerically singular) left out
        q = {p: np.nanquantile(pos, p, axis=0) for p in (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)}
        ax.fill_between(k, q[0.05], q[0.95], color="tab:blue", alpha=0.15, lw=0,
                        label="5–95 %")
        ax.fill_between(k, q[0.25], q[0.75], color="tab:blue", alpha=0.35, lw=0,
                        label="interquartile")
        ax.plot(k, q[0.5], "-o", color="tab:blue", ms=4, label="median")
        ax.plot(k, q[0.0], ":", color="tab:blue", lw=1, label="min / max")
        ax.plot(k, q[1.0], ":", color="tab:blue", lw=1)
        ax.set_yscale("log")
        ax.set_xticks(k)
        ax.set_xlabel("eigenvalue rank k (1 = smallest)")
        ax.set_ylabel("eigenvalue λ_k of M  [Φ² per ν²]")
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.nanmedian(eig[:, -1] / np.where(eig[:, 0] > 0, eig[:, 0], np.nan))
        n_bad = int(np.sum(eig[:, 0] <= 0))
        title = f"{synth}: {fold} fold, {n} sounds\nmedian λ_max/λ_min = {cond:.3g}"
        if n_bad:
            title += f" ({n_bad} with λ_min ≤ 0 left out)"
        ax.set_title(title)
        ax.legend(loc="upper left")
    save_figure(fig, pdf, png)


def figure_spectra(summary_paths, pdf, png) -> dict:
    """Read ``…/{synth}/{fold}.summary.parquet`` files and draw :func:`plot_spectra`."""
    spectra, folds = {}, set()
    for path in summary_paths:
        eig, meta = read_spectra(path)
        spectra[Path(path).parent.name] = eig
        folds.add(str(meta.get("fold", Path(path).name.split(".")[0])))
    plot_spectra(spectra, pdf, png, fold="/".join(sorted(folds)))
    return spectra


__all__ = ["plot_spectra", "figure_spectra", "read_spectra"]
