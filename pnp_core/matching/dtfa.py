"""The DTFA experiment: sound matching by gradient descent, per loss, on random pairs.

For one synthesizer, ``n_pairs`` (target, init) pairs are drawn (seeded) from the
dataset's params table: the target is a random row, the initial point another
random row, so inits are spread over the whole box as in the DTFA tutorial. Every
loss of :data:`pnp_core.matching.matchers.LOSSES` then matches the **same** pairs with Adam
(:func:`pnp_core.matching.matchers.match_pairs`), and ``jtfs_lm`` the JTFS loss by
Levenberg–Marquardt (:func:`pnp_core.matching.matchers.match_lm`, ``lm_steps`` trials).

Outputs
-------
traces (:data:`TRACES_FORMAT`), one row per (loss, pair, iteration):
    ``synth`` str, ``loss`` str, ``pair`` int, ``target_id``, ``init_id`` int64,
    ``iteration`` int (0 = the init, T = final), ``value`` float64 (the loss),
    ``error`` float64 (normalised parameter error), ``seconds`` float64 (amortised per pair)
table (:func:`summarise`), one row per (synth, loss):
    ``synth, loss, pairs, tolerance, success_rate, median_iterations, median_seconds,
    median_final_error, iterations`` (medians over the successful pairs for
    iterations/seconds; final error over all pairs)

Also the two diagnostics of the figures: :func:`landscape` (a loss over a 2-D
slice of ν around a target) and :func:`time_shift_curve` (loss against a delay of
the target).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from pnp_core.matching.matchers import LOSSES, Objective, box_scaler, default_mss, match, match_pairs

TRACES_FORMAT = "pnp-dtfa-traces/1"


def draw_pairs(params: pd.DataFrame, n_pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(target ids, init ids), each (n_pairs,), drawn without replacement within each
    column and never equal in a pair."""
    ids = params["id"].to_numpy()
    if len(ids) < 2:
        raise ValueError("the params table needs at least 2 rows to draw pairs")
    rng = np.random.default_rng(seed)
    targets = rng.choice(ids, size=n_pairs, replace=n_pairs > len(ids))
    inits = rng.choice(ids, size=n_pairs, replace=n_pairs > len(ids))
    same = inits == targets
    while same.any():
        inits[same] = rng.choice(ids, size=int(same.sum()))
        same = inits == targets
    return targets, inits


def run_experiment(spec, params: pd.DataFrame, *, losses=LOSSES, n_pairs: int, steps: int,
                   lr: float, tolerance: float, seed: int, batch_size: int = 16,
                   pnp_damping: float = 1e-3, lr_end: float = 0.1, lm_steps: int = 30,
                   progress: bool = True) -> pd.DataFrame:
    """Match the same seeded pairs under every loss; the traces table (see module doc)."""
    targets, inits = draw_pairs(params, n_pairs, seed)
    by_id = params.set_index("id")[spec.space.names]
    th_t = by_id.loc[targets].to_numpy(np.float64)
    th_i = by_id.loc[inits].to_numpy(np.float64)
    torch.manual_seed(seed)
    frames = []
    for loss in losses:
        res = match_pairs(spec, th_t, th_i, loss, steps=lm_steps if loss == "jtfs_lm" else steps,
                          lr=lr, tolerance=tolerance,
                          batch_size=batch_size, pnp_damping=pnp_damping, lr_end=lr_end,
                          progress=progress)
        T1, B = res.error.shape
        frames.append(pd.DataFrame({
            "synth": spec.name, "loss": loss,
            "pair": np.tile(np.arange(B), T1),
            "target_id": np.tile(targets, T1).astype(np.int64),
            "init_id": np.tile(inits, T1).astype(np.int64),
            "iteration": np.repeat(np.arange(T1), B),
            "value": res.loss.reshape(-1), "error": res.error.reshape(-1),
            "seconds": np.repeat(res.seconds, B),
        }))
    return pd.concat(frames, ignore_index=True)


def summarise(traces: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """Per (synth, loss): success rate, median iterations/seconds to success, median final error."""
    rows = []
    for (synth, loss), g in traces.groupby(["synth", "loss"], sort=False):
        last = g["iteration"].max()
        final = g[g["iteration"] == last].set_index("pair")["error"]
        below = g[g["error"] < tolerance]
        first = below.groupby("pair")["iteration"].min()
        ok = final.index[final < tolerance]
        first = first.reindex(ok)
        secs = g.set_index(["pair", "iteration"])["seconds"]
        sec_ok = [secs.loc[(p, int(i))] for p, i in first.items()]
        rows.append({
            "synth": synth, "loss": loss, "pairs": int(len(final)), "tolerance": tolerance,
            "iterations": int(last),
            "success_rate": float((final < tolerance).mean()),
            "median_iterations": float(np.median(first)) if len(first) else np.nan,
            "median_seconds": float(np.median(sec_ok)) if sec_ok else np.nan,
            "median_final_error": float(final.median()),
        })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# diagnostics for the figures


def landscape(spec, theta_target, loss: str, axes: tuple[int, int], n: int = 21,
              span: float = 1.0, batch_size: int = 32, dtype=torch.float32):
    """A loss over a 2-D slice of ν around a target.

    Parameters
    ----------
    theta_target : array (P,), physical units
    loss : ``jtfs`` (the spec's feature) or ``mss``
    axes : the two parameter columns spanning the slice (the others stay at the target)
    n : grid points per axis (odd, so the target is the centre)
    span : half-width of the slice in ν units (clipped to the box [−1, 1])

    Returns
    -------
    grid_a, grid_b : ndarray (n,) float64, ν values along each axis (centred on ν*)
    values : ndarray (n, n) float64, the loss, ``values[i, j]`` at (grid_a[i], grid_b[j])
    """
    if n % 2 != 1:
        raise ValueError("landscape: n must be odd so that the target is the grid's centre")
    scaler = box_scaler(spec.space)
    nu_star = scaler.forward(torch.as_tensor(np.asarray(theta_target, np.float64))[None])[0]
    offs = np.linspace(-span, span, n)
    a, b = axes
    grid_a, grid_b = nu_star[a].item() + offs, nu_star[b].item() + offs
    A, Bg = np.meshgrid(grid_a, grid_b, indexing="ij")
    nus = nu_star.repeat(n * n, 1).numpy()
    nus[:, a], nus[:, b] = A.ravel(), Bg.ravel()
    nus = torch.as_tensor(np.clip(nus, -1.0, 1.0), dtype=dtype)
    with torch.no_grad():
        target = spec.synth(scaler.inverse(nu_star[None].to(dtype)))
        out = []
        for s in range(0, len(nus), batch_size):
            chunk = nus[s:s + batch_size]
            obj = _objective(spec, loss, scaler, target.expand(len(chunk), -1))
            out.append(obj(chunk))
    return grid_a, grid_b, torch.cat(out).double().numpy().reshape(n, n)


def _objective(spec, loss, scaler, target, **kw):
    feature = spec.feature if loss in ("jtfs", "pnp") else None
    mss = default_mss(spec.synth.n_samples) if loss == "mss" else None
    return Objective(loss, spec.synth, scaler, target, feature=feature, mss=mss, **kw)


def slice_paths(spec, theta_target, theta_inits, loss: str, axes: tuple[int, int], *,
                steps: int, lr: float, dtype=torch.float32) -> np.ndarray:
    """Gradient-descent paths restricted to the slice's two columns: (T + 1, B, 2) ν."""
    scaler = box_scaler(spec.space)
    nu_star = scaler.forward(torch.as_tensor(np.asarray(theta_target, np.float64))[None]).to(dtype)
    nu0 = scaler.forward(torch.as_tensor(np.asarray(theta_inits, np.float64))).to(dtype)
    B = len(nu0)
    with torch.no_grad():
        target = spec.synth(scaler.inverse(nu_star)).expand(B, -1)
    free = np.zeros(nu0.shape[1], dtype=bool)
    free[list(axes)] = True
    obj = _objective(spec, loss, scaler, target)
    res = match(obj, nu0, steps=steps, lr=lr, nu_star=nu_star.expand(B, -1), free=free)
    return res.path[:, :, list(axes)]


def time_shift_curve(spec, theta_target, shifts_s, loss: str, dtype=torch.float32) -> np.ndarray:
    """Distance between a target and itself delayed by each shift (seconds, ≥ 0).

    The delayed copy is x(t − τ) with zeros shifted in (what falls off the end is lost).
    The distance is ‖Φ(x) − Φ(y)‖ for ``jtfs`` (the square root of its loss) and the
    MSS distance for ``mss``; values are divided by the distance between the target
    and silence, so 1 means "as far as no sound at all".

    Returns
    -------
    ndarray (S,) float64
    """
    scaler = box_scaler(spec.space)
    theta = torch.as_tensor(np.asarray(theta_target, np.float64))[None].to(dtype)
    sr = spec.synth.sr
    with torch.no_grad():
        x = spec.synth(theta)                                   # (1, N)
        shifted = []
        for tau in shifts_s:
            k = int(round(float(tau) * sr))
            if k < 0:
                raise ValueError("time_shift_curve: shifts must be ≥ 0")
            y = torch.zeros_like(x)
            if k < x.shape[-1]:
                y[:, k:] = x[:, :x.shape[-1] - k]
            shifted.append(y)
        ys = torch.cat(shifted + [torch.zeros_like(x)])
        obj = _objective(spec, loss, scaler, x.expand(len(ys), -1))
        vals = obj.audio_loss(ys).double().numpy()
    if loss == "jtfs":  # the jtfs loss is a squared norm, MSS a norm: compare distances
        vals = np.sqrt(vals)
    return vals[:-1] / vals[-1]


# ----------------------------------------------------------------------------------------------
# helpers for the commands


def spec_with_override(entry: dict, override: dict | None):
    """The :class:`~pnp_core.spec.RunSpec` of ``entry`` with ``override`` merged in
    (e.g. shorter sounds or a smaller JTFS for the laptop experiment)."""
    from pnp_core.config import merge
    from pnp_core.spec import RunSpec

    return RunSpec.from_entry(merge(entry, override or {}))


def central_target(spec, params: pd.DataFrame) -> np.ndarray:
    """θ (P,) of the params row nearest the centre of the box (ν = 0): the figures' target."""
    theta = np.array(params[spec.space.names].to_numpy(np.float64))
    nu = box_scaler(spec.space).forward(torch.as_tensor(theta)).numpy()
    return theta[int(np.argmin((nu ** 2).sum(-1)))]


__all__ = ["TRACES_FORMAT", "draw_pairs", "run_experiment", "summarise", "landscape",
           "slice_paths", "time_shift_curve", "spec_with_override", "central_target"]
