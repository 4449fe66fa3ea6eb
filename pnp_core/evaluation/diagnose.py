"""Diagnostics of the PNP loss: is its quadratic model valid, and does it rank what it should?

Three measurements (``pnp diagnose``; docs/training.md, "Why PNP lost to P-loss"):

:func:`model_validity`
    For test sounds and parameter errors Δ, the true distance d = ‖Φ(g(h⁻¹(ν+Δ))) − Φ(g(h⁻¹(ν)))‖₂
    against the first-order model d_lin = √(ΔᵀMΔ) (M of the Jacobian stage, in ν = h(θ)).
    ½ d_lin² is what the paper's PNP trains on (the quadratic model of ½ d²). Errors come
    from random directions at fixed sizes ‖Δ‖₂/√P (``radii``) and, given a trained run's
    predictions, from the errors the network really makes.
:func:`epoch_dynamics`
    For a run trained with ``training.keep_epochs``, per epoch: λ, the damping event, and on
    the val and test folds the PNP objectives (undamped, squared and norm forms), the P-loss
    and the true JTFS distance; plus the share of the val PNP loss held by the 5 % stiffest
    samples. Spearman correlations over epochs (:func:`rank_agreement`) say whether the
    validation signal that selects checkpoints and drives λ ranks epochs like the JTFS
    distance does.
:func:`compare_settings`
    M of the same θ under two feature settings (e.g. the laptop JTFS against the paper's):
    Spearman correlation of tr M across sounds (the cross-sample weighting of PNP), the
    angle between the top eigenvectors (the within-sample geometry) and the ratio of
    normalised diagonals.

All tables are DataFrames (written through :mod:`pnp_core.io`); shapes are stated per function.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pnp_core.errors import DataError

#: the errors of random directions, as ‖Δ‖₂/√P in ν (the box is [−1, 1]); the networks'
#: RMS errors lie around 0.1–0.4 (param_err 0.01–0.2)
DEFAULT_RADII = (0.003, 0.01, 0.03, 0.1, 0.2, 0.3, 0.4)
DTYPE = torch.float64


def _features(spec, nu: torch.Tensor, scaler) -> torch.Tensor:
    """Φ(g(h⁻¹(ν))) (B, K) float64 for ν (B, P), θ clamped into the box."""
    from pnp_core.training.losses import clamp_theta

    theta = clamp_theta(scaler.inverse(nu.to(DTYPE)), spec.space)
    return spec.feature(spec.synth(theta))


def model_validity(spec, scaler, nu: np.ndarray, M: np.ndarray, ids: np.ndarray, *,
                   radii=DEFAULT_RADII, directions: int = 4, seed: int = 0,
                   deltas: np.ndarray | None = None, batch_size: int = 16,
                   progress: bool = True) -> pd.DataFrame:
    """True distance vs its first-order model at errors Δ around each sound.

    Parameters
    ----------
    spec : RunSpec of the synth (its feature is Φ)
    scaler : Scaler h (the space of M)
    nu : (n, P) float64, h(θ) of the sounds
    M : (n, P, P) float64, their metrics in that space
    ids : (n,) int64
    radii : error sizes ‖Δ‖₂/√P of the random directions
    directions : random unit directions per sound and radius (seeded)
    deltas : (n, P) float64, optional: the network's own errors ν̂ − ν (one row per sound,
        ``source = 'network'``)

    Returns
    -------
    DataFrame, one row per (sound, error): ``id``, ``source`` ('random' | 'network'),
    ``nominal`` (the radius asked for; NaN for the network's errors),
    ``radius`` (‖Δ‖₂/√P after clamping θ into the synthesizer's box), ``d_true``, ``d_lin`` = √(ΔᵀMΔ),
    ``ratio`` = d_lin / d_true, ``trace_M``.
    """
    from pnp_core.progress import Progress

    nu = np.asarray(nu, np.float64)
    n, P = nu.shape
    gen = np.random.default_rng(seed)
    rows = []   # (index of the sound, source, Δ)
    for i in range(n):
        for r in radii:
            u = gen.standard_normal((directions, P))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            for d in u * r * np.sqrt(P):
                rows.append((i, "random", d, r))
        if deltas is not None:
            rows.append((i, "network", np.asarray(deltas[i], np.float64), np.nan))
    from pnp_core.training.losses import clamp_theta

    idx = np.array([r[0] for r in rows])
    # ν + Δ moved back into the synthesizer's box (the sound that can be synthesised); Δ is
    # then the error that remains, so d_lin and d_true see the same Δ
    want = torch.as_tensor(nu[idx] + np.stack([r[2] for r in rows]))
    target = scaler.forward(clamp_theta(scaler.inverse(want), spec.space)).numpy()
    delta = target - nu[idx]
    base = torch.empty(0)
    d_true = np.empty(len(rows))
    with torch.no_grad(), Progress(len(rows), "model validity", unit="error",
                                   disable=not progress) as bar:
        base = torch.cat([_features(spec, torch.as_tensor(nu[s:s + batch_size]), scaler)
                          for s in range(0, n, batch_size)])
        for s in range(0, len(rows), batch_size):
            sl = slice(s, s + batch_size)
            phi = _features(spec, torch.as_tensor(target[sl]), scaler)
            d_true[sl] = torch.linalg.vector_norm(phi - base[idx[sl]], dim=-1).cpu().numpy()
            bar.update(len(phi))
    d_lin = np.sqrt(np.maximum(np.einsum("bi,bij,bj->b", delta, M[idx], delta), 0.0))
    return pd.DataFrame({
        "id": np.asarray(ids)[idx], "source": [r[1] for r in rows],
        "nominal": [r[3] for r in rows], "radius": np.linalg.norm(delta, axis=1) / np.sqrt(P), "d_true": d_true, "d_lin": d_lin,
        "ratio": d_lin / np.maximum(d_true, 1e-300), "trace_M": np.trace(M[idx], axis1=1, axis2=2)})


def validity_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per source and nominal radius (all network errors in one row): median and
    quartiles of d_lin/d_true, and the Spearman correlation across sounds of d_lin with d_true
    (does the model rank which sounds are far off like the truth?)."""
    from scipy.stats import spearmanr

    df = table.copy()
    out = []
    for (source, b), g in df.groupby(["source", df["nominal"].fillna(-1)]):
        rho = spearmanr(g["d_lin"], g["d_true"]).statistic if len(g) > 2 else np.nan
        out.append({"source": source, "radius": g["radius"].median(), "n": len(g),
                    "ratio_q25": g["ratio"].quantile(0.25), "ratio_median": g["ratio"].median(),
                    "ratio_q75": g["ratio"].quantile(0.75), "spearman_lin_true": rho,
                    "d_true_median": g["d_true"].median()})
    return pd.DataFrame(out).sort_values(["source", "radius"]).reset_index(drop=True)


def top_share(values: np.ndarray, frac: float = 0.05) -> float:
    """Share of Σ values held by the largest ``frac`` of them (≥ 1 value)."""
    v = np.sort(np.asarray(values, np.float64))[::-1]
    k = max(1, int(round(frac * len(v))))
    total = v.sum()
    return float(v[:k].sum() / total) if total > 0 else float("nan")


def fold_errors(model, spec, theta: torch.Tensor, run_scaler, ref_scaler,
                batch_size: int = 32) -> np.ndarray:
    """ν̂ − ν (n, P) float64 in ``ref_scaler``'s space for θ (n, P), θ̂ clamped into the box."""
    from pnp_core.training.losses import clamp_theta

    out = []
    with torch.no_grad():
        for s in range(0, len(theta), batch_size):
            th = theta[s:s + batch_size].to(DTYPE)
            nu_hat = model(spec.synth(th))
            th_hat = clamp_theta(run_scaler.inverse(nu_hat.to(DTYPE)), spec.space)
            out.append((ref_scaler.forward(th_hat) - ref_scaler.forward(th)).cpu().numpy())
    return np.concatenate(out)


def fold_objectives(spec, ref_scaler, theta: np.ndarray, delta: np.ndarray, M: np.ndarray,
                    mu: float, batch_size: int = 32) -> pd.DataFrame:
    """Per sample: PNP squared ½μΔᵀMΔ, PNP norm √(μΔᵀMΔ), P-loss, true JTFS distance."""
    nu = ref_scaler.forward(torch.as_tensor(theta, dtype=DTYPE)).numpy()
    q = np.maximum(np.einsum("bi,bij,bj->b", delta, M, delta), 0.0)
    d = np.empty(len(nu))
    with torch.no_grad():
        for s in range(0, len(nu), batch_size):
            sl = slice(s, s + batch_size)
            a = _features(spec, torch.as_tensor(nu[sl] + delta[sl]), ref_scaler)
            b = _features(spec, torch.as_tensor(nu[sl]), ref_scaler)
            d[sl] = torch.linalg.vector_norm(a - b, dim=-1).numpy()
    return pd.DataFrame({"pnp_squared": 0.5 * mu * q, "pnp_norm": np.sqrt(mu * q),
                         "ploss": (delta ** 2).mean(axis=1), "jtfs_dist": d})


def epoch_dynamics(spec, params: pd.DataFrame, run_dir, metrics: dict, *,
                   mu: float | None = None, progress: bool = True) -> pd.DataFrame:
    """Per epoch of a run kept with ``training.keep_epochs``: its history and, on the val and
    test folds, the mean of each :func:`fold_objectives` column (``{fold}_{column}``) and the
    5 %-top share of the undamped PNP (``{fold}_pnp_top5``).

    ``metrics``: fold → merged metric file of the entry's feature (val and test).
    ``mu``: the PNP scale of the objectives (None = the run's own μ; give every run the same
    μ to compare runs trained with other losses, whose μ is 1).
    """
    from pnp_core.formats import HISTORY_FORMAT
    from pnp_core.io import read_table
    from pnp_core.params import Scaler
    from pnp_core.progress import Progress
    from pnp_core.training.train import Encoder, load_model, load_metrics

    run_dir = Path(run_dir)
    model, record = load_model(run_dir / "model.pt")
    model = model.to(DTYPE)
    run_scaler = Scaler.from_state(spec.space, record["scaler"])
    ref_scaler = spec.fit_scaler(params)
    mu = float(record.get("mu", 1.0)) if mu is None else float(mu)
    history = read_table(run_dir / "history.parquet", HISTORY_FORMAT).data
    epochs = sorted((run_dir / "checkpoint").glob("epoch-*.pt"))
    if not epochs:
        raise DataError(f"{run_dir}/checkpoint has no epoch-NNNN.pt: train the run with "
                        "training.keep_epochs: true")
    folds = {}
    for fold, path in metrics.items():
        df = params[params["fold"] == fold].sort_values("id")
        theta = df[spec.space.names].to_numpy(np.float64)
        M = load_metrics(path, df["id"].to_numpy(np.int64), theta, ref_scaler)
        folds[fold] = (torch.as_tensor(theta), M)
    rows = []
    with Progress(len(epochs), f"epochs of {run_dir.name}", unit="epoch",
                  disable=not progress) as bar:
        for path in epochs:
            state = torch.load(path, map_location="cpu", weights_only=False)
            net = Encoder(**record["model_config"]).to(DTYPE)
            net.load_state_dict(state["model"])
            net.eval()
            row = {"epoch": int(state["epoch"])}
            for fold, (theta, M) in folds.items():
                delta = fold_errors(net, spec, theta, run_scaler, ref_scaler)
                obj = fold_objectives(spec, ref_scaler, theta.numpy(), delta, M, mu)
                for col in obj:
                    row[f"{fold}_{col}"] = float(obj[col].mean())
                row[f"{fold}_pnp_top5"] = top_share(obj["pnp_squared"].to_numpy())
            rows.append(row)
            bar.update(1)
    keep = [c for c in ("epoch", "val_loss", "lam", "damping_event", "lr") if c in history]
    return pd.DataFrame(rows).merge(history[keep], on="epoch", how="left")


def rank_agreement(dynamics: pd.DataFrame, fold: str = "val") -> dict:
    """Spearman ρ over epochs of each objective of ``fold`` with its true JTFS distance."""
    from scipy.stats import spearmanr

    out = {}
    for col in ("pnp_squared", "pnp_norm", "ploss"):
        a, b = dynamics[f"{fold}_{col}"], dynamics[f"{fold}_jtfs_dist"]
        out[f"rho_{col}"] = float(spearmanr(a, b).statistic) if len(a) > 2 else float("nan")
    return out


def compare_settings(spec_a, spec_b, theta: np.ndarray, scaler_a, scaler_b, *,
                     progress: bool = True) -> pd.DataFrame:
    """M of the same θ (n, P) under two specs (same synth space, other settings).

    Returns one row per sound: ``trace_a``, ``trace_b``, ``top_angle_deg`` (angle between the
    top eigenvectors, 0–90°), ``diag_corr`` (Pearson correlation of log diag(M)/tr(M)),
    ``eig_a_<i>``, ``eig_b_<i>`` (ascending).
    """
    from pnp_core.metric.jacobian import JacobianComputer
    from pnp_core.progress import Progress

    rows = []
    comp_a = JacobianComputer(spec_a.synth, spec_a.feature, scaler_a, method="jvp")
    comp_b = JacobianComputer(spec_b.synth, spec_b.feature, scaler_b, method="jvp")
    with Progress(len(theta), "metric at two settings", unit="sound",
                  disable=not progress) as bar:
        for th in np.asarray(theta, np.float64):
            t = torch.as_tensor(th[None])
            _, Ma, ea = comp_a.metric(t)
            _, Mb, eb = comp_b.metric(t)
            Ma, Mb = Ma[0].numpy(), Mb[0].numpy()
            va, vb = np.linalg.eigh(Ma)[1][:, -1], np.linalg.eigh(Mb)[1][:, -1]
            da = np.log(np.diag(Ma) / np.trace(Ma))
            db = np.log(np.diag(Mb) / np.trace(Mb))
            row = {"trace_a": float(np.trace(Ma)), "trace_b": float(np.trace(Mb)),
                   "top_angle_deg": float(np.degrees(np.arccos(min(1.0, abs(va @ vb))))),
                   "diag_corr": float(np.corrcoef(da, db)[0, 1])}
            for i, (x, y) in enumerate(zip(ea[0].numpy(), eb[0].numpy())):
                row[f"eig_a_{i}"], row[f"eig_b_{i}"] = float(x), float(y)
            rows.append(row)
            bar.update(1)
    return pd.DataFrame(rows)


DIAGNOSTICS_FORMAT = "pnp-diagnostics/1"


def plot_diagnostics(validity: pd.DataFrame, dynamics: dict, settings: pd.DataFrame | None,
                     title: str, pdf, png) -> None:
    """One figure: (a) d_lin/d_true against the error size (median and quartiles; the
    network's errors as points), (b) per run, val JTFS distance and val objective per epoch
    (each divided by its first epoch) with λ, (c) tr M at two settings (if given)."""
    from pnp_core.evaluation.figures.style import pyplot, save_figure

    plt = pyplot()
    n = 3 if settings is not None and len(settings) else 2
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.6))
    ax = axes[0]
    rnd = validity[validity["source"] == "random"]
    g = rnd.groupby("nominal")["ratio"]
    x = np.asarray(g.median().index)
    ax.fill_between(x, g.quantile(0.25), g.quantile(0.75), alpha=0.3, label="quartiles")
    ax.plot(x, g.median(), "o-", label="median, random Δ")
    net = validity[validity["source"] == "network"]
    if len(net):
        ax.scatter(net["radius"], net["ratio"], s=6, alpha=0.4, color="k", label="network Δ")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="error ‖Δ‖₂/√P (ν)",
           ylabel="√(ΔᵀMΔ) / ‖ΔΦ‖₂", title="(a) first-order model vs truth")
    ax.legend()
    ax = axes[1]
    for i, (name, dyn) in enumerate(dynamics.items()):
        colour = f"C{i}"
        ax.plot(dyn["epoch"], dyn["val_jtfs_dist"] / dyn["val_jtfs_dist"].iloc[0], "-",
                color=colour, label=f"{name}: val JTFS dist.")
        if "val_loss" in dyn:
            ax.plot(dyn["epoch"], dyn["val_loss"] / dyn["val_loss"].iloc[0], ":", color=colour,
                    label=f"{name}: val objective")
        restored = dyn[dyn.get("damping_event", pd.Series(dtype=str)) == "restored"]
        ax.scatter(restored["epoch"], restored["val_jtfs_dist"] / dyn["val_jtfs_dist"].iloc[0],
                   marker="x", color=colour)
    ax.set(yscale="log", xlabel="epoch", ylabel="relative to epoch 1",
           title="(b) learning dynamics (× = restore)")
    ax.legend(fontsize=6)
    if n == 3:
        ax = axes[2]
        ax.scatter(settings["trace_a"], settings["trace_b"], s=12)
        ax.set(xscale="log", yscale="log", xlabel="tr M, this config's feature",
               ylabel="tr M, other setting", title="(c) metric at two JTFS settings")
    fig.suptitle(title)
    save_figure(fig, pdf, png)


def _common_mu(runs: dict, M: np.ndarray) -> float:
    """One PNP scale μ for every run's objectives: the first PNP run's (trained) μ, else
    :func:`pnp_core.training.losses.auto_mu` of ``M`` (n, P, P)."""
    from pnp_core.training.losses import auto_mu
    from pnp_core.training.train import load_model

    for folder in runs.values():
        _, record = load_model(Path(folder) / "model.pt")
        if record.get("run", {}).get("loss") == "pnp":
            return float(record["mu"])
    return auto_mu(np.linalg.eigvalsh(M))


def write_diagnostics(spec, params: pd.DataFrame, metrics: dict, out_dir, *,
                      runs: dict | None = None, other_spec=None, n_sounds: int = 32,
                      n_compare: int = 6, directions: int = 2, seed: int = 0,
                      progress: bool = True) -> dict:
    """Run the diagnostics of this module and write them under ``out_dir``.

    Parameters
    ----------
    spec : RunSpec of the synth
    params : the params table
    metrics : fold → merged metric file (``test`` needed; ``val`` for the dynamics)
    runs : name → run folder (``model.pt``, ``history.parquet``, ``checkpoint/epoch-*.pt``
        when trained with ``training.keep_epochs``); the first run's test errors are the
        "network" errors of the validity table
    other_spec : RunSpec of the same synth under other feature settings (e.g. the paper's),
        for :func:`compare_settings` on the first ``n_compare`` test sounds
    n_sounds : test sounds of the validity table (the first by id)

    Writes
    ------
    ``validity.parquet`` (:func:`model_validity`), ``validity_summary.csv``,
    ``dynamics.parquet`` (all runs, column ``run``) and ``rank_agreement.csv`` when runs are
    given, ``settings.parquet`` when ``other_spec`` is given, ``diagnostics.pdf|png``.

    Returns
    -------
    dict of the summary tables (``validity``, ``rank``, ``settings``)
    """
    from pnp_core.io import write_csv, write_table
    from pnp_core.params import Scaler
    from pnp_core.training.train import load_metrics, load_model

    out_dir = Path(out_dir)
    ref = spec.fit_scaler(params)
    test = params[params["fold"] == "test"].sort_values("id").iloc[:n_sounds]
    ids = test["id"].to_numpy(np.int64)
    theta = test[spec.space.names].to_numpy(np.float64)
    full = params[params["fold"] == "test"].sort_values("id")
    M_all = load_metrics(metrics["test"], full["id"].to_numpy(np.int64),
                         full[spec.space.names].to_numpy(np.float64), ref)
    M = M_all[:len(ids)]
    nu = ref.forward(torch.as_tensor(theta)).numpy()
    runs = dict(runs or {})
    deltas = None
    if runs:
        model, record = load_model(Path(next(iter(runs.values()))) / "model.pt")
        deltas = fold_errors(model.to(DTYPE), spec, torch.as_tensor(theta),
                             Scaler.from_state(spec.space, record["scaler"]), ref)
    meta = {"synth": spec.name, "provenance": spec.provenance(),
            "runs": {k: str(v) for k, v in runs.items()},
            "metrics": {k: str(v) for k, v in metrics.items()}}
    validity = model_validity(spec, ref, nu, M, ids, directions=directions, seed=seed,
                              deltas=deltas, progress=progress)
    write_table(validity, out_dir / "validity.parquet", DIAGNOSTICS_FORMAT, meta)
    summary = validity_summary(validity)
    write_csv(summary, out_dir / "validity_summary.csv")
    dynamics, rank = {}, None
    if runs:
        mu = _common_mu(runs, M_all)
        rows = []
        for name, folder in runs.items():
            dyn = epoch_dynamics(spec, params, folder, {f: metrics[f] for f in ("val", "test")
                                                        if f in metrics},
                                 mu=mu, progress=progress)
            dynamics[name] = dyn
            rows.append({"run": name, **rank_agreement(dyn, "val"),
                         "val_pnp_top5_last": float(dyn["val_pnp_top5"].iloc[-1]),
                         "n_restored": int((dyn.get("damping_event") == "restored").sum())})
        write_table(pd.concat([d.assign(run=k) for k, d in dynamics.items()]),
                    out_dir / "dynamics.parquet", DIAGNOSTICS_FORMAT, meta)
        rank = pd.DataFrame(rows)
        write_csv(rank, out_dir / "rank_agreement.csv")
    settings = None
    if other_spec is not None:
        settings = compare_settings(spec, other_spec, theta[:n_compare], ref,
                                    other_spec.fit_scaler(params), progress=progress)
        settings.insert(0, "id", ids[:n_compare])
        write_table(settings, out_dir / "settings.parquet", DIAGNOSTICS_FORMAT, meta)
    plot_diagnostics(validity, dynamics, settings, f"PNP diagnostics: {spec.name}",
                     out_dir / "diagnostics.pdf", out_dir / "diagnostics.png")
    return {"validity": summary, "rank": rank, "settings": settings}


__all__ = ["write_diagnostics", "plot_diagnostics", "DIAGNOSTICS_FORMAT", "model_validity", "validity_summary", "epoch_dynamics", "rank_agreement",
           "compare_settings", "fold_objectives", "fold_errors", "top_share", "DEFAULT_RADII"]
