"""Target and matched sounds of a trained run, to listen to and to look at.

For a few test sounds (:func:`pick_sounds`: evenly spaced over the test ids, the same
for every run of a synth), the target x = g(θ) and the match x̂ = g(θ̂) are synthesised
from a run's predictions (``results/eval/{synth}/{run}/predictions.parquet``, format
:data:`PREDICTIONS_FORMAT`: ``id``, ``theta_<p>`` true and ``theta_hat_<p>`` predicted,
physical units). :func:`write_listening` writes them as WAV files, 16-bit PCM at the
synthesizer's rate and length, each (target, match) pair scaled by one common factor
so that its louder sound peaks at 0.9 (their loudness ratio is kept), plus
``sounds.csv`` (k, id, θ and θ̂ with units).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pnp_core.errors import DataError
from pnp_core.formats import PREDICTIONS_FORMAT

#: peak of the louder sound of a (target, match) pair in the WAV files
PEAK = 0.9


def pick_sounds(ids, n: int) -> np.ndarray:
    """``n`` ids evenly spaced over the sorted ``ids`` (all of them if there are fewer)."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    if ids.size == 0:
        raise DataError("no test sounds to pick from (empty predictions)")
    if n >= ids.size:
        return ids
    return ids[np.round(np.linspace(0, ids.size - 1, n)).astype(int)]


def read_predictions(path, space) -> pd.DataFrame:
    """A predictions table, indexed by id, its θ and θ̂ columns checked against ``space``."""
    from pnp_core.errors import TableFileError
    from pnp_core.io import read_table

    df = read_table(path, PREDICTIONS_FORMAT, what="the predictions (pnp evaluate)").data
    need = ["id"] + [f"theta_{p}" for p in space.names] + [f"theta_hat_{p}" for p in space.names]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise TableFileError(f"{path}: lacks column(s) {missing}: not the predictions of this "
                             f"synthesizer ({', '.join(space.names)})")
    return df.set_index("id").sort_index()


def pair_audio(synth, predictions: pd.DataFrame, ids) -> tuple[np.ndarray, np.ndarray]:
    """Targets g(θ) and matches g(θ̂) of ``ids`` → two float64 arrays (len(ids), N)."""
    names = synth.space.names
    missing = np.setdiff1d(ids, predictions.index.to_numpy())
    if missing.size:
        raise DataError(f"test sound id(s) {missing.tolist()} have no prediction")
    rows = predictions.loc[list(ids)]
    out = []
    for prefix in ("theta_", "theta_hat_"):
        theta = torch.tensor(rows[[prefix + p for p in names]].to_numpy(np.float64))
        with torch.no_grad():
            out.append(synth(theta).numpy())
    return out[0], out[1]


def pair_scale(target: np.ndarray, match: np.ndarray) -> float:
    """The factor bringing the louder of the two sounds to :data:`PEAK` (1 for silence)."""
    peak = max(float(np.max(np.abs(target))), float(np.max(np.abs(match))))
    return PEAK / peak if peak > 0 and np.isfinite(peak) else 1.0


def write_wav(path, x: np.ndarray, sr: int) -> None:
    """``x`` (N,) as a mono 16-bit PCM WAV file, atomically."""
    import soundfile as sf

    from pnp_core.io import atomic_path

    with atomic_path(path) as tmp:
        sf.write(str(tmp), np.clip(x, -1.0, 1.0).astype(np.float32), int(sr), format="WAV",
                 subtype="PCM_16")


def sound_name(k: int, role: str) -> str:
    """File name of the k-th (1-based) picked sound: ``sound2_target.wav``, ``sound2_match.wav``."""
    return f"sound{k}_{role}.wav"


def write_listening(spec, predictions_path, n_sounds: int, out_dir) -> pd.DataFrame:
    """Write ``sound{k}_target.wav``, ``sound{k}_match.wav`` (k = 1 … n) and ``sounds.csv``.

    Returns the ``sounds.csv`` table: k, id, then θ_p and θ̂_p with units in the header.
    """
    from pnp_core.io import write_csv

    synth = spec.synth
    pred = read_predictions(predictions_path, synth.space)
    ids = pick_sounds(pred.index.to_numpy(), n_sounds)
    if ids.size < n_sounds:
        raise DataError(f"{predictions_path}: {ids.size} test sound(s), fewer than the "
                        f"{n_sounds} asked for (config key figures.sounds)")
    target, match = pair_audio(synth, pred, ids)
    out_dir = Path(out_dir)
    rows = []
    for k, (i, x, y) in enumerate(zip(ids, target, match), start=1):
        if not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError(f"test sound id {int(i)}: the synthesised target or match is not "
                            "finite")
        scale = pair_scale(x, y)
        write_wav(out_dir / sound_name(k, "target"), x * scale, synth.sr)
        write_wav(out_dir / sound_name(k, "match"), y * scale, synth.sr)
        row = {"k": k, "id": int(i), "gain": scale}
        for p in synth.space:
            row[f"{p.name} [{p.unit}]"] = float(pred.at[i, f"theta_{p.name}"])
            row[f"{p.name}_hat [{p.unit}]"] = float(pred.at[i, f"theta_hat_{p.name}"])
        rows.append(row)
    table = pd.DataFrame(rows)
    write_csv(table, out_dir / "sounds.csv")
    return table


__all__ = ["pick_sounds", "read_predictions", "pair_audio", "pair_scale", "write_wav",
           "sound_name", "write_listening", "PREDICTIONS_FORMAT", "PEAK"]
