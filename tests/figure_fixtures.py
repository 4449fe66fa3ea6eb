"""Fixture files in the layout the figure rules read (results/…), written through the
project's table IO with the formats of the real writers:

* ``results/jacobian/{synth}/train.summary.parquet`` (+ quantiles): real summaries
  (pnp_core.metric.summary.write_summaries) of random SPD metrics whose eigenvalues
  span ~4 decades;
* ``results/runs/{synth}/{run}/history.parquet`` (pnp-history/1);
* ``results/eval/{synth}/{run}/metrics.parquet`` (pnp-eval/1) and ``predictions.parquet``
  (pnp-predictions/1): θ drawn uniformly in the natural domain of the synth's space, θ̂ a
  perturbation of it kept in the box;
* ``results/table1.csv`` and ``results/tables/ablation_damping.csv`` (io.write_csv).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from pnp_core.formats import EVAL_FORMAT, HISTORY_FORMAT, PREDICTIONS_FORMAT
from pnp_core.io import write_csv, write_table
from pnp_core.metric.file import MetricTable
from pnp_core.metric.summary import write_summaries
from pnp_core.synth import SYNTHS

TABLE1 = ["p_seed0", "ddsp-mss_seed0", "ddsp-jtfs_seed0", "pnp-jtfs_seed0"]
DAMPING = ["pnp-jtfs_damp-constant_seed0", "pnp-jtfs_damp-scheduled_seed0"]
METHODS = {"p_seed0": "P-loss", "ddsp-mss_seed0": "DDSP-MSS", "ddsp-jtfs_seed0": "DDSP-JTFS",
           "pnp-jtfs_seed0": "PNP-JTFS"}
#: how close each fixture method gets (smaller = better), so the figures show differences
SKILL = {"p": 0.3, "ddsp-mss": 0.5, "ddsp-jtfs": 0.35, "pnp-jtfs": 0.2}


def _spd(rng, n, P):
    Q, _ = np.linalg.qr(rng.normal(size=(n, P, P)))
    eig = np.sort(10.0 ** rng.uniform(-2, 2, size=(n, P)), axis=1) * \
        10.0 ** np.linspace(-1.0, 1.0, P)
    eig = np.sort(eig, axis=1)
    M = np.einsum("nij,nj,nkj->nik", Q, eig, Q)
    return 0.5 * (M + M.transpose(0, 2, 1)), eig


def write_summary(root: Path, synth: str, n: int = 40, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    P = len(SYNTHS.get(synth).space)
    M, eig = _spd(rng, n, P)
    table = MetricTable(np.arange(n, dtype=np.int64), M, eig,
                        {"fold": "train", "n_params": P, "provenance": {"synth": synth}})
    out = root / f"results/jacobian/{synth}/train.summary.parquet"
    write_summaries(table, out, out.with_name("train.quantiles.parquet"))
    return out


def write_history(root: Path, synth: str, run: str, epochs: int = 5) -> Path:
    rng = np.random.default_rng(zlib.crc32(f"{synth}/{run}".encode()))
    pnp = run.startswith("pnp")
    damp = "constant" if "damp-constant" in run else "scheduled" if "scheduled" in run else \
        "adaptive"
    lam, rows, best = 0.0 if damp == "constant" else 5.0, [], np.inf
    val0 = {"p": 0.3, "ddsp-mss": 8.0, "ddsp-jtfs": 3.0}.get(run.split("_")[0], 0.5)
    for e in range(1, epochs + 1):
        val = val0 * (0.8 ** e) * (1 + 0.2 * rng.random())
        vp = 0.3 * (0.85 ** e) * (1 + 0.2 * rng.random())
        event = "held" if damp == "constant" else "decayed" if damp == "scheduled" else \
            ("improved" if val < best else "restored")
        rows.append({"epoch": e, "train_loss": 1.2 * val, "val_loss": val, "val_ploss": vp,
                     "lam": lam if pnp else 0.0, "lr": 1e-3, "seconds": 0.5 + rng.random(),
                     "damping_event": event if pnp else "held"})
        best = min(best, val)
        if pnp and damp != "constant":
            lam *= 0.05 if event in ("improved", "decayed") else 1.0
    out = root / f"results/runs/{synth}/{run}/history.parquet"
    write_table(pd.DataFrame(rows), out, HISTORY_FORMAT, {"run": {"loss": run.split("_")[0]}})
    return out


def write_eval(root: Path, synth: str, run: str, n_test: int = 12, seed: int = 0,
               m_diag: bool = True) -> tuple[Path, Path]:
    """metrics.parquet and predictions.parquet of one run (same θ for every run of a synth)."""
    space = SYNTHS.get(synth).space
    names = space.names
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    u = np.random.default_rng(seed).uniform(lo, hi, size=(n_test, len(names)))
    rng = np.random.default_rng(zlib.crc32(run.encode()))
    skill = SKILL.get(run.split("_")[0], 0.3)
    u_hat = np.clip(u + skill * (hi - lo) * rng.normal(size=u.shape) * 0.3, lo, hi)
    ids = np.arange(100, 100 + n_test, dtype=np.int64)
    pred = {"id": ids}
    for j, p in enumerate(names):
        pred[f"theta_{p}"] = space.from_natural(u)[:, j]
        pred[f"theta_hat_{p}"] = space.from_natural(u_hat)[:, j]
    nu = 2 * (u - lo) / (hi - lo) - 1
    nu_hat = 2 * (u_hat - lo) / (hi - lo) - 1
    metrics = {"id": ids}
    sq = (nu_hat - nu) ** 2
    diag = 10.0 ** np.random.default_rng(seed + 1).uniform(-2, 2, size=sq.shape)
    metrics.update(jtfs_dist=np.sqrt(sq.sum(1)) * 3, micro_weight=np.sqrt(diag.max(1)),
                   mss_dist=np.sqrt(sq.sum(1)) * 2, param_err=sq.mean(1), test_loss=sq.mean(1))
    for j, p in enumerate(names):
        metrics[f"sqerr_{p}"] = sq[:, j]
        metrics[f"m_diag_{p}"] = diag[:, j] if m_diag else np.full(n_test, np.nan)
    folder = root / f"results/eval/{synth}/{run}"
    write_table(pd.DataFrame(metrics), folder / "metrics.parquet", EVAL_FORMAT, {})
    write_table(pd.DataFrame(pred), folder / "predictions.parquet", PREDICTIONS_FORMAT, {})
    return folder / "metrics.parquet", folder / "predictions.parquet"


def write_table1(root: Path, synths=("amfm",), n_runs: int = 3) -> Path:
    rows = []
    rng = np.random.default_rng(0)
    for synth in synths:
        for run, method in METHODS.items():
            s = SKILL[run.split("_")[0]]
            row = {"synth": synth, "method": method, "run_group": run.rsplit("_", 1)[0],
                   "n_runs": n_runs, "n_test": 12}
            for metric, scale in (("jtfs", 3.0), ("micro", 1.0), ("mss", 2.0),
                                  ("param_err", 0.2), ("sec_per_epoch", 1.0)):
                mean = scale * s * (1 + 0.1 * rng.random())
                if metric == "sec_per_epoch":
                    mean = {"DDSP-JTFS": 40.0, "DDSP-MSS": 4.0}.get(method, 0.4)
                row[f"{metric}_mean"] = mean
                row[f"{metric}_std"] = 0.1 * mean if n_runs > 1 else np.nan
            row["sec_per_epoch_std"] = 0.05 * row["sec_per_epoch_mean"]
            rows.append(row)
    out = root / "results/table1.csv"
    write_csv(pd.DataFrame(rows), out)
    abl = pd.DataFrame(rows[:2]).assign(p_value=[np.nan, 0.03])
    write_csv(abl, root / "results/tables/ablation_damping.csv")
    return out


def write_all(root: Path, synths=("amfm",), n_test: int = 12) -> None:
    """Every input of the figure, listening and report-page rules."""
    for synth in synths:
        write_summary(root, synth)
        for run in TABLE1 + DAMPING:
            write_history(root, synth, run)
        for run in TABLE1:
            write_eval(root, synth, run, n_test=n_test)
    write_table1(root, synths)
