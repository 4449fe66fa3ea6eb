"""``pnp match TARGET.wav``: parameters of a synthesizer for a user's own sound.

Steps (:func:`match_file`):

1. **Load** with soundfile (WAV, FLAC, OGG, …). Conversions, each reported in
   :attr:`Loaded.notes`: several channels are **averaged** to mono; another sample
   rate is resampled to the synthesizer's (``scipy.signal.resample_poly``); a longer
   sound is **trimmed** to the synthesizer's length N, a shorter one **zero-padded**
   at the end. Refused with :class:`~pnp_core.errors.DataError` naming the file: a
   file soundfile cannot decode (not audio, corrupt), an empty file, a silent one,
   NaN/Inf samples.
2. **Level.** A file's gain is arbitrary (a recording, a peak-normalised export), and the
   JTFS distance log1p(S/ε) is not gain-invariant: a target at 0.72× the synthesizer's
   level pulled the AM/FM match from f_m = 9.32 Hz to 8.42 Hz. By default
   (``level="match"``) every candidate g(θ) is brought to the target's RMS level before
   Φ (:class:`LevelMatched`, which keeps the analytic tangents of the Jacobian stage), so
   only the sound's shape is matched, and the resynthesis comes out at the target's level.
   ``level="synth"`` compares at the synthesizer's own level (for sounds straight from it).
3. **Coarse search**: the JTFS distance from the target to every sound of a
   ``grid``³ (or ``grid``^P) grid uniform in ν (the dataset's natural domain); the
   ``starts`` nearest grid points are the initial points.
   With ``model`` (a trained run's ``model.pt``), the encoder's prediction θ̂ = f_W(x)
   is one more start (:func:`encoder_start`): amortised inference refined per sound.
   ``starts = 0`` with a model skips the grid search and refines the prediction only.
4. **Refinement** of the JTFS loss from those starts (batched): Levenberg–Marquardt
   (``optimizer="lm"``, default: forward-mode Jacobians of the JTFS, ~30 trials;
   :func:`pnp_core.matching.matchers.match_lm`) or Adam (``"adam"``, ~100 reverse-mode steps);
   the θ̂ of lowest final loss wins.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pnp_core.errors import DataError
from pnp_core.matching.matchers import Objective, box_scaler, match, match_lm
from pnp_core.synth.base import Synth

#: how ``pnp match`` treats the target's gain (see the module docstring)
LEVELS = ("match", "synth")


@dataclass
class Loaded:
    """Audio ready for matching: ``x`` (N,) float64 at ``sr``, and what was converted."""

    x: np.ndarray
    sr: int
    notes: list[str] = field(default_factory=list)


def load_target(path, sr: int, n_samples: int) -> Loaded:
    """Read ``path`` as mono audio at ``sr`` Hz, trimmed/padded to ``n_samples``."""
    import soundfile as sf
    from scipy.signal import resample_poly

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such audio file")
    try:
        data, file_sr = sf.read(str(path), dtype="float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError, ValueError) as err:
        raise DataError(f"{path}: not a readable audio file ({err}); give a WAV/FLAC/OGG "
                        "file") from None
    notes = []
    if data.shape[0] == 0:
        raise DataError(f"{path}: the audio file is empty (0 samples)")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: the audio holds NaN or infinite samples")
    if data.shape[1] > 1:
        notes.append(f"{data.shape[1]} channels averaged to mono")
    x = data.mean(axis=1)
    if file_sr != sr:
        from math import gcd

        g = gcd(int(file_sr), int(sr))
        x = resample_poly(x, sr // g, int(file_sr) // g)
        notes.append(f"resampled from {file_sr} Hz to {sr} Hz")
    if len(x) > n_samples:
        notes.append(f"trimmed from {len(x)} to {n_samples} samples ({n_samples / sr:.3g} s)")
        x = x[:n_samples]
    elif len(x) < n_samples:
        notes.append(f"zero-padded from {len(x)} to {n_samples} samples ({n_samples / sr:.3g} s)")
        x = np.pad(x, (0, n_samples - len(x)))
    if not np.any(x != 0):
        raise DataError(f"{path}: the audio is silent (all samples are 0)")
    return Loaded(x, sr, notes)


def rms(x):
    """Root mean square over the last axis (keeps it, size 1); numpy or torch."""
    return (x * x).mean(-1, keepdims=True) ** 0.5 if isinstance(x, np.ndarray) \
        else (x * x).mean(-1, keepdim=True).sqrt()


class LevelMatched(Synth):
    """g̃(θ) = g(θ) · ρ*/ρ(g(θ)): a synthesizer brought to the RMS level ρ* of a target.

    Same parameters, rate and length as ``synth``. Its :meth:`tangents` come from the
    inner synthesizer's (analytic where it has them): with s = ρ*/ρ and ρ² = ‖x‖²/N,
    ∂x̃/∂θ_p = s·(ẋ_p − x·⟨x, ẋ_p⟩/‖x‖²). A silent candidate stays silent (ρ clamped).
    """

    def __init__(self, synth: Synth, level: float) -> None:
        if not level > 0:
            raise ValueError(f"LevelMatched: the target level must be positive, not {level}")
        self.inner, self.level = synth, float(level)
        self.name, self.space = synth.name, synth.space
        self.sr, self.n_samples = synth.sr, synth.n_samples

    def _gain(self, x: torch.Tensor) -> torch.Tensor:
        return self.level / rms(x).clamp_min(1e-30)

    def synthesize(self, theta: torch.Tensor) -> torch.Tensor:
        x = self.inner(theta)
        return x * self._gain(x)

    def tangents(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, dx = self.inner.tangents(theta)                      # (B, N), (P, B, N)
        s = self._gain(x)
        proj = (x * dx).sum(-1, keepdim=True) / (x * x).sum(-1, keepdim=True).clamp_min(1e-300)
        return x * s, s * (dx - x * proj)

    def settings(self) -> dict:
        return self.inner.settings()


def grid_search(spec, target: torch.Tensor, grid: int, starts: int,
                batch_size: int = 32, synth: Synth | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``starts`` grid points nearest to the target under Φ (of ``synth``'s sounds,
    default the entry's synthesizer).

    Returns ν (starts, P) and their losses (starts,), best first.
    """
    synth = spec.synth if synth is None else synth
    scaler = box_scaler(spec.space)
    P = len(spec.space)
    axis = np.linspace(-1.0, 1.0, grid + 2)[1:-1]           # cell centres, off the box edges
    nus = torch.as_tensor(np.array(list(itertools.product(axis, repeat=P))), dtype=target.dtype)
    losses = []
    with torch.no_grad():
        for s in range(0, len(nus), batch_size):
            chunk = nus[s:s + batch_size]
            obj = Objective("jtfs", synth, scaler, target.expand(len(chunk), -1),
                            feature=spec.feature)
            losses.append(obj(chunk))
    losses = torch.cat(losses).double().numpy()
    best = np.argsort(losses)[:starts]
    return nus[best].double().numpy(), losses[best]


def encoder_start(spec, model_path, x: np.ndarray) -> np.ndarray:
    """θ̂ (P,) float64 of a trained encoder (``model.pt`` of a run) for the sound ``x`` (N,).

    The model must have been trained on this synthesizer with these settings (its
    provenance says so; otherwise :class:`~pnp_core.errors.DataError` names the
    difference). θ̂ is clamped to the parameter box, as evaluation does.
    """
    from pnp_core.training.losses import clamp_theta
    from pnp_core.params import Scaler
    from pnp_core.training.train import load_model

    model, record = load_model(model_path)
    prov = record.get("provenance", {})
    ours = {"synth": spec.entry["type"], "synth_settings": spec.synth.settings()}
    bad = [k for k in ours if prov.get(k) != ours[k]]
    if bad:
        raise DataError(f"{model_path}: the model was trained on another synthesizer setting "
                        f"({', '.join(f'{k}: {prov.get(k)!r} vs {ours[k]!r}' for k in bad)}); "
                        "give a model of this synthesizer entry")
    run_scaler = Scaler.from_state(spec.space, record["scaler"])
    with torch.no_grad():
        out = model.to(torch.float64)(torch.as_tensor(x, dtype=torch.float64)[None])
        theta = clamp_theta(run_scaler.inverse(out), spec.space)
    return theta[0].numpy()


#: refinement steps by default, per optimizer
DEFAULT_STEPS = {"lm": 30, "adam": 100}


def match_file(spec, path, *, grid: int = 5, starts: int = 4, steps: int | None = None,
               lr: float = 0.05, lr_end: float = 0.1, progress: bool = True,
               model=None, optimizer: str = "lm", level: str = "match") -> dict:
    """Match a sound file; see the module docstring.

    ``level``: ``"match"`` (default) compares every candidate at the target's RMS level,
    ``"synth"`` at the synthesizer's own level.

    ``model``: optional path of a trained run's ``model.pt``; its prediction is refined
    beside the ``starts`` best grid points (``starts = 0``: the prediction alone).

    Returns
    -------
    dict with ``theta`` (P,) float64 physical θ̂, ``loss`` (final JTFS loss), ``target``
    and ``match`` (N,) float64 audio, ``notes`` (conversions), ``grid_loss`` (best grid
    loss; None without a grid search), ``encoder_theta`` and ``encoder_loss`` (the model's
    prediction and its JTFS loss before refinement; None without a model),
    ``start`` (``"encoder"`` or ``"grid"``: where the winner started), ``sr``, ``level``
    and ``gain`` (ρ*/ρ(g(θ̂)), the factor that brought the match to the target's level;
    1 with ``level="synth"``).
    """
    if starts < 1 and model is None:
        raise ValueError("starts must be ≥ 1 without a model")
    if optimizer not in DEFAULT_STEPS:
        raise ValueError(f"optimizer must be one of {sorted(DEFAULT_STEPS)}, not {optimizer!r}")
    if level not in LEVELS:
        raise ValueError(f"level must be one of {list(LEVELS)}, not {level!r}")
    steps = DEFAULT_STEPS[optimizer] if steps is None else int(steps)
    loaded = load_target(path, spec.synth.sr, spec.synth.n_samples)
    synth = LevelMatched(spec.synth, float(rms(loaded.x)[0])) if level == "match" else spec.synth
    target = torch.as_tensor(loaded.x, dtype=torch.float32)[None]
    scaler = box_scaler(spec.space)
    nu0, grid_losses = (grid_search(spec, target, grid, starts, synth=synth) if starts > 0
                        else (np.empty((0, len(spec.space))), None))
    origins = ["grid"] * len(nu0)
    enc_theta = enc_loss = None
    if model is not None:
        enc_theta = encoder_start(spec, model, loaded.x)
        nu_enc = scaler.forward(torch.as_tensor(enc_theta)[None]).clamp(-1.0, 1.0).numpy()
        nu0 = np.concatenate([nu_enc, nu0])
        origins = ["encoder"] + origins
    nu0 = torch.as_tensor(nu0, dtype=torch.float32)
    obj = Objective("jtfs", synth, scaler, target.expand(len(nu0), -1), feature=spec.feature)
    if model is not None:
        with torch.no_grad():
            enc_loss = float(obj(nu0)[0])
    desc = f"matching {Path(path).name}"
    res = (match_lm(obj, nu0, steps=steps, progress=progress, desc=desc) if optimizer == "lm"
           else match(obj, nu0, steps=steps, lr=lr, lr_end=lr_end, progress=progress, desc=desc))
    k = int(np.argmin(res.loss[-1]))
    theta = res.theta[k]
    with torch.no_grad():
        x_hat = synth(torch.as_tensor(theta, dtype=torch.float64)[None])[0].numpy()
        own = spec.synth(torch.as_tensor(theta, dtype=torch.float64)[None])[0].numpy()
    gain = float(rms(x_hat)[0] / max(float(rms(own)[0]), 1e-300))
    return {"level": level, "gain": gain, "theta": theta, "loss": float(res.loss[-1, k]),
            "grid_loss": None if grid_losses is None else float(grid_losses[0]),
            "encoder_theta": enc_theta, "encoder_loss": enc_loss, "start": origins[k],
            "target": loaded.x, "match": x_hat, "notes": loaded.notes, "sr": synth.sr,
            "iterations": int(steps), "optimizer": optimizer}


def write_match(spec, result: dict, out_dir, stem: str, source: str) -> list[Path]:
    """Write θ̂ (CSV and JSON, with units), the resynthesis (WAV, float32) and the
    target-vs-match spectrogram figure (PDF + PNG) under ``out_dir``; returns the paths."""
    import json

    import pandas as pd
    import soundfile as sf

    from pnp_core.matching.dtfa_figures import plot_match_spectrograms
    from pnp_core.io import atomic_path, write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = [{"parameter": p.name, "value": float(v), "unit": p.unit, "low": p.low, "high": p.high}
            for p, v in zip(spec.space, result["theta"])]
    paths = [out / f"{stem}.theta.csv", out / f"{stem}.theta.json", out / f"{stem}.match.wav",
             out / f"{stem}.spectrograms.pdf", out / f"{stem}.spectrograms.png"]
    write_csv(pd.DataFrame(rows), paths[0])
    doc = {"source": source, "synth": spec.name, "synth_settings": spec.synth.settings(),
           "parameters": rows, "jtfs_loss": result["loss"], "grid_loss": result.get("grid_loss"),
           "encoder_loss": result.get("encoder_loss"), "start": result.get("start"),
           "optimizer": result.get("optimizer"), "steps": result.get("iterations"),
           "level": result.get("level"), "gain": result.get("gain"),
           "conversions": result["notes"], "provenance": spec.provenance()}
    with atomic_path(paths[1]) as tmp:
        tmp.write_text(json.dumps(doc, indent=2))
    with atomic_path(paths[2]) as tmp:
        sf.write(str(tmp), result["match"].astype(np.float32), result["sr"], format="WAV",
                 subtype="FLOAT")
    title = ", ".join(f"{r['parameter']} = {r['value']:.4g} {r['unit']}" for r in rows)
    plot_match_spectrograms(result["target"], result["match"], result["sr"], paths[3],
                            paths[4], title=f"{Path(source).name} → {spec.name}: {title}")
    return paths


__all__ = ["LEVELS", "LevelMatched", "Loaded", "load_target", "grid_search", "encoder_start",
           "match_file", "rms", "write_match"]
