"""Evaluation: each metric against a hand-computed value, every test sample evaluated,
per-sample values independent of the batch size, through `pnp evaluate` on real files."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from pnp_core.evaluation.audio_metrics import COLUMNS as AUDIO_COLUMNS, audio_metrics
import torch

from pnp_core.cli import main
from pnp_core.config import validate_config
from pnp_core.errors import DataError
from pnp_core.evaluation.evaluate import (EVAL_FORMAT, PREDICTIONS_FORMAT, EvalInputs, evaluate_run,
                               micro_weight, mss_distance, pnp_test_loss)
from pnp_core.features.fold import fold_features, save_fold_features
from pnp_core.io import read_table
from pnp_core.training.losses import pnp_loss
from pnp_core.metric.file import metric_in_rescaling, read_metric, write_metric
from pnp_core.evaluation.tables import micro_mean
from pnp_core.params import Scaler
from pnp_core.spec import SECTIONS, RunSpec
from pnp_core.training.train import Run, train_run

N = 2048
ENTRY = {"type": "ftm", "settings": {"sr": 22050, "n_samples": N, "modes": 4},
         "rescaling": "logminmax",
         "dataset": {"bins": 3, "val_margin": 1, "n_test": 6},
         "feature": {"type": "jtfs", "settings": {"J": 6, "Q": [8, 1], "Q_fr": 1, "F": 2,
                                                   "T": "global"}},
         "cqt": {"octaves": 5, "hop_length": 256}}
N_TEST = 7


def training_config():
    cfg = {"synths": {"ftm": dict(ENTRY)},
           "training": {"encoder": {"type": "small_cnn", "channels": [4, 8]},
                        "samples_per_epoch": 8, "epochs": 1, "val_batch_size": 8,
                        "batch_size": {"p": 8, "pnp": 8, "ddsp_mss": 4, "ddsp_jtfs": 4},
                        "mss": {"n_ffts": [256, 64]}, "cache_inputs": True}}
    return validate_config(cfg)["training"]


# -- hand-computed values -------------------------------------------------------------------------


def test_micro_weight_and_micro_mean_by_hand():
    eig = np.array([[1.0, 4.0, 9.0], [0.0, 1.0, 16.0]])     # ascending
    assert np.allclose(micro_weight(eig), [6.0, 4.0])        # √(9·4), √(16·1)
    assert micro_mean([1.0, 2.0], [1.0, 3.0]) == pytest.approx(7 / 4)
    # samples without a metric (NaN weight) are left out; none at all → NaN
    assert micro_mean([1.0, 2.0, 5.0], [1.0, 3.0, np.nan]) == pytest.approx(7 / 4)
    assert math.isnan(micro_mean([1.0], [np.nan]))


def test_pnp_test_loss_by_hand():
    nu_hat, nu = np.array([[1.0, 2.0]]), np.zeros((1, 2))
    M = np.array([[[2.0, 0.0], [0.0, 3.0]]])
    # ½ μ Δᵀ M Δ = ½ · 0.5 · (2·1 + 3·4) = 3.5
    assert pnp_test_loss(nu_hat, nu, M, mu=0.5) == pytest.approx([3.5])


def test_mss_distance_by_hand_and_per_sample():
    """x̂ = 2x: every magnitude doubles, so each resolution gives spectral convergence
    ‖2|X| − |X|‖/‖|X|‖ = 1 plus mean |log 2|X| − log |X|| = ln 2 (auraloss defaults)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4096, generator=g)
    d = mss_distance(2 * x, x)
    assert torch.allclose(d, torch.full((3,), 1 + math.log(2), dtype=torch.float64), atol=1e-4)
    # per sample: a pair's value does not change with the other pairs of the call
    y = x.clone()
    y[1:] = torch.randn(2, 4096, generator=g)
    assert mss_distance(y[:1], y[:1])[0] == 0.0               # identical sounds
    single = torch.stack([mss_distance(2 * y[b:b + 1], y[b:b + 1])[0] for b in range(3)])
    assert torch.equal(single, mss_distance(2 * y, y))


# -- a real trained run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny params table (train/val/test), test features and metrics, and three runs
    (P, PNP, DDSP-MSS) trained for one epoch."""
    tmp = tmp_path_factory.mktemp("eval")
    spec = RunSpec.from_entry(dict(ENTRY))
    space = spec.space
    rng = np.random.default_rng(0)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    n = 24 + 8 + N_TEST
    theta = space.from_natural(lo + rng.uniform(0.05, 0.95, size=(n, len(space))) * (hi - lo))
    params = pd.DataFrame(theta, columns=space.names)
    params.insert(0, "fold", ["train"] * 24 + ["val"] * 8 + ["test"] * N_TEST)
    params.insert(0, "id", np.arange(n, dtype=np.int64))
    scaler = spec.fit_scaler(params)
    metrics = {}
    for fold in ("train", "val", "test"):
        ids = params.loc[params["fold"] == fold, "id"].to_numpy()
        A = rng.normal(size=(len(ids), 5, 5))
        M = A @ A.transpose(0, 2, 1) + np.eye(5)
        metrics[fold] = tmp / f"{fold}.parquet"
        write_metric(metrics[fold], ids, M, np.linalg.eigvalsh(M),
                     {"scaler": scaler.state(), "fold": fold, "provenance": spec.provenance(),
                      "param_names": space.names})
    test = params[params["fold"] == "test"]
    fspec = RunSpec(spec.entry, given=SECTIONS["features"])
    feats = tmp / "test.pt"
    save_fold_features(feats, test["id"].to_numpy(),
                       fold_features(test, spec.synth, spec.feature, progress=False),
                       provenance=fspec.provenance(), fold="test")
    training = training_config()
    runs = {}
    for loss in ("p", "pnp", "ddsp_mss"):
        run = Run(spec, params, {"loss": loss, "seed": 0}, training,
                  {k: metrics[k] for k in ("train", "val")} if loss == "pnp" else None)
        train_run(run, tmp / loss, progress=False)
        runs[loss] = tmp / loss / "model.pt"
    return {"spec": spec, "params": params, "metrics": metrics, "features": feats,
            "runs": runs, "training": training, "tmp": tmp}


def evaluate(setup, loss, batch_size=4, **kw):
    inputs = EvalInputs(model=setup["runs"][loss], features=setup["features"],
                        metric=kw.pop("metric", setup["metrics"]["test"]), **kw)
    return evaluate_run(setup["spec"], setup["params"], inputs, setup["training"],
                        batch_size=batch_size, progress=False)


def test_every_metric_matches_its_definition(setup):
    spec, params = setup["spec"], setup["params"]
    space, names = spec.space, spec.space.names
    met, preds, meta = evaluate(setup, "pnp", batch_size=3)   # 7 samples: a last batch of 1
    test = params[params["fold"] == "test"]
    assert met["id"].tolist() == test["id"].tolist() == preds["id"].tolist()
    assert meta["n_test"] == N_TEST and meta["n_clamped"] == 0
    theta = test[names].to_numpy()
    assert np.array_equal(preds[[f"theta_{p}" for p in names]].to_numpy(), theta)
    theta_hat = preds[[f"theta_hat_{p}" for p in names]].to_numpy()
    # JTFS distance: Φ(g(θ̂)) vs Φ(g(θ)), recomputed here sample by sample
    th = torch.tensor(theta_hat)
    for b in range(N_TEST):
        x_hat, x = spec.synth(th[b:b + 1]), spec.synth(torch.tensor(theta[b:b + 1]))
        want = torch.linalg.vector_norm(spec.feature(x_hat) - spec.feature(x)).item()
        assert met["jtfs_dist"][b] == pytest.approx(want, rel=1e-5)
        assert met["mss_dist"][b] == pytest.approx(mss_distance(x_hat, x).item(), rel=1e-6)
        # the field's other distances, on the same pair of sounds
        other = audio_metrics(x_hat.numpy(), x.numpy(), spec.synth.sr)
        for c in AUDIO_COLUMNS:
            assert met[c][b] == pytest.approx(other[c][0], rel=1e-9, nan_ok=True)
    # parameter errors in the normalised space (train-fold logminmax)
    ref = spec.fit_scaler(params)
    sq = (ref.forward(th) - ref.forward(torch.tensor(theta))).numpy() ** 2
    assert np.allclose(met[[f"sqerr_{p}" for p in names]].to_numpy(), sq)
    assert np.allclose(met["param_err"], sq.mean(axis=1))
    # chance line: the centre of the box, the geometric midpoint of a log-scaled parameter
    space = spec.space
    mid = np.where(space.log_mask, np.sqrt(space.low * space.high),
                   (space.low + space.high) / 2)
    centre = ref.forward(torch.tensor(mid[None, :])).numpy()
    want = ((centre - ref.forward(torch.tensor(theta)).numpy()) ** 2).mean(axis=1)
    assert np.allclose(met["centre_err"], want)
    # micro weight and diag M from the test metric file (stored in the same space)
    table = read_metric(setup["metrics"]["test"])
    assert np.allclose(met["micro_weight"], np.sqrt(table.eig[:, -1] * table.eig[:, -2]))
    assert np.allclose(met[[f"m_diag_{p}" for p in names]].to_numpy(),
                       np.diagonal(table.M, axis1=1, axis2=2))
    # the run's own objective: the training code's undamped PNP, sample by sample
    record = torch.load(setup["runs"]["pnp"], weights_only=False)
    run_scaler = Scaler.from_state(space, record["scaler"])
    M_run = torch.tensor(metric_in_rescaling(table, theta, run_scaler))
    nu_hat, nu = run_scaler.forward(th), run_scaler.forward(torch.tensor(theta))
    for b in range(N_TEST):
        want = pnp_loss(nu_hat[b:b + 1], nu[b:b + 1], M_run[b:b + 1], lam=0.0,
                        mu=record["mu"]).item()
        assert met["test_loss"][b] == pytest.approx(want, rel=1e-6)


def test_own_objective_of_p_and_ddsp_runs(setup):
    spec = setup["spec"]
    met, preds, _ = evaluate(setup, "p")
    assert np.allclose(met["test_loss"], met["param_err"])   # same space for a Table-1 P run
    met, preds, _ = evaluate(setup, "ddsp_mss")
    from pnp_core.features import get_feature

    mss = get_feature("mss", n_samples=N, n_ffts=[256, 64])
    names = spec.space.names
    x_hat = spec.synth(torch.tensor(preds[[f"theta_hat_{p}" for p in names]].to_numpy()))
    x = spec.synth(torch.tensor(preds[[f"theta_{p}" for p in names]].to_numpy()))
    assert np.allclose(met["test_loss"], mss.distance(x_hat, x).numpy())


def test_per_sample_values_do_not_depend_on_the_batch_size(setup):
    one, _, _ = evaluate(setup, "pnp", batch_size=1)
    all_, _, _ = evaluate(setup, "pnp", batch_size=N_TEST)
    cols = [c for c in one.columns if c != "id"]
    # encoder, g and Φ in float64: differences between batch shapes are float64 rounding
    # (the MSS distance is taken in float32 by auraloss, one sample at a time: the same
    # float32 audio gives the same value); in float32 the encoder moved jtfs_dist by 3e-6
    assert np.allclose(one[cols].to_numpy(), all_[cols].to_numpy(), rtol=1e-9, atol=1e-12,
                       equal_nan=True)  # f0 error: NaN for the unpitched drum


def test_without_test_metric_the_metric_columns_are_nan(setup):
    met, _, _ = evaluate(setup, "pnp", metric=None)
    assert met["micro_weight"].isna().all() and met["test_loss"].isna().all()
    assert met.filter(like="m_diag_").isna().all().all()
    assert np.isfinite(met["jtfs_dist"]).all()


def test_stale_features_are_refused(setup, tmp_path):
    data = torch.load(setup["features"], weights_only=True)
    bad = tmp_path / "test.pt"
    torch.save({**data, "ids": data["ids"] + 1}, bad)
    inputs = EvalInputs(model=setup["runs"]["p"], features=bad)
    with pytest.raises(DataError, match="ids do not match"):
        evaluate_run(setup["spec"], setup["params"], inputs, progress=False)
    other = {**data, "provenance": {**data["provenance"], "feature_settings": {"J": 5}}}
    torch.save(other, bad)
    with pytest.raises(DataError, match="other settings"):
        evaluate_run(setup["spec"], setup["params"], inputs, progress=False)


def test_evaluate_command_writes_both_tables(setup, tmp_path):
    params = tmp_path / "params.parquet"
    from pnp_core.synth.datasets import write_params

    write_params(setup["params"], params, setup["spec"].provenance(),
                 {p.name: p.unit for p in setup["spec"].space})
    out_m, out_p = tmp_path / "metrics.parquet", tmp_path / "predictions.parquet"
    rc = main(["evaluate", "--entry", json.dumps(ENTRY), "--params", str(params),
               "--model", str(setup["runs"]["pnp"]), "--features", str(setup["features"]),
               "--metric", str(setup["metrics"]["test"]), "--batch-size", "5",
               "--training", json.dumps(setup["training"]), "--device", "cpu", "--no-progress",
               "--metrics-out", str(out_m), "--predictions-out", str(out_p)])
    assert rc == 0
    met = read_table(out_m, EVAL_FORMAT)
    preds = read_table(out_p, PREDICTIONS_FORMAT)
    names = setup["spec"].space.names
    assert list(met.data.columns) == (["id", "jtfs_dist", "micro_weight", "mss_dist",
                                       *AUDIO_COLUMNS, "param_err", "centre_err"]
                                      + [f"sqerr_{p}" for p in names] + ["test_loss"]
                                      + [f"m_diag_{p}" for p in names])
    assert list(preds.data.columns) == (["id"] + [f"theta_{p}" for p in names]
                                        + [f"theta_hat_{p}" for p in names])
    assert all(met.data[c].dtype == np.float64 for c in met.data.columns if c != "id")
    assert met.meta["n_test"] == N_TEST and met.meta["synth"] == "ftm"
    assert met.meta["run"]["loss"] == "pnp" and "provenance" in met.meta
