"""PNP diagnostics: the first-order model against the truth, learning dynamics, settings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pnp_core.config import validate_config
from pnp_core.evaluation.diagnose import (model_validity, rank_agreement, top_share, validity_summary,
                               write_diagnostics)
from pnp_core.metric.jacobian import JacobianComputer
from pnp_core.metric.file import write_metric
from pnp_core.spec import RunSpec
from pnp_core.training.train import Run, train_run

N = 2048
ENTRY = {"type": "ftm", "settings": {"sr": 22050, "n_samples": N, "modes": 4},
         "rescaling": "logminmax",
         "feature": {"type": "jtfs", "settings": {"J": 6, "Q": [8, 1], "Q_fr": 1, "F": 2,
                                                   "T": "global"}},
         "cqt": {"octaves": 5, "hop_length": 256}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny params table (16 train, 4 val, 4 test) and the *true* metrics of every fold."""
    tmp = tmp_path_factory.mktemp("diag")
    spec = RunSpec.from_entry(dict(ENTRY))
    space = spec.space
    rng = np.random.default_rng(1)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    theta = space.from_natural(lo + rng.uniform(0.2, 0.8, size=(24, len(space))) * (hi - lo))
    params = pd.DataFrame(theta, columns=space.names)
    params.insert(0, "fold", ["train"] * 16 + ["val"] * 4 + ["test"] * 4)
    params.insert(0, "id", np.arange(24, dtype=np.int64))
    scaler = spec.fit_scaler(params)
    comp = JacobianComputer(spec.synth, spec.feature, scaler, method="jvp")
    paths = {}
    for fold in ("train", "val", "test"):
        df = params[params["fold"] == fold]
        _, M, eig = comp.metric(torch.tensor(df[space.names].to_numpy()))
        paths[fold] = tmp / f"{fold}.parquet"
        write_metric(paths[fold], df["id"].to_numpy(), M.numpy(), eig.numpy(),
                     {"scaler": scaler.state(), "fold": fold})
    return spec, params, paths, comp, scaler


def test_first_order_model_is_exact_for_small_errors_and_departs_for_large(data):
    spec, params, paths, comp, scaler = data
    df = params[params["fold"] == "test"]
    theta = torch.as_tensor(df[spec.space.names].to_numpy())
    _, M, _ = comp.metric(theta)
    nu = scaler.forward(theta).numpy()
    table = model_validity(spec, scaler, nu, M.numpy(), df["id"].to_numpy(),
                           radii=(1e-5, 0.3), directions=3, progress=False)
    small = table[table["nominal"] == 1e-5]
    assert len(small) == 12
    assert np.allclose(small["ratio"], 1.0, atol=5e-3), small["ratio"].describe()
    large = table[table["nominal"] == 0.3]
    assert (abs(large["ratio"] - 1.0) > 0.01).any()    # the JTFS is not linear at 0.3
    summary = validity_summary(table)
    assert list(summary["radius"].round(5)) == pytest.approx([1e-5, 0.3], rel=0.2)
    assert summary.loc[0, "ratio_median"] == pytest.approx(1.0, abs=5e-3)


def test_top_share_and_rank_agreement():
    assert top_share(np.array([1.0] * 19 + [81.0]), 0.05) == pytest.approx(0.81)
    assert top_share(np.ones(10), 0.05) == pytest.approx(0.1)
    dyn = pd.DataFrame({"val_pnp_squared": [4, 3, 2, 1.0], "val_pnp_norm": [1, 2, 3, 4.0],
                        "val_ploss": [4, 3, 1, 2.0], "val_jtfs_dist": [8, 6, 4, 2.0]})
    rho = rank_agreement(dyn)
    assert rho["rho_pnp_squared"] == pytest.approx(1.0)
    assert rho["rho_pnp_norm"] == pytest.approx(-1.0)
    assert rho["rho_ploss"] == pytest.approx(0.8)


def test_write_diagnostics_end_to_end(data, tmp_path):
    spec, params, paths, comp, scaler = data
    training = validate_config({"synths": {"ftm": dict(ENTRY)}, "training": {
        "encoder": {"type": "small_cnn", "channels": [4, 8]}, "samples_per_epoch": 16,
        "epochs": 3, "val_batch_size": 8, "keep_epochs": True,
        "batch_size": {"p": 8, "pnp": 8, "ddsp_mss": 4, "ddsp_jtfs": 4},
        "cache_inputs": True}})["training"]
    runs = {}
    for name, setting in (("pnp", {"loss": "pnp"}), ("p", {"loss": "p"}),
                          ("pnp-norm", {"loss": "pnp", "pnp_form": "norm"})):
        r = Run(spec, params, setting, training,
                {f: paths[f] for f in ("train", "val")} if setting["loss"] == "pnp" else None)
        train_run(r, tmp_path / name, progress=False)
        runs[name] = tmp_path / name
    out = write_diagnostics(spec, params, {"test": paths["test"], "val": paths["val"]},
                            tmp_path / "diag", runs=runs, n_sounds=4, directions=1,
                            progress=False)
    for name in ("validity.parquet", "validity_summary.csv", "dynamics.parquet",
                 "rank_agreement.csv", "diagnostics.png", "diagnostics.pdf"):
        assert (tmp_path / "diag" / name).stat().st_size > 0, name
    assert set(out["rank"]["run"]) == {"p", "pnp", "pnp-norm"}
    from pnp_core.io import read_table

    dyn = read_table(tmp_path / "diag" / "dynamics.parquet", "pnp-diagnostics/1").data
    assert sorted(dyn.loc[dyn["run"] == "pnp", "epoch"]) == [1, 2, 3]
    # the val objective recomputed from the epoch weights is the history's val loss, for
    # each PNP form (the schema's default form is the paper's squared one)
    assert training["pnp_form"] == "squared"
    for name, col in (("pnp", "val_pnp_squared"), ("pnp-norm", "val_pnp_norm")):
        run = dyn[dyn["run"] == name].sort_values("epoch")
        assert np.allclose(run[col], run["val_loss"], rtol=1e-4), (name, run[[col, "val_loss"]])
    # every run's objectives use the PNP run's μ: the P-loss run's PNP is on the same scale
    p_run, pnp = dyn[dyn["run"] == "p"], dyn[dyn["run"] == "pnp"]
    ratio = p_run["val_pnp_squared"].mean() / pnp["val_pnp_squared"].mean()
    assert 0.1 < ratio < 10, ratio
    network = read_table(tmp_path / "diag" / "validity.parquet", "pnp-diagnostics/1").data
    assert (network["source"] == "network").sum() == 4
