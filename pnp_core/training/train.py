"""Training of one run: an encoder f_W trained with one loss and one set of ablation values.

One entry point, :func:`train_run`, for every loss (``p``, ``pnp``, ``ddsp_mss``,
``ddsp_jtfs``) and every ablation value of a run row (see :data:`RUN_DEFAULTS`):

* data: the train fold of the params table, θ drawn ``samples_per_epoch`` per epoch (one
  number, or one per loss: :func:`samples_per_epoch`) in batches of the loss's batch size (a fresh permutation per epoch, seeded), audio x = g(θ) synthesised on the
  fly on the run's device; with ``cache_inputs`` the encoder's CQT input of every train
  and validation sound is computed once (it depends on neither the weights nor the loss; measured on
  the laptop config: CQT 0.27 s vs network forward+backward 0.17 s per batch of 32);
* PNP: M of the train and val folds from the Jacobian stage, re-expressed in the run's
  rescaling by the chain rule (:func:`pnp_core.metric.file.metric_in_rescaling`); μ and
  λ₀ from the train fold (:func:`pnp_core.training.losses.auto_mu`,
  :func:`pnp_core.training.damping.initial_lambda`);
* optimisation: Adam (lr 1e−3) or the reference's Sophia as it ran (:class:`SignMomentum`),
  optional global-norm clipping, ``ReduceLROnPlateau`` (patience 3) on the validation loss;
* validation after every epoch on the whole val fold: the run's own objective (undamped
  PNP for PNP runs) and the P-loss; the damping rule then updates λ;
* checkpoints under ``{out_dir}/checkpoint/``: ``last.pt`` written atomically after every
  epoch (model, optimizer, scheduler, damping state, RNG states, history) and
  ``best.pt`` (weights with the lowest validation loss), and with ``keep_epochs`` the
  weights after every epoch (``epoch-NNNN.pt``, for :mod:`pnp_core.evaluation.diagnose`). With
  ``damping.restore_best`` (any loss alike) a non-improving epoch loads the best weights
  back. A restarted run with the same
  settings resumes from ``last.pt``; one with other settings starts afresh;
* a non-finite loss stops the run (:class:`TrainingDiverged`) naming the epoch and step,
  with the last good checkpoint kept; a non-finite M stops it before training, naming
  the sample id.

The history has one row per epoch (format ``pnp-history/1``): ``epoch``, ``train_loss``,
``val_loss`` (own objective), ``val_ploss``, ``lam`` (λ during the epoch), ``lr``,
``seconds`` (the epoch with its validation), ``train_seconds`` (the optimizer steps only),
``steps`` (optimizer steps in the epoch), ``damping_event``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pnp_core.training.damping import Damping, initial_lambda
from pnp_core.training.encoders import Encoder, cqt_settings
from pnp_core.errors import ConfigError, DataError, PnpError
from pnp_core.formats import HISTORY_FORMAT
from pnp_core.io import atomic_path, write_table
from pnp_core.training.losses import PNP_FORMS, auto_mu, ddsp_loss, p_loss, pnp_loss

log = logging.getLogger(__name__)

LOSSES = ("p", "pnp", "ddsp_mss", "ddsp_jtfs")
OPTIMIZERS = ("adam", "sophia")
CLIPS = ("none", "norm")
MODEL_FORMAT = "pnp-model/1"

#: the ablation values of a run row and their defaults (the grid in common.smk sets them)
RUN_DEFAULTS = {
    "loss": "p",
    "rescaling": None,          # None = the synth entry's rescaling
    "optimizer": "adam",
    "clip": "none",
    "damping": None,            # None = training.damping.schedule
    "damping_matrix": None,     # None = training.damping.matrix
    "representation": None,     # PNP's metric: None = the entry's feature; "mss" = the MSS metric
    "pnp_form": None,           # None = training.pnp_form (squared: the paper's ½ΔᵀMΔ; norm)
    "epochs": None,             # None = training.epochs (pretrain/fine-tune halve it)
    "seed": 0,
}


class TrainingDiverged(PnpError, FloatingPointError):
    """The training loss became NaN or Inf."""


# ----------------------------------------------------------------------------------------------
# optimizer


class SignMomentum(torch.optim.Optimizer):
    """The reference's SophiaG as it really ran: its Hessian estimate h was never updated.

    With h = 0 Sophia's step −lr·clip(m / max(ρ·h, ε), 1) becomes
    −lr·clip(m/ε, −1, 1) (ε = 1e−15): a per-coordinate-clipped sign-momentum step,
    with decoupled weight decay θ ← θ(1 − lr·wd). Defaults are the reference's
    (lr 1e−3, betas (0.965, 0.99), ρ = 0.01, weight decay 0.1); β₂ and ρ only act on h,
    so they are kept for the record.
    """

    def __init__(self, params, lr=1e-3, betas=(0.965, 0.99), rho=0.01, weight_decay=0.1,
                 eps=1e-15):
        super().__init__(params, dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay,
                                      eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1 = group["betas"][0]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.add_(torch.clamp(m / group["eps"], -1.0, 1.0), alpha=-group["lr"])


# ----------------------------------------------------------------------------------------------
# setup


def resolve_run(run: dict, training: dict) -> dict:
    """A run row with defaults filled from :data:`RUN_DEFAULTS` and the training config."""
    out = {**RUN_DEFAULTS, **{k: v for k, v in run.items() if v is not None and k in RUN_DEFAULTS}}
    unknown = set(run) - set(RUN_DEFAULTS) - {"name", "init", "group", "synth"}
    if unknown:
        raise ConfigError(f"run settings {sorted(unknown)} are unknown (allowed: "
                          f"{', '.join(RUN_DEFAULTS)})")
    out["damping"] = out["damping"] or training["damping"]["schedule"]
    out["damping_matrix"] = out["damping_matrix"] or training["damping"]["matrix"]
    out["pnp_form"] = out["pnp_form"] or training.get("pnp_form", "squared")
    out["epochs"] = int(out["epochs"] or training["epochs"])
    for key, allowed in (("loss", LOSSES), ("optimizer", OPTIMIZERS), ("clip", CLIPS),
                         ("pnp_form", PNP_FORMS)):
        if out[key] not in allowed:
            raise ConfigError(f"run setting {key}={out[key]!r} is not one of {allowed}")
    return out


def samples_per_epoch(training: dict, loss: str) -> int:
    """``training.samples_per_epoch`` of ``loss``: one number for every loss, or per loss
    (a mapping, so that the cheap losses can train longer than DDSP on the same budget)."""
    value = training["samples_per_epoch"]
    return int(value[loss] if isinstance(value, dict) else value)


def load_metrics(path, ids: np.ndarray, theta: np.ndarray, scaler,
                 feature: str | None = None) -> np.ndarray:
    """M (n, P, P) float64 of ``ids`` (sorted) in ``scaler``'s rescaling; non-finite M → DataError.

    ``feature``, when given, is the representation the metric must have been computed with
    (its provenance says which), so a PNP-MSS run cannot silently train on a JTFS metric.
    """
    from pnp_core.metric.file import metric_in_rescaling, read_metric

    table = read_metric(path)
    got = table.meta.get("provenance", {}).get("feature")
    if feature is not None and got is not None and got != feature:
        raise DataError(f"{path}: a metric of the {got!r} representation, but this run needs "
                        f"{feature!r} (run setting 'representation')")
    if not np.array_equal(table.ids, ids):
        missing = np.setdiff1d(ids, table.ids)
        raise DataError(f"{path}: its ids do not match the fold of the params table "
                        f"({missing.size} missing, e.g. {missing[:5].tolist()}); rerun the "
                        "Jacobian stage for this dataset")
    bad = ~np.isfinite(table.M).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"{path}: M of sample id {int(table.ids[bad][0])} is not finite "
                        f"({int(bad.sum())} sample(s) in total); recompute its Jacobian shard")
    return metric_in_rescaling(table, theta, scaler)


def fingerprint(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rng_state(order_gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(), "order": order_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, order_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    order_gen.set_state(state["order"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# ----------------------------------------------------------------------------------------------
# the run


class Run:
    """Everything one run needs, built from the spec, the params table and the config.

    Parameters
    ----------
    spec : pnp_core.spec.RunSpec (train slice of the synth entry, incl. ``cqt``)
    params : DataFrame, the whole params table
    run : dict, the run row (see :func:`resolve_run`)
    training : dict, the validated ``training`` config section
    metrics : dict fold → path of the merged metric file (PNP runs: train and val)
    device : torch.device
    """

    def __init__(self, spec, params: pd.DataFrame, run: dict, training: dict,
                 metrics: dict | None = None, device="cpu") -> None:
        self.spec, self.training = spec, training
        self.run = resolve_run(run, training)
        self.device = torch.device(device)
        self.loss = self.run["loss"]
        self.synth = spec.synth
        P = len(spec.space)
        self.scaler = spec.fit_scaler(params, kind=self.run["rescaling"] or spec.rescaling)
        folds = {}
        for fold in ("train", "val"):
            df = params[params["fold"] == fold].sort_values("id")
            if len(df) == 0:
                raise DataError(f"the {fold} fold of the params table is empty: cannot train")
            folds[fold] = (df["id"].to_numpy(np.int64),
                           df[spec.space.names].to_numpy(np.float64))
        self.ids = {f: v[0] for f, v in folds.items()}
        self.theta = {f: torch.tensor(v[1], device=self.device) for f, v in folds.items()}
        self.nu = {f: self.scaler.forward(t).float() for f, t in self.theta.items()}

        self.batch_size = int(training["batch_size"][self.loss])
        self.steps = max(1, samples_per_epoch(training, self.loss) // self.batch_size)
        self.mu, self.lam0, self.mean_metric = 1.0, 0.0, None
        self.M = {}
        if self.loss == "pnp":
            if not metrics or "train" not in metrics or "val" not in metrics:
                raise ConfigError("a PNP run needs the merged metrics of the train and val folds "
                                  "(add them to config key 'jacobian.folds')")
            rep = self.run["representation"] or spec.entry["feature"]["type"]
            for fold in ("train", "val"):
                M = load_metrics(metrics[fold], self.ids[fold], folds[fold][1], self.scaler,
                                 feature=rep)
                self.M[fold] = torch.as_tensor(M, device=self.device)
            eig = np.linalg.eigvalsh(self.M["train"].cpu().numpy())
            mu = training["mu"]
            self.mu = auto_mu(eig) if mu == "auto" else float(mu)
            dcfg = training["damping"]
            if self.run["damping"] == "constant":
                # the constant schedule has its own λ (default 0 = the paper's undamped PNP),
                # so a numeric lambda0 cannot turn the undamped ablation into a damped one
                self.lam0 = float(dcfg.get("constant_lambda", 0.0))
            elif dcfg["lambda0"] == "auto":
                self.lam0 = initial_lambda(eig, self.mu, dcfg["lambda0_rule"])
            else:
                self.lam0 = float(dcfg["lambda0"])
            self.mean_metric = self.M["train"].mean(dim=0)
        self.feature = None
        if self.loss == "ddsp_jtfs":
            self.feature = spec.feature
        elif self.loss == "ddsp_mss":
            from pnp_core.features import get_feature

            self.feature = get_feature("mss", n_samples=self.synth.n_samples,
                                       **training["mss"])

        torch.manual_seed(int(self.run["seed"]))
        enc = training["encoder"]
        cqt = cqt_settings(spec.entry.get("cqt", {}), self.synth.sr)
        self.model_config = {"cqt": cqt, "n_params": P,
                             "rescaling": self.scaler.kind, "kind": enc["type"],
                             "spectral": self.loss.startswith("ddsp"),
                             "channels": list(enc["channels"]),
                             "log_eps": float(spec.entry.get("cqt", {}).get("log_eps", 1e-3))}
        self.model = Encoder(**self.model_config).to(self.device)
        lr = float(training["lr"])
        if self.run["optimizer"] == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        else:
            self.optimizer = SignMomentum(self.model.parameters(), lr=lr)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, patience=int(training["plateau_patience"]), factor=0.1)
        d = training["damping"]
        # λ belongs to PNP (other losses keep λ = 0); the restore of the best weights, when
        # on, applies to every loss alike
        self.damping = Damping(self.run["damping"] if self.loss == "pnp" else "constant",
                               self.lam0, factor=d["factor"], accelerator=d["accelerator"],
                               brake=d["brake"], min_lambda=float(d.get("lambda_min", 0.0)),
                               restore_best=d["restore_best"])
        self.order_gen = torch.Generator().manual_seed(int(self.run["seed"]))
        self.cache = {}
        self.fingerprint = fingerprint({"run": self.run, "training": training,
                                        "entry": spec.entry, "n": {f: len(i) for f, i in
                                                                   self.ids.items()}})

    # -- pieces -----------------------------------------------------------------------------------

    def encoder_inputs(self, fold: str, idx: torch.Tensor) -> torch.Tensor:
        if fold in self.cache:
            return self.cache[fold][idx]
        with torch.no_grad():
            return self.model.features(self.synth(self.theta[fold][idx].float()))

    def build_cache(self, progress: bool) -> None:
        from tqdm.auto import tqdm

        if not self.training["cache_inputs"]:
            return
        bs = int(self.training["val_batch_size"])
        for fold in ("train", "val"):
            n = len(self.ids[fold])
            chunks = []
            for start in tqdm(range(0, n, bs), desc=f"CQT cache ({fold})", disable=not progress,
                              leave=False):
                idx = torch.arange(start, min(start + bs, n), device=self.device)
                with torch.no_grad():
                    chunks.append(self.model.features(self.synth(self.theta[fold][idx].float())))
            self.cache[fold] = torch.cat(chunks)

    def objective(self, fold: str, idx: torch.Tensor, nu_hat: torch.Tensor, lam: float):
        nu = self.nu[fold][idx]
        if self.loss == "p":
            return p_loss(nu_hat, nu)
        if self.loss == "pnp":
            return pnp_loss(nu_hat, nu, self.M[fold][idx], lam=lam, mu=self.mu,
                            damping_matrix=self.run["damping_matrix"],
                            mean_metric=self.mean_metric, form=self.run["pnp_form"])
        with torch.no_grad():
            x = self.synth(self.theta[fold][idx].float())
            target = self.feature(x) if self.loss == "ddsp_jtfs" else None
        return ddsp_loss(nu_hat, x, self.synth, self.scaler, self.feature, target)

    def epoch_order(self) -> torch.Tensor:
        n, need = len(self.ids["train"]), self.steps * self.batch_size
        perms = [torch.randperm(n, generator=self.order_gen) for _ in range(-(-need // n))]
        return torch.cat(perms)[:need]

    def validate(self) -> tuple[float, float]:
        """(own objective, P-loss) on the whole val fold, undamped, per-sample means."""
        self.model.eval()
        n, bs = len(self.ids["val"]), int(self.training["val_batch_size"])
        own = pl = 0.0
        with torch.no_grad():
            for start in range(0, n, bs):
                idx = torch.arange(start, min(start + bs, n), device=self.device)
                nu_hat = self.model.from_features(self.encoder_inputs("val", idx))
                k = len(idx)
                own += float(self.objective("val", idx, nu_hat, lam=0.0)) * k
                pl += float(p_loss(nu_hat, self.nu["val"][idx])) * k
        return own / n, pl / n

    def train_epoch(self, epoch: int, progress: bool) -> float:
        from tqdm.auto import tqdm

        self.model.train()
        order = self.epoch_order().to(self.device)
        steps, bs = self.steps, self.batch_size
        total = 0.0
        bar = tqdm(range(steps), desc=f"epoch {epoch}", disable=not progress, leave=False)
        for step in bar:
            idx = order[step * bs:(step + 1) * bs]
            nu_hat = self.model.from_features(self.encoder_inputs("train", idx))
            loss = self.objective("train", idx, nu_hat, self.damping.lam)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"the {self.loss} loss is {loss.item()} at epoch {epoch}, step {step} "
                    f"(λ = {self.damping.lam:g}, lr = {self.optimizer.param_groups[0]['lr']:g}); "
                    "the last good checkpoint is kept: lower the learning rate, turn on "
                    "gradient clipping or check the inputs")
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.run["clip"] == "norm":
                torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                               float(self.training["clip_norm"]))
            self.optimizer.step()
            total += loss.item()
            bar.set_postfix(loss=f"{total / (step + 1):.4g}")
        return total / steps

    # -- checkpoints ------------------------------------------------------------------------------

    def checkpoint_state(self, epoch: int, history: list, best: float) -> dict:
        return {"fingerprint": self.fingerprint, "epoch": epoch,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "damping": self.damping.state_dict(),
                "rng": _rng_state(self.order_gen), "history": history, "best_val": best}

    def resume(self, path: Path):
        if not path.exists():
            return None
        state = torch.load(path, map_location=self.device, weights_only=False)
        if state.get("fingerprint") != self.fingerprint:
            log.warning("%s is from other settings: starting afresh", path)
            return None
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.damping.load_state_dict(state["damping"])
        _set_rng_state(state["rng"], self.order_gen)
        return state


def train_run(run_obj: Run, out_dir, *, init_model=None, stop_after_epoch: int | None = None,
              progress: bool = True) -> pd.DataFrame | None:
    """Train (or resume) ``run_obj`` and write ``model.pt`` and ``history.parquet`` in ``out_dir``.

    Parameters
    ----------
    run_obj : :class:`Run`
    out_dir : the run's folder; checkpoints go to ``out_dir/checkpoint/``
    init_model : path of a ``model.pt`` to start from (fine-tuning after pretraining)
    stop_after_epoch : stop after this epoch's checkpoint without writing the final outputs
        (as if the job had been killed; used by tests)

    Returns
    -------
    The history (one row per epoch), or None when stopped early.
    """
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    epochs = run_obj.run["epochs"]
    history: list[dict] = []
    best = math.inf
    start = 1
    state = run_obj.resume(ckpt / "last.pt")
    if state is not None:
        history, best, start = state["history"], state["best_val"], state["epoch"] + 1
        log.info("resuming %s from epoch %d", out_dir, state["epoch"])
    elif init_model is not None:
        init = torch.load(init_model, map_location=run_obj.device, weights_only=False)
        run_obj.model.load_state_dict(init["model_state"])
    run_obj.build_cache(progress)
    for epoch in range(start, epochs + 1):
        t0 = time.perf_counter()
        lam = run_obj.damping.lam
        lr = run_obj.optimizer.param_groups[0]["lr"]
        train_loss = run_obj.train_epoch(epoch, progress)
        train_seconds = time.perf_counter() - t0
        val_loss, val_ploss = run_obj.validate()
        if run_obj.training.get("keep_epochs", False):
            # weights after this epoch's steps, before any restore: `pnp diagnose` evaluates them
            _save({"model": run_obj.model.state_dict(), "epoch": epoch},
                  ckpt / f"epoch-{epoch:04d}.pt")
        if not math.isfinite(val_loss):
            raise TrainingDiverged(f"the validation loss is {val_loss} after epoch {epoch}; "
                                   "the last good checkpoint is kept")
        if val_loss < best:
            best = val_loss
            _save({"model": run_obj.model.state_dict(), "epoch": epoch, "val_loss": val_loss},
                  ckpt / "best.pt")
        event = run_obj.damping.after_validation(val_loss, run_obj.model)
        run_obj.scheduler.step(val_loss)
        history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                        "val_ploss": val_ploss, "lam": lam, "lr": lr,
                        "seconds": time.perf_counter() - t0, "train_seconds": train_seconds,
                        "steps": run_obj.steps, "damping_event": event})
        log.info("epoch %d: train %.4g, val %.4g (P-loss %.4g), λ %.3g, lr %.2g, %.1f s",
                 epoch, train_loss, val_loss, val_ploss, lam, lr, history[-1]["seconds"])
        _save(run_obj.checkpoint_state(epoch, history, best), ckpt / "last.pt")
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return None
    return finish(run_obj, out_dir, history)


def finish(run_obj: Run, out_dir: Path, history: list) -> pd.DataFrame:
    """Write ``history.parquet`` and ``model.pt`` (the best weights) from the checkpoints."""
    best = torch.load(out_dir / "checkpoint" / "best.pt", map_location="cpu", weights_only=False)
    meta = {"provenance": run_obj.spec.provenance(), "run": run_obj.run,
            "mu": run_obj.mu, "lambda0": run_obj.lam0, "batch_size": run_obj.batch_size,
            "best_epoch": best["epoch"], "device": str(run_obj.device)}
    df = pd.DataFrame(history)
    write_table(df, out_dir / "history.parquet", HISTORY_FORMAT, meta)
    _save({"format": MODEL_FORMAT, "model_state": best["model"],
           "model_config": run_obj.model_config, "scaler": run_obj.scaler.state(), **meta},
          out_dir / "model.pt")
    return df


def load_model(path, device="cpu") -> tuple[Encoder, dict]:
    """A trained encoder (eval mode) and its ``model.pt`` record (scaler, run, provenance)."""
    state = torch.load(path, map_location=device, weights_only=False)
    if state.get("format") != MODEL_FORMAT:
        raise DataError(f"{path}: not a model file of format {MODEL_FORMAT}; retrain the run")
    model = Encoder(**state["model_config"]).to(device)
    model.load_state_dict(state["model_state"])
    return model.eval(), state


__all__ = ["Run", "train_run", "load_model", "resolve_run", "SignMomentum", "TrainingDiverged",
           "LOSSES", "RUN_DEFAULTS", "HISTORY_FORMAT", "MODEL_FORMAT"]
