"""Damping schedules λ of the PNP loss ½ Δᵀ(μM + λD)Δ (Levenberg–Marquardt).

============= ==============================================================================
``constant``  λ fixed (λ = 0 is the paper's undamped PNP, script ``08_*_raw``)
``scheduled`` λ ← λ·factor after every validation (a geometric decay)
``adaptive``  the Levenberg–Marquardt rule: after each validation, if the validation loss
              is below the best so far, λ ← λ·accelerator (default 0.05) and the weights
              are recorded as the best; otherwise λ ← min(λ·brake, max_lambda), max_lambda
              = λ₀ by default (the reference's threshold)
============= ==============================================================================

``restore_best`` (any schedule, and :mod:`pnp_core.training.train` gives it to every loss alike):
when a validation does not improve on the best so far, the best weights are loaded back.
Off by default: the reference's revert was a no-op, and with brake = 1 a restore repeats
the same epoch from the same weights and λ (measured: docs/training.md).

The validation loss fed to the rule is the **undamped** PNP (λ = 0), as in the paper.

λ₀ (:func:`initial_lambda`) comes from the **train** fold's eigenvalues and lives in the
units of the scaled metric μM:

``max_eigenvalue`` (default)
    λ₀ = μ · max_n max_i eig_i(M_n): the damping term starts as large as the stiffest
    direction of the stiffest sample, so the first epochs behave like (scaled) P-loss
    gradient descent and λ then decays towards Gauss–Newton on improvements.
``median_max_eigenvalue``
    λ₀ = μ · median_n max_i eig_i(M_n): the stiffest direction of a *typical* sample. With
    μ = 2/median tr M this is ≈ 2, the scale of a typical μM, instead of the worst
    sample's (hundreds to thousands of times larger; docs/training.md).
``max_eigenvalue_squared``
    λ₀ = μ · (max_n max_i eig_i(M_n))², the reference's rule (its ``make_M_mean``
    returns ``lambda_max**2``; it also took it from the first fold seen, the validation
    fold). Kept for comparison; squaring mixes units (λ then scales with M²).

Fixed bugs of the reference: the "revert to best params" really restores the weights
(the reference rebound a method and restored nothing); the first validation records a
best value like any other (the reference's sanity-check call decayed λ without one).
"""

from __future__ import annotations

import copy
import math

import numpy as np

SCHEDULES = ("constant", "scheduled", "adaptive")
LAMBDA0_RULES = ("max_eigenvalue", "median_max_eigenvalue", "max_eigenvalue_squared")


def initial_lambda(eigenvalues: np.ndarray, mu: float, rule: str = "max_eigenvalue") -> float:
    """λ₀ from the train fold's eigenvalues (n, P) of M (unscaled) and the scale μ."""
    eig = np.asarray(eigenvalues, dtype=np.float64)
    if eig.size == 0:
        raise ValueError("cannot set λ₀: the train fold has no metrics")
    top = float(np.max(np.abs(eig)))
    if rule == "max_eigenvalue":
        return mu * top
    if rule == "median_max_eigenvalue":
        return mu * float(np.median(np.max(np.abs(eig), axis=-1)))
    if rule == "max_eigenvalue_squared":
        return mu * top ** 2
    raise ValueError(f"unknown λ₀ rule {rule!r}; choose one of {LAMBDA0_RULES}")


class Damping:
    """The λ of one run and its update after each validation.

    Parameters
    ----------
    schedule : one of :data:`SCHEDULES`
    lam0 : float ≥ 0, initial λ
    factor : float, the ``scheduled`` decay per validation
    accelerator, brake : floats, the ``adaptive`` factors on improvement / no improvement
    max_lambda : float, the ``adaptive`` cap on λ after a brake (None: λ₀, the reference's
        threshold)
    min_lambda : float ≥ 0, floor of λ for the ``scheduled`` and ``adaptive`` decays (0: none)
    restore_best : bool, ``adaptive``: load the best weights back on no improvement

    The state (λ, best loss, best weights) round-trips through
    :meth:`state_dict` / :meth:`load_state_dict` for checkpoints.
    """

    def __init__(self, schedule: str = "constant", lam0: float = 0.0, factor: float = 0.05,
                 accelerator: float = 0.05, brake: float = 1.0, max_lambda: float | None = None,
                 min_lambda: float = 0.0, restore_best: bool = True) -> None:
        if schedule not in SCHEDULES:
            raise ValueError(f"unknown damping schedule {schedule!r}; choose one of {SCHEDULES}")
        if lam0 < 0 or not math.isfinite(lam0):
            raise ValueError(f"λ₀ must be finite and ≥ 0, got {lam0}")
        self.schedule, self.lam = schedule, float(lam0)
        self.factor, self.accelerator, self.brake = float(factor), float(accelerator), float(brake)
        self.max_lambda = float(lam0 if max_lambda is None else max_lambda)
        self.min_lambda, self.restore_best = float(min_lambda), bool(restore_best)
        self.best_loss = math.inf
        self.best_state: dict | None = None

    def after_validation(self, val_loss: float, model) -> str:
        """Update λ after a validation with loss ``val_loss`` (the run's undamped objective).

        Returns what happened: ``'held'`` (constant), ``'decayed'`` (scheduled),
        ``'improved'`` or ``'braked'`` (adaptive), or ``'restored'`` (no improvement, and the
        best weights were loaded back: ``restore_best``, any schedule, so that every loss
        gets the same treatment).
        """
        improved = val_loss < self.best_loss
        if improved:
            self.best_loss = float(val_loss)
            if self.restore_best:
                self.best_state = copy.deepcopy({k: v.detach().clone()
                                                 for k, v in model.state_dict().items()})
        if self.schedule == "scheduled":
            self.lam = max(self.lam * self.factor, self.min_lambda)
        elif self.schedule == "adaptive":
            self.lam = (max(self.lam * self.accelerator, self.min_lambda) if improved
                        else min(self.lam * self.brake, self.max_lambda))
        if not improved and self.restore_best and self.best_state is not None:
            model.load_state_dict(self.best_state)
            return "restored"
        if self.schedule == "constant":
            return "held"
        if self.schedule == "scheduled":
            return "decayed"
        return "improved" if improved else "braked"

    def state_dict(self) -> dict:
        return {"schedule": self.schedule, "lam": self.lam, "best_loss": self.best_loss,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        if state["schedule"] != self.schedule:
            raise ValueError(f"checkpoint damping schedule {state['schedule']!r} differs from "
                             f"{self.schedule!r}")
        self.lam, self.best_loss = float(state["lam"]), float(state["best_loss"])
        self.best_state = state["best_state"]


__all__ = ["Damping", "initial_lambda", "SCHEDULES", "LAMBDA0_RULES"]
