"""Statistics of the tables: a bootstrap over seeds *and* test sounds, and Holm's correction.

Every evaluated quantity of a run group is a matrix ``values`` (S seeds × N test sounds,
the same sound ids in every row). Its table value is the grand mean (or, with ``weights``,
the weighted mean Σwd/Σw, as the micro JTFS distance). Two sources of variation enter a
reader's question "would another training and other test sounds give the same number?":
the seed (training randomness) and the sound (the test sample). The two-way bootstrap
resamples both at once: each draw takes S seeds with replacement and N sound ids with
replacement and keeps the S × N sub-matrix they index; a paired comparison of two methods
uses the same seed and sound draws for both (the same test sounds were matched by both,
and seed k of one method is paired with seed k of the other only because the seeds are
exchangeable draws: the pairing is of sounds, the seeds are resampled jointly).

``scipy.stats.bootstrap`` resamples one axis of independent observations; it has no
two-way (crossed) resampling, so the few lines are written here.

Two-sided bootstrap p-value of a difference d: p = min(1, 2 · min(#{d* ≤ 0}, #{d* ≥ 0}) + 1)
/ (B + 1)) — the percentile test of H0: the mean difference is 0.
"""

from __future__ import annotations

import math

import numpy as np

#: bootstrap draws and confidence level of every interval in the tables
N_BOOT = 2000
LEVEL = 0.95


def _draws(n_seeds: int, n_sounds: int, n_boot: int, seed: int):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, n_seeds, size=(n_boot, n_seeds)),
            rng.integers(0, n_sounds, size=(n_boot, n_sounds)))


def _stat(values: np.ndarray, weights: np.ndarray | None, rows, cols,
          chunk: int = 100) -> np.ndarray:
    """The (weighted) grand mean of ``values[rows][:, cols]`` for each draw (B,), ``chunk``
    draws at a time (a draw is an S × N copy: bounded memory at paper scale)."""
    return np.concatenate([_stat_chunk(values, weights, rows[i:i + chunk], cols[i:i + chunk])
                           for i in range(0, len(rows), chunk)])


def _stat_chunk(values, weights, rows, cols) -> np.ndarray:
    sub = values[rows[:, :, None], cols[:, None, :]]               # (B, S, N)
    if weights is None:
        return np.nanmean(sub, axis=(1, 2))
    w = weights[rows[:, :, None], cols[:, None, :]]
    ok = np.isfinite(sub) & np.isfinite(w)
    num = np.where(ok, w * sub, 0.0).sum(axis=(1, 2))
    den = np.where(ok, w, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def bootstrap_ci(values, weights=None, *, n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the (weighted) grand mean of ``values`` (S, N) under the
    two-way bootstrap; (NaN, NaN) when there is nothing to resample."""
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.size == 0:
        return math.nan, math.nan
    w = None if weights is None else np.asarray(weights, np.float64)
    rows, cols = _draws(*values.shape, n_boot, seed)
    stats = _stat(values, w, rows, cols)
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def paired_bootstrap(a, b, *, n_boot: int = N_BOOT, level: float = LEVEL,
                     seed: int = 0) -> dict:
    """Difference of grand means ``a − b`` of two methods' values (S, N each: seed k and
    sound j of both rows are the same seed index and test sound), under the two-way
    bootstrap with shared draws.

    Returns ``diff``, ``ci_lo``, ``ci_hi`` and the two-sided ``p_value`` (module doc).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired values need the same (seeds, sounds) shape: {a.shape} vs "
                         f"{b.shape}")
    d = a - b
    rows, cols = _draws(*d.shape, n_boot, seed)
    stats = _stat(d, None, rows, cols)
    stats = stats[np.isfinite(stats)]
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    tail = min(int((stats <= 0).sum()), int((stats >= 0).sum()))
    p = min(1.0, (2 * tail + 1) / (stats.size + 1))
    return {"diff": float(np.nanmean(d)), "ci_lo": float(lo), "ci_hi": float(hi),
            "p_value": float(p)}


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order; NaN entries stay NaN and do not count
    in the family)."""
    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    running = 0.0
    for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


__all__ = ["bootstrap_ci", "paired_bootstrap", "holm", "N_BOOT", "LEVEL"]
