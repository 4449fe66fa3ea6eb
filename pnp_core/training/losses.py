"""Training losses: P-loss, PNP (perceptual–neural–physical) and DDSP spectral losses.

Every loss is computed **per sample and then averaged over the batch**, so its
value and gradient do not depend on the batch size (the reference's MSS loss
took one Frobenius norm over the whole batch).

ν = h(θ) is the network's target space (the run's rescaling, see
:mod:`pnp_core.params`); ν̂ is the network output, Δ = ν̂ − ν.

========== ========================================================================
P-loss     mean_b (1/P)‖Δ_b‖²            (``F.mse_loss`` of the reference)
PNP        ½ mean_b Δ_bᵀ (μ M_b + λ D_b) Δ_b, in float64
DDSP       mean_b d(g(h⁻¹(ν̂_b)), x_b)   d = the feature's per-sample distance
========== ========================================================================

PNP: M_b = J_bᵀJ_b is the metric of sample b in the run's rescaling (from the
Jacobian stage, re-expressed by the chain rule with
:func:`pnp_core.metric.file.metric_in_rescaling`). μ rescales M (see
:func:`auto_mu`); λ is the damping (:mod:`pnp_core.training.damping`) and D the damping
matrix, taken on the *scaled* metric μM:

``identity``  D = I
``diag``      D_b = diag(μ M_b)        (Marquardt)
``mean``      D = mean over the train fold of μ M

With λ = 0 and μ = 1, PNP is the second-order (Gauss–Newton) model of
½‖Φ(g(h⁻¹(ν̂))) − Φ(g(h⁻¹(ν)))‖² around ν̂ = ν; the reference's ReLU on the
quadratic form is not needed since μM + λD is positive semi-definite.
"""

from __future__ import annotations

import numpy as np
import torch

DAMPING_MATRICES = ("identity", "diag", "mean")
#: ``squared``: ½ Δᵀ(μM + λD)Δ, the paper's PNP (quadratic model of ½‖ΔΦ‖²);
#: ``norm``: √(Δᵀ(μM + λD)Δ), the first-order model of ‖ΔΦ‖₂ itself (the distance the
#: DDSP-JTFS loss and the evaluation take); see docs/training.md for why
PNP_FORMS = ("squared", "norm")
#: added under the square root of the ``norm`` form so its gradient is finite at Δ = 0
NORM_EPS = 1e-12


def p_loss(nu_hat: torch.Tensor, nu: torch.Tensor) -> torch.Tensor:
    """Parameter loss: mean over batch and parameters of (ν̂ − ν)².

    Parameters
    ----------
    nu_hat, nu : Tensor (B, P)

    Returns
    -------
    Tensor () of the dtype of ``nu_hat``
    """
    return ((nu_hat - nu.to(nu_hat.dtype)) ** 2).mean(dim=-1).mean()


def quadratic_form(delta: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Per-sample Δ_bᵀ A_b Δ_b for Δ (B, P) and A (B, P, P) or (P, P); returns (B,)."""
    if A.ndim == 2:
        return torch.einsum("bi,ij,bj->b", delta, A, delta)
    return torch.einsum("bi,bij,bj->b", delta, A, delta)


def pnp_loss(nu_hat: torch.Tensor, nu: torch.Tensor, M: torch.Tensor, lam: float = 0.0,
             mu: float = 1.0, damping_matrix: str = "identity",
             mean_metric: torch.Tensor | None = None, form: str = "squared",
             reduce: bool = True) -> torch.Tensor:
    """The PNP loss ½ mean_b Δ_bᵀ (μ M_b + λ D_b) Δ_b (``form='squared'``), in float64.

    ``form='norm'`` gives mean_b √(Δ_bᵀ (μ M_b + λ D_b) Δ_b + ε) instead: the linear model
    ‖J_b Δ_b‖ of the per-sample distance ‖Φ(g(θ̂_b)) − Φ(g(θ_b))‖₂ (scaled by √μ), whose
    per-sample gradient grows like √M rather than like M.

    Parameters
    ----------
    nu_hat : Tensor (B, P), network output (any float dtype; the gradient flows back to it)
    nu : Tensor (B, P), targets
    M : Tensor (B, P, P), the metrics of the batch in the run's rescaling (float64)
    lam : float ≥ 0, damping λ
    mu : float > 0, scale of M
    damping_matrix : one of :data:`DAMPING_MATRICES`
    mean_metric : Tensor (P, P), mean of M over the train fold (needed for ``'mean'``;
        unscaled: μ is applied here)
    form : one of :data:`PNP_FORMS`
    reduce : False returns the per-sample values (B,) instead of their mean

    Returns
    -------
    Tensor () float64 (or (B,) with ``reduce=False``)
    """
    if form not in PNP_FORMS:
        raise ValueError(f"unknown PNP form {form!r}; choose one of {PNP_FORMS}")
    delta = nu_hat.to(torch.float64) - nu.to(device=nu_hat.device, dtype=torch.float64)
    M = M.to(device=nu_hat.device, dtype=torch.float64)
    q = mu * quadratic_form(delta, M)
    if lam:
        if damping_matrix == "identity":
            q = q + lam * (delta * delta).sum(dim=-1)
        elif damping_matrix == "diag":
            q = q + lam * mu * (torch.diagonal(M, dim1=-2, dim2=-1) * delta * delta).sum(dim=-1)
        elif damping_matrix == "mean":
            if mean_metric is None:
                raise ValueError("damping matrix 'mean' needs mean_metric (mean M of the train fold)")
            D = mean_metric.to(device=nu_hat.device, dtype=torch.float64)
            q = q + lam * mu * quadratic_form(delta, D)
        else:
            raise ValueError(f"unknown damping matrix {damping_matrix!r}; choose one of "
                             f"{DAMPING_MATRICES}")
    per_sample = 0.5 * q if form == "squared" else torch.sqrt(q.clamp_min(0.0) + NORM_EPS)
    return per_sample.mean() if reduce else per_sample


def auto_mu(eigenvalues: np.ndarray) -> float:
    """μ = 2 / median_n tr(M_n), from the train fold's eigenvalues (n, P).

    Why: for an isotropic error Δ (E ΔΔᵀ = σ²I), ½ μ E[ΔᵀMΔ] = ½ μ σ² tr(M) and the
    P-loss is (1/P) E‖Δ‖² = σ²; μ = 2/tr(M) makes them equal. The median over the
    train fold (rather than the mean) keeps a few very sensitive samples (tr(M)
    spans orders of magnitude) from shrinking PNP for all the others. The paper's
    fixed μ = 1e−10 only fits its own feature scale.
    """
    trace = np.asarray(eigenvalues, dtype=np.float64).sum(axis=-1)
    med = float(np.median(trace)) if trace.size else float("nan")
    if not np.isfinite(med) or med <= 0:
        raise ValueError(f"cannot set μ automatically: median trace of M is {med!r}")
    return 2.0 / med


def ddsp_loss(nu_hat: torch.Tensor, x_target: torch.Tensor, synth, scaler, feature,
              target_features: torch.Tensor | None = None) -> torch.Tensor:
    """DDSP loss: mean_b d(g(h⁻¹(ν̂_b)), x_b), backpropagated through g and Φ.

    d is the feature's per-sample distance (:meth:`pnp_core.features.Feature.distance`:
    ‖Φ(x̂) − Φ(x)‖₂ for JTFS; for MSS the mean over FFT sizes of the per-sample
    Frobenius norms, the reference's ``specl2`` made per-sample).

    θ̂ = h⁻¹(ν̂) is clamped to the synthesizer's parameter ranges before synthesis,
    since an unbounded head (``raw``/``log`` rescalings) can otherwise ask the
    synthesizer for e.g. a negative decay and return NaN; the clamp's gradient is
    zero outside the range, which pushes nothing further out.

    Parameters
    ----------
    nu_hat : Tensor (B, P)
    x_target : Tensor (B, N), the target sounds g(θ) (ignored if ``target_features`` given)
    synth, scaler, feature : g, h and Φ of the run
    target_features : Tensor (B, K), optional precomputed Φ(x) (JTFS only: its
        distance is the Euclidean norm of the feature difference)

    Returns
    -------
    Tensor () of the dtype of ``nu_hat``
    """
    theta_hat = clamp_theta(scaler.inverse(nu_hat), synth.space)
    x_hat = synth(theta_hat)
    if target_features is not None:
        d = torch.linalg.vector_norm(feature(x_hat) - target_features.to(x_hat.dtype), dim=-1)
    else:
        d = feature.distance(x_hat, x_target.to(x_hat.dtype))
    return d.mean()


def clamp_theta(theta: torch.Tensor, space) -> torch.Tensor:
    """θ (B, P) clamped column-wise into the space's [low, high]."""
    lo = torch.as_tensor(space.low, dtype=theta.dtype, device=theta.device)
    hi = torch.as_tensor(space.high, dtype=theta.dtype, device=theta.device)
    return torch.maximum(torch.minimum(theta, hi), lo)


__all__ = ["p_loss", "pnp_loss", "PNP_FORMS", "ddsp_loss", "auto_mu", "quadratic_form", "clamp_theta",
           "DAMPING_MATRICES"]
