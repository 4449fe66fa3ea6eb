"""Evaluation of one trained run on the whole test fold, one row per test sample.

Every test sample is evaluated (no sample dropped, whatever the batch size; the
reference used ``drop_last=True`` and averaged per batch). Each per-sample value
depends on that sample only: audio and features are computed in float64, the encoder
runs in eval mode (BatchNorm with its running statistics) and in float64 (the trained
float32 weights, exactly; float32 convolutions pick kernels by batch shape and changed θ̂
at ~1e-7), and the MSS distance is taken one sample at a time, so the batch size changes
nothing beyond float64 rounding.

For a test sample with true θ and prediction ν̂ = f_W(g(θ)):

* θ̂ = clamp(h_run⁻¹(ν̂)) in physical units, clamped to the synthesizer's ranges (the
  sound that is synthesised; a raw/log head can leave the box);
* ``jtfs_dist`` = ‖Φ(g(θ̂)) − Φ(g(θ))‖₂ with the synth's configured feature Φ (the
  paper's log-JTFS), Φ(g(θ)) read from the test-fold feature file;
* ``micro_weight`` = √(σ₁σ₂), the two largest eigenvalues of the sample's M (test-fold
  metric file, the entry's rescaling); the "micro" distance is the mean of
  ``jtfs_dist`` weighted by it (:func:`pnp_core.evaluation.tables.micro_mean`); NaN without a test metric;
* ``mss_dist`` = auraloss ``MultiResolutionSTFTLoss()`` with its defaults on (g(θ̂), g(θ)),
  taken per sample (its spectral-convergence term is a ratio of norms over whatever it
  is given, so a batched call would mix samples);
* ``logmel_dist``, ``mfcc_dtw_dist``, ``f0_err_cents``, ``rms_dist`` = the distances the
  sound-matching field also compares with, on (g(θ̂), g(θ)), per sample
  (:mod:`pnp_core.evaluation.audio_metrics`: log-mel multi-scale spectrogram, MFCC with
  DTW, f0 error in cents, NaN where the sounds are not both pitched, as the FTM drum's
  are not; RMS-envelope distance in dB);
* ``param_err`` = mean over parameters of (h(θ̂) − h(θ))², ``sqerr_<name>`` per parameter,
  in the *reference* normalised space h: the entry's rescaling fitted on the train fold
  (the space of the metric files). For every Table-1 run this is the run's own space;
  for the rescaling ablation it keeps the errors of all runs in one space;
* ``centre_err`` = the ``param_err`` the chance predictor would have, the one that always
  answers the centre of the box (:func:`centre_errors`): Table 1's chance line;
* ``m_diag_<name>`` = diagonal of the test-fold M in that same space (NaN without it);
* ``test_loss`` = the run's own objective per sample, as :mod:`pnp_core.training.train` computes
  it, in the run's rescaling: P: (1/P)‖ν̂ − ν‖²; PNP: undamped ½ μ Δᵀ M Δ with the run's μ
  and the test-fold M re-expressed in the run's rescaling
  (:func:`pnp_core.metric.file.metric_in_rescaling`); DDSP: the DDSP distance d(g(θ̂), g(θ)).

Output formats (tables of :mod:`pnp_core.io`)
--------------------------------------------
``pnp-eval/1`` (``metrics.parquet``), one row per test sample, sorted by id: ``id`` int64;
``jtfs_dist``, ``micro_weight``, ``mss_dist``, ``logmel_dist``, ``mfcc_dtw_dist``,
``f0_err_cents``, ``rms_dist``, ``param_err``, ``centre_err``, ``sqerr_<p>`` (per parameter,
in order), ``test_loss``, ``m_diag_<p>``: float64. Metadata: ``provenance``, ``run``
(the run record of model.pt), ``synth``, ``n_test``, ``loss``, ``param_space`` (scaler
state of the reference space), ``param_names``, ``n_clamped``, ``mu``, ``sources``.

``pnp-predictions/1`` (``predictions.parquet``): ``id`` int64; ``theta_<p>`` (true) and
``theta_hat_<p>`` (predicted, clamped) float64, physical units. Same metadata.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pnp_core.errors import DataError
from pnp_core.formats import EVAL_FORMAT, PREDICTIONS_FORMAT
from pnp_core.io import write_table

#: precision of synthesis and features during evaluation
COMPUTE_DTYPE = torch.float64


# ----------------------------------------------------------------------------------------------
# per-sample metrics (small, testable pieces)


def micro_weight(eigenvalues: np.ndarray) -> np.ndarray:
    """√(σ₁σ₂) per sample from eigenvalues (n, P) in ascending order (P = 1: σ₁)."""
    eig = np.asarray(eigenvalues, dtype=np.float64)
    if eig.shape[-1] == 1:
        return eig[:, -1].copy()
    return np.sqrt(np.clip(eig[:, -1], 0, None) * np.clip(eig[:, -2], 0, None))


_MRSTFT = None


def mss_distance(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """auraloss ``MultiResolutionSTFTLoss()`` (defaults) of each pair, one call per sample.

    x_hat, x : (B, N) sounds (prediction, target); computed in float32 (auraloss's
    window is float32). Returns (B,) float64.
    """
    global _MRSTFT
    if _MRSTFT is None:
        import auraloss

        _MRSTFT = auraloss.freq.MultiResolutionSTFTLoss()
    out = torch.empty(x.shape[0], dtype=torch.float64)
    with torch.no_grad():
        for b in range(x.shape[0]):
            out[b] = float(_MRSTFT(x_hat[b].reshape(1, 1, -1).float().cpu(),
                                   x[b].reshape(1, 1, -1).float().cpu()))
    return out


def squared_errors(nu_hat: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """(ν̂ − ν)² per sample and parameter, (n, P) float64."""
    return (np.asarray(nu_hat, np.float64) - np.asarray(nu, np.float64)) ** 2


def centre_errors(scaler, space, theta: torch.Tensor) -> np.ndarray:
    """Per sample (n,), the parameter error of the chance predictor that always answers the
    centre of the parameter box: mean over parameters of (c − h(θ))², c = (h(low) + h(high)) / 2
    in the space h of ``scaler`` (the midpoint of the rescaled box, hence the log-midpoint of
    a log-scaled parameter)."""
    box = torch.as_tensor(np.stack([space.low, space.high]), dtype=theta.dtype)
    centre = scaler.forward(box).mean(dim=0).cpu().numpy()
    return squared_errors(centre[None, :], scaler.forward(theta.cpu()).numpy()).mean(axis=1)


def pnp_test_loss(nu_hat: np.ndarray, nu: np.ndarray, M: np.ndarray, mu: float) -> np.ndarray:
    """Undamped PNP per sample: ½ μ Δᵀ M Δ with Δ = ν̂ − ν (the run's rescaling)."""
    d = np.asarray(nu_hat, np.float64) - np.asarray(nu, np.float64)
    return 0.5 * float(mu) * np.einsum("bi,bij,bj->b", d, np.asarray(M, np.float64), d)


# ----------------------------------------------------------------------------------------------
# inputs


@dataclass
class EvalInputs:
    """What one evaluation reads (paths are recorded in the output metadata).

    Attributes
    ----------
    model : path of the run's model.pt
    features : path of results/features/{synth}/test.pt
    metric : path of the test-fold metric of the synth's feature (micro weight, M_ii), or None
    loss_metric : test-fold metric of the run's PNP objective (default: ``metric``), or None
    """

    model: Path
    features: Path
    metric: Path | None = None
    loss_metric: Path | None = None


def _check_provenance(path, theirs: dict, ours: dict, what: str) -> None:
    """The keys ``theirs`` records (but the package version) must equal ours."""
    bad = [k for k in theirs if k != "pnp_core" and k in ours and theirs[k] != ours[k]]
    bad += [k for k in theirs if k != "pnp_core" and k not in ours]
    if bad:
        raise DataError(f"{path}: {what} was made with other settings ({', '.join(bad)} "
                        f"differ from the config: {[(k, theirs.get(k), ours.get(k)) for k in bad][:2]});"
                        " rerun the rule that writes it")


def load_targets(path, ids: np.ndarray, spec) -> torch.Tensor:
    """Φ(g(θ)) of the test fold from a feature file, checked against ``ids`` and ``spec``."""
    from pnp_core.features.fold import load_fold_features
    from pnp_core.spec import SECTIONS, RunSpec

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: the test-fold feature file is missing; run "
                        f"`snakemake {path}` first")
    data = load_fold_features(path)
    if data.get("fold") != "test":
        raise DataError(f"{path}: holds the {data.get('fold')!r} fold, not the test fold")
    want = RunSpec(spec.entry, given=set(SECTIONS["features"]) & set(spec.given)).provenance()
    _check_provenance(path, data.get("provenance", {}), want, "this feature file")
    got = data["ids"].numpy()
    if not np.array_equal(got, ids):
        raise DataError(f"{path}: its ids do not match the test fold of the params table "
                        f"({len(got)} vs {len(ids)} samples); rerun the features rule")
    return data["features"]


def load_test_metric(path, ids: np.ndarray, spec):
    """The test-fold MetricTable, checked against ``ids`` (None when ``path`` is None)."""
    from pnp_core.metric.file import read_metric

    if path is None:
        return None
    table = read_metric(path)
    if not np.array_equal(table.ids, ids):
        raise DataError(f"{path}: its ids do not match the test fold of the params table; "
                        "rerun the Jacobian stage for this dataset")
    if table.meta.get("param_names") not in (None, spec.space.names):
        raise DataError(f"{path}: parameters {table.meta.get('param_names')} are not "
                        f"{spec.space.names}")
    return table


# ----------------------------------------------------------------------------------------------
# the evaluation


def _batches(n: int, batch_size: int):
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def evaluate_run(spec, params: pd.DataFrame, inputs: EvalInputs, training: dict | None = None,
                 *, batch_size: int = 16, device="cpu", progress: bool = True,
                 desc: str = "evaluate") -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Evaluate one trained run on every test sample.

    Parameters
    ----------
    spec : pnp_core.spec.RunSpec of the synth (the ``train`` slice of its entry)
    params : the whole params table
    inputs : :class:`EvalInputs`
    training : the validated ``training`` config section (DDSP-MSS: its ``mss`` settings)
    batch_size : samples per forward pass (changes no value)
    device : torch device

    Returns
    -------
    (metrics, predictions, meta): the two tables (formats in the module docstring) and
    their shared metadata.
    """
    from pnp_core.evaluation.audio_metrics import COLUMNS as AUDIO_COLUMNS, audio_metrics
    from pnp_core.training.losses import clamp_theta
    from pnp_core.metric.file import metric_in_rescaling
    from pnp_core.params import Scaler
    from pnp_core.progress import Progress
    from pnp_core.training.train import load_model

    t0 = time.perf_counter()
    device = torch.device(device)
    space, synth, names = spec.space, spec.synth, spec.space.names
    P = len(space)
    test = params[params["fold"] == "test"].sort_values("id")
    if len(test) == 0:
        raise DataError("the test fold of the params table is empty: nothing to evaluate")
    ids = test["id"].to_numpy(np.int64)
    theta_np = np.array(test[names], dtype=np.float64)
    space.validate(theta_np, ids, fold="test", source=params.attrs.get("source"))
    n = len(ids)

    model, record = load_model(inputs.model, device=device)
    model = model.to(COMPUTE_DTYPE)   # float64 inference: batch-shape-dependent kernels of
    # float32 convolutions changed θ̂ at ~1e-7, enough to move a JTFS distance by ~3e-6
    _check_provenance(inputs.model, record.get("provenance", {}), spec.provenance(),
                      "this model")
    loss = record["run"]["loss"]
    run_scaler = Scaler.from_state(space, record["scaler"])
    ref_scaler = spec.fit_scaler(params)
    targets = load_targets(inputs.features, ids, spec)
    metric = load_test_metric(inputs.metric, ids, spec)
    loss_path = inputs.loss_metric if inputs.loss_metric is not None else inputs.metric
    loss_metric = metric if loss_path == inputs.metric else load_test_metric(loss_path, ids, spec)

    feature = spec.feature
    ddsp_feature = None
    if loss == "ddsp_mss":
        from pnp_core.features import get_feature

        if training is None:
            raise DataError("evaluating a DDSP-MSS run needs the training config (its mss "
                            "settings): pass --training")
        ddsp_feature = get_feature("mss", n_samples=synth.n_samples, **training["mss"])

    theta = torch.as_tensor(theta_np, dtype=COMPUTE_DTYPE)
    nu_hat = torch.empty(n, P, dtype=torch.float64)
    theta_hat = torch.empty(n, P, dtype=torch.float64)
    jtfs = np.empty(n)
    mss = np.empty(n)
    ddsp = np.full(n, np.nan)
    audio = {c: np.empty(n) for c in AUDIO_COLUMNS}
    clamped = np.zeros(n, dtype=bool)
    with Progress(n, desc, unit="sample", disable=not progress) as bar, torch.no_grad():
        for sl in _batches(n, batch_size):
            th = theta[sl].to(device)
            x = synth(th)                                       # float64 audio
            out = model(x)                                      # ν̂ in the run's rescaling
            raw = run_scaler.inverse(out)
            th_hat = clamp_theta(raw, space)
            clamped[sl] = (raw != th_hat).any(dim=1).cpu().numpy()
            x_hat = synth(th_hat)
            phi_hat = feature(x_hat)
            jtfs[sl] = torch.linalg.vector_norm(
                phi_hat - targets[sl].to(device=device, dtype=COMPUTE_DTYPE), dim=-1).cpu().numpy()
            mss[sl] = mss_distance(x_hat, x).numpy()
            for c, v in audio_metrics(x_hat.cpu().numpy(), x.cpu().numpy(), synth.sr).items():
                audio[c][sl] = v
            if ddsp_feature is not None:
                ddsp[sl] = ddsp_feature.distance(x_hat, x).cpu().numpy()
            nu_hat[sl], theta_hat[sl] = out.cpu(), th_hat.cpu()
            bar.update(sl.stop - sl.start)

    nu_hat_np, theta_hat_np = nu_hat.numpy(), theta_hat.numpy()
    n_clamped = int(clamped.sum())
    sq = squared_errors(ref_scaler.forward(theta_hat).numpy(), ref_scaler.forward(theta).numpy())

    nu_run = run_scaler.forward(theta).numpy()
    if loss == "p":
        test_loss = squared_errors(nu_hat_np, nu_run).mean(axis=1)
    elif loss == "pnp":
        if loss_metric is None:
            test_loss = np.full(n, np.nan)
        else:
            M_run = metric_in_rescaling(loss_metric, theta_np, run_scaler)
            test_loss = pnp_test_loss(nu_hat_np, nu_run, M_run, record["mu"])
    elif loss == "ddsp_jtfs":
        test_loss = jtfs.copy()
    else:
        test_loss = ddsp

    if metric is not None:
        weight = micro_weight(metric.eig)
        m_diag = np.diagonal(metric_in_rescaling(metric, theta_np, ref_scaler), axis1=1, axis2=2)
    else:
        weight, m_diag = np.full(n, np.nan), np.full((n, P), np.nan)

    metrics = pd.DataFrame({"id": ids, "jtfs_dist": jtfs, "micro_weight": weight,
                            "mss_dist": mss, **audio, "param_err": sq.mean(axis=1),
                            "centre_err": centre_errors(ref_scaler, space, theta)})
    for j, name in enumerate(names):
        metrics[f"sqerr_{name}"] = sq[:, j]
    metrics["test_loss"] = np.asarray(test_loss, np.float64)
    for j, name in enumerate(names):
        metrics[f"m_diag_{name}"] = np.asarray(m_diag[:, j], np.float64)
    preds = pd.DataFrame({"id": ids})
    for j, name in enumerate(names):
        preds[f"theta_{name}"] = theta_np[:, j]
    for j, name in enumerate(names):
        preds[f"theta_hat_{name}"] = theta_hat_np[:, j]

    meta = {"provenance": spec.provenance(), "run": record["run"], "synth": spec.name,
            "n_test": n, "loss": loss, "param_names": names, "param_space": ref_scaler.state(),
            "run_rescaling": run_scaler.state(), "mu": record.get("mu"), "n_clamped": n_clamped,
            "best_epoch": record.get("best_epoch"),
            "sources": {"model": str(inputs.model), "features": str(inputs.features),
                        "metric": None if inputs.metric is None else str(inputs.metric),
                        "loss_metric": None if loss_path is None else str(loss_path)},
            "batch_size": int(batch_size), "device": str(device),
            "seconds": time.perf_counter() - t0}
    return metrics, preds, meta


def write_evaluation(metrics: pd.DataFrame, preds: pd.DataFrame, meta: dict, metrics_path,
                     predictions_path) -> None:
    """Write both tables atomically (formats :data:`EVAL_FORMAT`, :data:`PREDICTIONS_FORMAT`)."""
    write_table(metrics, metrics_path, EVAL_FORMAT, meta)
    write_table(preds, predictions_path, PREDICTIONS_FORMAT, meta)


__all__ = ["evaluate_run", "write_evaluation", "EvalInputs", "micro_weight",
           "mss_distance", "squared_errors", "pnp_test_loss", "load_targets", "load_test_metric",
           "EVAL_FORMAT", "PREDICTIONS_FORMAT"]
