"""Training: every loss and ablation learns on a fixed batch; resume = uninterrupted; errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pnp_core.config import validate_config
from pnp_core.errors import DataError
from pnp_core.metric.file import write_metric
from pnp_core.spec import RunSpec
from pnp_core.training.train import Run, TrainingDiverged, load_model, train_run

N = 2048
ENTRY = {"type": "ftm", "settings": {"sr": 22050, "n_samples": N, "modes": 4},
         "rescaling": "logminmax",
         "feature": {"type": "jtfs", "settings": {"J": 6, "Q": [8, 1], "Q_fr": 1, "F": 2,
                                                   "T": "global"}},
         "cqt": {"octaves": 5, "hop_length": 256}}


def training_config(**over):
    cfg = {"synths": {"ftm": dict(ENTRY)},
           "training": {"encoder": {"type": "small_cnn", "channels": [4, 8]},
                        "samples_per_epoch": 16, "epochs": 4, "val_batch_size": 8,
                        "batch_size": {"p": 8, "pnp": 8, "ddsp_mss": 4, "ddsp_jtfs": 4},
                        "mss": {"n_ffts": [256, 64]}, "cache_inputs": True, **over}}
    return validate_config(cfg)["training"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny params table (24 train, 8 val) and PSD metrics for both folds."""
    tmp = tmp_path_factory.mktemp("train")
    spec = RunSpec.from_entry(dict(ENTRY))
    space = spec.space
    rng = np.random.default_rng(0)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    theta = space.from_natural(lo + rng.uniform(0.05, 0.95, size=(32, len(space))) * (hi - lo))
    params = pd.DataFrame(theta, columns=space.names)
    params.insert(0, "fold", ["train"] * 24 + ["val"] * 8)
    params.insert(0, "id", np.arange(32, dtype=np.int64))
    scaler = spec.fit_scaler(params)
    paths = {}
    for fold in ("train", "val"):
        ids = params.loc[params["fold"] == fold, "id"].to_numpy()
        A = rng.normal(size=(len(ids), 5, 5))
        M = A @ A.transpose(0, 2, 1) * np.logspace(0, 3, 5)   # anisotropic, PSD after sym.
        M = 0.5 * (M + M.transpose(0, 2, 1)) + 5 * np.eye(5) * 1e3
        paths[fold] = tmp / f"{fold}.parquet"
        write_metric(paths[fold], ids, M, np.linalg.eigvalsh(M),
                     {"scaler": scaler.state(), "fold": fold})
    return spec, params, paths


def make_run(data, run, **over):
    spec, params, paths = data
    return Run(spec, params, run, training_config(**over), paths if run.get("loss") == "pnp"
               else None)


CASES = [
    {"loss": "p"}, {"loss": "pnp"}, {"loss": "ddsp_mss"}, {"loss": "ddsp_jtfs"},
    {"loss": "p", "rescaling": "raw"}, {"loss": "p", "rescaling": "log"},
    {"loss": "pnp", "rescaling": "minmax"}, {"loss": "ddsp_mss", "rescaling": "raw"},
    {"loss": "pnp", "optimizer": "sophia"}, {"loss": "pnp", "clip": "norm"},
    {"loss": "pnp", "damping": "constant"}, {"loss": "pnp", "damping": "scheduled"},
    {"loss": "pnp", "damping_matrix": "diag"}, {"loss": "pnp", "damping_matrix": "mean"},
    {"loss": "pnp", "representation": "mss"},
]


@pytest.mark.parametrize("run", CASES, ids=lambda r: "-".join(f"{v}" for v in r.values()))
def test_every_loss_and_ablation_learns_a_fixed_batch(data, run):
    r = make_run(data, {**run, "seed": 1})
    r.build_cache(progress=False)
    idx = torch.arange(4)
    losses, undamped = [], []
    for _ in range(8):
        r.model.train()
        nu_hat = r.model.from_features(r.encoder_inputs("train", idx))
        loss = r.objective("train", idx, nu_hat, r.damping.lam)
        # PNP: the metric part itself must fall, not only the (P-loss-like) damping term
        undamped.append(float(r.objective("train", idx, nu_hat.detach(), 0.0)))
        r.optimizer.zero_grad()
        loss.backward()
        if r.run["clip"] == "norm":
            torch.nn.utils.clip_grad_norm_(r.model.parameters(), 3.0)
        r.optimizer.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0], losses
    assert undamped[-1] < undamped[0], undamped


def _weights(path):
    return torch.load(path, weights_only=False)["model_state"]


def test_resume_after_interruption_equals_uninterrupted(data, tmp_path):
    run = {"loss": "pnp", "seed": 3}
    straight = train_run(make_run(data, run), tmp_path / "a", progress=False)
    assert train_run(make_run(data, run), tmp_path / "b", stop_after_epoch=2,
                     progress=False) is None
    assert not (tmp_path / "b" / "model.pt").exists()
    assert (tmp_path / "b" / "checkpoint" / "last.pt").exists()
    resumed = train_run(make_run(data, run), tmp_path / "b", progress=False)  # a new process's view
    assert len(straight) == len(resumed) == 4
    cols = ["epoch", "train_loss", "val_loss", "val_ploss", "lam", "lr", "damping_event"]
    pd.testing.assert_frame_equal(straight[cols], resumed[cols])
    wa, wb = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    model, record = load_model(tmp_path / "a" / "model.pt")
    assert record["run"]["loss"] == "pnp" and record["scaler"]["kind"] == "logminmax"
    assert np.isfinite(straight[["train_loss", "val_loss", "val_ploss"]].to_numpy()).all()
    hist = pd.read_parquet(tmp_path / "a" / "history.parquet")
    assert list(hist["epoch"]) == [1, 2, 3, 4]


def test_metric_of_another_representation_is_refused(data, tmp_path):
    """A PNP-MSS run given the JTFS metric (or the reverse) stops, naming the file."""
    spec, params, paths = data
    from pnp_core.metric.file import read_metric

    tagged = {}
    for fold in ("train", "val"):
        t = read_metric(paths[fold])
        tagged[fold] = tmp_path / f"{fold}.parquet"
        write_metric(tagged[fold], t.ids, t.M, t.eig,
                     {**t.meta, "provenance": {"feature": "jtfs"}})
    Run(spec, params, {"loss": "pnp"}, training_config(), tagged)   # jtfs = the entry's own
    with pytest.raises(DataError, match="'jtfs' representation, but this run needs 'mss'"):
        Run(spec, params, {"loss": "pnp", "representation": "mss"}, training_config(), tagged)


def test_other_settings_do_not_resume_a_stale_checkpoint(data, tmp_path):
    train_run(make_run(data, {"loss": "p"}), tmp_path, stop_after_epoch=1, progress=False)
    hist = train_run(make_run(data, {"loss": "p", "seed": 7}), tmp_path, progress=False)
    assert list(hist["epoch"]) == [1, 2, 3, 4]


def test_nan_in_metric_names_the_sample(data, tmp_path):
    spec, params, paths = data
    from pnp_core.metric.file import read_metric

    t = read_metric(paths["train"])
    M = t.M.copy()
    M[5, 1, 2] = np.nan
    bad = tmp_path / "train.parquet"
    write_metric(bad, t.ids, M, t.eig, t.meta)
    with pytest.raises(DataError, match=f"sample id {int(t.ids[5])}"):
        Run(spec, params, {"loss": "pnp"}, training_config(), {"train": bad, "val": paths["val"]})


def test_nan_loss_stops_naming_epoch_and_step_and_keeps_the_checkpoint(data, tmp_path):
    r = make_run(data, {"loss": "p"})
    train_run(r, tmp_path, stop_after_epoch=1, progress=False)
    r = make_run(data, {"loss": "p"})
    original = r.objective
    calls = {"n": 0}

    def poisoned(fold, idx, nu_hat, lam):
        calls["n"] += 1
        loss = original(fold, idx, nu_hat, lam)
        return loss * float("nan") if calls["n"] == 2 else loss

    r.objective = poisoned
    with pytest.raises(TrainingDiverged, match="epoch 2, step 1"):
        train_run(r, tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoint" / "last.pt", weights_only=False)
    assert state["epoch"] == 1


def test_damping_is_inert_for_losses_other_than_pnp(data):
    r = make_run(data, {"loss": "p"})
    assert r.damping.schedule == "constant" and r.damping.lam == 0.0
    r = make_run(data, {"loss": "pnp"})
    assert r.damping.schedule == "adaptive" and r.damping.lam > 0


def test_kill_9_mid_run_then_rerun_equals_uninterrupted(data, tmp_path):
    """A real interruption: `pnp train` killed with SIGKILL after its first checkpoint, then
    rerun with the same arguments, ends with the weights of an uninterrupted run."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    from pnp_core.synth.datasets import write_params

    spec, params, paths = data
    write_params(params, tmp_path / "params.parquet", spec.provenance(), {})
    run = {"name": "pnp_kill", "loss": "pnp", "seed": 5, "epochs": None, "rescaling": None,
           "optimizer": None, "clip": None, "damping": None, "damping_matrix": None}
    training = training_config(epochs=6, samples_per_epoch=48)

    def cmd(out):
        return [sys.executable, "-m", "pnp_core", "train", "--entry", json.dumps(ENTRY),
                "--params", str(tmp_path / "params.parquet"), "--run", json.dumps(run),
                "--training", json.dumps(training), "--metric-train", str(paths["train"]),
                "--metric-val", str(paths["val"]), "--device", "cpu", "--threads", "1",
                "--no-progress", "--out-dir", str(out)]

    subprocess.run(cmd(tmp_path / "a"), check=True, capture_output=True, timeout=600)
    proc = subprocess.Popen(cmd(tmp_path / "b"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    last = tmp_path / "b" / "checkpoint" / "last.pt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (tmp_path / "b" / "model.pt").exists()
    done = torch.load(last, weights_only=False)["history"]  # epochs checkpointed before the kill
    assert 1 <= len(done) < 6
    subprocess.run(cmd(tmp_path / "b"), check=True, capture_output=True, timeout=600)
    wa, wb = _weights(tmp_path / "a" / "model.pt"), _weights(tmp_path / "b" / "model.pt")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ha, hb = (pd.read_parquet(tmp_path / d / "history.parquet") for d in "ab")
    pd.testing.assert_frame_equal(ha[["epoch", "train_loss", "val_loss", "lam"]],
                                  hb[["epoch", "train_loss", "val_loss", "lam"]])


def test_mu_and_lambda0_come_from_the_train_fold_not_val(data, tmp_path):
    spec, params, paths = data
    scaler = spec.fit_scaler(params)
    # a val metric 1000× larger: μ and λ₀ must not move
    val = paths["val"]
    from pnp_core.metric.file import read_metric

    t = read_metric(val)
    big = tmp_path / "val_big.parquet"
    write_metric(big, t.ids, t.M * 1000, t.eig * 1000, {"scaler": scaler.state(), "fold": "val"})
    a = Run(spec, params, {"loss": "pnp"}, training_config(), paths)
    b = Run(spec, params, {"loss": "pnp"}, training_config(), {**paths, "val": big})
    assert a.mu == b.mu and a.lam0 == b.lam0
    eig = np.linalg.eigvalsh(a.M["train"].cpu().numpy())
    assert a.mu == pytest.approx(2.0 / np.median(eig.sum(axis=1)))
    assert a.lam0 == pytest.approx(a.mu * eig.max())


def test_constant_schedule_stays_undamped_whatever_lambda0(data):
    r = make_run(data, {"loss": "pnp", "damping": "constant"},
                 damping={"lambda0": 3.0})
    assert r.damping.lam == 0.0 and r.lam0 == 0.0
    r = make_run(data, {"loss": "pnp", "damping": "constant"},
                 damping={"lambda0": 3.0, "constant_lambda": 0.5})
    assert r.damping.lam == 0.5
    r = make_run(data, {"loss": "pnp"}, damping={"lambda0": 3.0})
    assert r.damping.lam == 3.0


@pytest.mark.parametrize("loss", ["p", "pnp"])
def test_restore_inside_train_run_applies_to_every_loss(data, tmp_path, loss):
    # lr so large that validation gets worse after epoch 1: with restore_best every later
    # epoch ends with the epoch-1 weights loaded back (P-loss and PNP alike)
    r = make_run(data, {"loss": loss, "seed": 0}, lr=5.0, epochs=3,
                 damping={"restore_best": True, "schedule": "adaptive"}, keep_epochs=True)
    hist = train_run(r, tmp_path / loss, progress=False)
    events = hist["damping_event"].tolist()
    assert "restored" in events[1:], hist
    best = torch.load(tmp_path / loss / "checkpoint" / "best.pt", weights_only=False)
    for k, v in r.model.state_dict().items():
        assert torch.equal(v, best["model"][k]), k
    # per-epoch weights (before any restore) and the time columns
    assert len(list((tmp_path / loss / "checkpoint").glob("epoch-*.pt"))) == 3
    assert (hist["train_seconds"] <= hist["seconds"]).all() and (hist["steps"] == r.steps).all()
