"""Target and matched CQTs for a few test sounds: one row per sound, the target first,
then one column per method.

Input: ``results/eval/{synth}/{run}/predictions.parquet`` of the methods (θ and θ̂,
physical units) and the synth entry (synthesizer and ``cqt`` settings). The sounds are
:func:`pnp_core.evaluation.listen.pick_sounds` of the test ids, as in the listening WAVs. Each
image is the encoder's own input, |log1p(CQT(x)/ε)| (:class:`pnp_core.training.encoders.CQTFrontEnd`),
on a log-frequency axis in Hz against time in s, one colour scale per row.
"""

from __future__ import annotations

import numpy as np
import torch

from pnp_core.evaluation.figures.style import (METHOD_ORDER, log_axis, parse_run, pyplot, run_of_path,
                                    save_figure)
from pnp_core.evaluation.listen import pair_audio, pick_sounds, read_predictions


class CQTImages:
    """The encoder's front end of a synth entry: |log1p(CQT(x)/ε)|, with its axes."""

    def __init__(self, spec) -> None:
        from pnp_core.training.encoders import CQTFrontEnd, cqt_settings

        cqt = spec.entry.get("cqt", {})
        self.settings = s = cqt_settings(cqt, spec.synth.sr)
        self.front = CQTFrontEnd(log_eps=float(cqt.get("log_eps", 1e-3)), **s)
        #: bin centre frequencies [Hz]
        self.freqs = s["fmin"] * 2.0 ** (np.arange(s["n_bins"]) / s["bins_per_octave"])

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """``audio`` (B, N) → images (B, bins, frames)."""
        with torch.no_grad():
            return self.front(torch.as_tensor(audio, dtype=torch.float32))[:, 0].numpy()

    def times(self, frames: int) -> np.ndarray:
        """Frame times [s]."""
        return np.arange(frames) * self.settings["hop_length"] / self.settings["sr"]


def plot_cqts(rows: list[dict], freqs, times, pdf, png, title: str = "") -> None:
    """``rows``: per sound ``{"id": int, "panels": [(name, image (bins, frames)), …]}``."""
    plt = pyplot()
    ncols = len(rows[0]["panels"])
    fig, axs = plt.subplots(len(rows), ncols, figsize=(2.9 * ncols, 2.4 * len(rows)),
                            squeeze=False, sharex=True, sharey=True, layout="constrained")
    for r, (row, ax_row) in enumerate(zip(rows, axs)):
        vmax = max(float(np.max(img)) for _, img in row["panels"]) or 1.0
        for c, (ax, (name, img)) in enumerate(zip(ax_row, row["panels"])):
            mesh = ax.pcolormesh(times, freqs, img, shading="nearest", cmap="magma", vmin=0,
                                 vmax=vmax, rasterized=True)
            log_axis(ax, plain=True)
            ax.grid(False)
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"test id {row['id']}\nfrequency [Hz]")
            if r == len(rows) - 1:
                ax.set_xlabel("time [s]")
        fig.colorbar(mesh, ax=ax_row, label="log1p(|CQT|/ε)", shrink=0.9)
    if title:
        fig.suptitle(title)
    save_figure(fig, pdf, png)


def figure_cqt(spec, predictions_paths, n_sounds: int, pdf, png) -> list[int]:
    """Synthesise target and matches of the picked test sounds, draw :func:`plot_cqts`.

    Returns the ids drawn."""
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    predictions_paths = sorted(predictions_paths, key=lambda p: (
        rank.get(parse_run(run_of_path(p)[1])[0], len(rank)), str(p)))
    preds = []
    for p in predictions_paths:
        method, _, seed = parse_run(run_of_path(p)[1])
        if method in {m for m, _ in preds}:
            method = f"{method} (seed {seed})"
        preds.append((method, read_predictions(p, spec.space)))
    common = preds[0][1].index
    for _, df in preds[1:]:
        common = common.intersection(df.index)
    ids = pick_sounds(common.to_numpy(), n_sounds)
    cqt = CQTImages(spec)
    target, _ = pair_audio(spec.synth, preds[0][1], ids)
    images = {"target": cqt(target)}
    for method, df in preds:
        images[method] = cqt(pair_audio(spec.synth, df, ids)[1])
    rows = [{"id": int(i), "panels": [(name, im[k]) for name, im in images.items()]}
            for k, i in enumerate(ids)]
    synth = run_of_path(predictions_paths[0])[0]
    plot_cqts(rows, cqt.freqs, cqt.times(images["target"].shape[-1]), pdf, png,
              title=f"{synth}: target and matched sounds (encoder's CQT input)")
    return [int(i) for i in ids]


__all__ = ["figure_cqt", "plot_cqts", "CQTImages"]
