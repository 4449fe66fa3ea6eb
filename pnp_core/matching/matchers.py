"""Per-sound matching by gradient descent ("DTFA": differentiable time–frequency analysis).

No network: for a target sound x* and an initial guess θ₀, the parameters are
optimised directly,

    ν ← Adam step on L(ν),   ν = h(θ) ∈ [−1, 1]^P (clamped to the box after each step),

where h is the **box** rescaling of the synthesizer's parameter space: log10 on
log-scaled columns, then min-max from the space's physical bounds to [−1, 1]
(:func:`box_scaler`). It does not depend on any dataset fold, so a user's own
sound is matched in the same space as the experiment's pairs.

Losses (``loss`` argument, all per pair, summed over the batch; because every
ν row belongs to one pair and Adam is element-wise, a batch of B pairs runs B
independent optimisations at once):

``jtfs``  ‖Φ(g(h⁻¹(ν))) − Φ(x*)‖² with Φ the spec's feature (JTFS by default)
``mss``   the multi-scale spectrogram distance (:mod:`pnp_core.features.mss`),
          mean over scales of ‖S_n(x) − S_n(x*)‖_F
``p``     ‖ν − ν*‖² (the oracle: knows θ*)
``pnp``   (ν − ν*)ᵀ (M₀ + λ·tr(M₀)/P·I) (ν − ν*), with M₀ = JᵀJ of the JTFS map at
          the **initial** point (:class:`pnp_core.metric.jacobian.JacobianComputer`),
          i.e. the quadratic model of the JTFS loss around the start, with the
          oracle's ν*; λ = ``pnp_damping``.

The score of a pair is its **normalised parameter error**

    err(ν) = ‖ν − ν*‖₂ / (2√P),

the RMS error as a fraction of each parameter's range (0 = exact, 1 = opposite
corners of the box). A pair *succeeds* when its final error is below the
tolerance; "iterations to tolerance" is the first iteration whose error is below
it (NaN if never). Seconds are the batch's wall time up to that iteration divided
by the batch size (amortised per pair, since the B pairs share each step); they
time the optimisation steps only (targets, Φ(x*) and M₀ are set up before).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pnp_core.params import Scaler

LOSSES = ("jtfs", "mss", "p", "pnp")
#: matchers of the DTFA experiment: a loss of :data:`LOSSES` with Adam, or ``jtfs_lm``, the
#: JTFS loss minimised by Levenberg–Marquardt (:func:`match_lm`)
MATCHERS = LOSSES + ("jtfs_lm",)


def box_scaler(space, kind: str = "logminmax") -> Scaler:
    """h: the min-max rescaling of the parameter space's own bounds to [−1, 1].

    ``kind`` ``logminmax`` (log10 on log-scaled columns first) or ``minmax``.
    """
    if kind not in ("minmax", "logminmax"):
        raise ValueError(f"matching needs a min-max rescaling, got {kind!r}")
    box = np.stack([space.low, space.high])
    return Scaler.fit(space, kind, box)


def param_error(nu: torch.Tensor, nu_star: torch.Tensor) -> torch.Tensor:
    """Normalised parameter error ‖ν − ν*‖₂/(2√P), (B, P) × 2 → (B,)."""
    P = nu.shape[-1]
    return torch.linalg.vector_norm(nu - nu_star, dim=-1) / (2.0 * math.sqrt(P))


@dataclass
class MatchResult:
    """Outcome of :func:`match` for B pairs over T iterations.

    Attributes
    ----------
    theta : ndarray (B, P) float64, final θ̂ in physical units
    nu : ndarray (B, P) float64, final ν̂
    loss : ndarray (T + 1, B) float64, loss before each step (row 0 = at the init) and final
    error : ndarray (T + 1, B) float64, normalised parameter error at the same points
        (NaN when no θ* was given)
    path : ndarray (T + 1, B, P) float64, ν along the way
    seconds : ndarray (T + 1,) float64, wall time elapsed at each point divided by the
        number of pairs that shared the steps (amortised per pair; 0 at the init)
    tolerance : float
    """

    theta: np.ndarray
    nu: np.ndarray
    loss: np.ndarray
    error: np.ndarray
    path: np.ndarray
    seconds: np.ndarray
    tolerance: float
    meta: dict = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return self.theta.shape[0]

    def iterations_to_tolerance(self) -> np.ndarray:
        """(B,) float: first iteration with error < tolerance (0 = already at the init), NaN if never."""
        below = self.error < self.tolerance
        first = np.argmax(below, axis=0).astype(np.float64)
        first[~below.any(axis=0)] = np.nan
        return first

    def seconds_to_tolerance(self) -> np.ndarray:
        """(B,) float: amortised seconds per pair to reach the tolerance, NaN if never."""
        it = self.iterations_to_tolerance()
        out = np.full(it.shape, np.nan)
        ok = np.isfinite(it)
        out[ok] = self.seconds[it[ok].astype(int)]
        return out

    @property
    def final_error(self) -> np.ndarray:
        return self.error[-1]

    @property
    def success(self) -> np.ndarray:
        return self.final_error < self.tolerance


class Objective:
    """The loss L(ν) of B pairs for one of :data:`LOSSES`.

    Parameters
    ----------
    loss : one of :data:`LOSSES`
    synth : Synth
    scaler : Scaler (ν ↔ θ)
    target : Tensor (B, N), the target sounds x*
    nu_star : Tensor (B, P), optional; the targets' ν* (required for ``p`` and ``pnp``)
    feature : Feature, optional; Φ of the ``jtfs`` loss (and of M₀ for ``pnp``)
    mss : Feature, optional; the MSS feature (default: paper FFT sizes ≤ N)
    nu0 : Tensor (B, P), optional; the initial points (for M₀ of ``pnp``)
    pnp_damping : float; λ of ``pnp``, relative to tr(M₀)/P
    """

    def __init__(self, loss, synth, scaler, target, *, nu_star=None, feature=None, mss=None,
                 nu0=None, pnp_damping: float = 1e-3) -> None:
        if loss not in LOSSES:
            raise ValueError(f"unknown matching loss {loss!r}; choose one of {LOSSES}")
        self.loss, self.synth, self.scaler = loss, synth, scaler
        self.target = target
        self.nu_star = nu_star
        if loss in ("p", "pnp") and nu_star is None:
            raise ValueError(f"the {loss!r} loss is an oracle: it needs the target parameters")
        if loss == "jtfs":
            if feature is None:
                raise ValueError("the 'jtfs' loss needs a feature Φ")
            self.feature = feature
            with torch.no_grad():
                self.target_feat = feature(target)
        elif loss == "mss":
            self.mss = mss if mss is not None else default_mss(synth.n_samples)
            with torch.no_grad():
                self.target_specs = [s.flatten(1) for s in self.mss.spectrograms(target)]
        elif loss == "pnp":
            if feature is None or nu0 is None:
                raise ValueError("the 'pnp' loss needs a feature Φ and the initial points")
            from pnp_core.metric.jacobian import JacobianComputer

            jc = JacobianComputer(synth, feature, scaler, method="jvp", dtype=torch.float64)
            J = jc.jacobian(scaler.inverse(nu0.detach().to(torch.float64)))
            M = (J.mT @ J)
            M = 0.5 * (M + M.mT)
            tr = torch.diagonal(M, dim1=-2, dim2=-1).sum(-1) / M.shape[-1]
            eye = torch.eye(M.shape[-1], dtype=M.dtype)
            self.M = (M + pnp_damping * tr[:, None, None] * eye).to(nu0.dtype)

    def __call__(self, nu: torch.Tensor) -> torch.Tensor:
        """Per-pair loss (B,) at ν (B, P)."""
        if self.loss == "p":
            return ((nu - self.nu_star) ** 2).sum(-1)
        if self.loss == "pnp":
            d = nu - self.nu_star
            return torch.einsum("bi,bij,bj->b", d, self.M, d)
        return self.audio_loss(self.synth(self.scaler.inverse(nu)))

    def audio_loss(self, x: torch.Tensor) -> torch.Tensor:
        """The perceptual loss (``jtfs`` or ``mss``) of sounds x (B, N) to the targets, (B,)."""
        if self.loss == "jtfs":
            return ((self.feature(x) - self.target_feat) ** 2).sum(-1)
        if self.loss == "mss":
            specs = [s.flatten(1) for s in self.mss.spectrograms(x)]
            return torch.stack([torch.linalg.vector_norm(a - b, dim=-1)
                                for a, b in zip(specs, self.target_specs)]).mean(0)
        raise ValueError(f"the {self.loss!r} loss does not compare sounds")


def default_mss(n_samples: int):
    """The paper's MSS (FFT sizes 2048 … 64, hop n/4) restricted to sizes ≤ N."""
    from pnp_core.features import get_feature
    from pnp_core.features.mss import PAPER_N_FFTS

    return get_feature("mss", n_samples=n_samples,
                       n_ffts=[n for n in PAPER_N_FFTS if n <= n_samples])


def match(objective: Objective, nu0: torch.Tensor, *, steps: int, lr: float,
          nu_star: torch.Tensor | None = None, tolerance: float = 0.01,
          free=None, lr_end: float = 0.1, progress: bool = False,
          desc: str = "matching") -> MatchResult:
    """Adam on ν from ``nu0`` for ``steps`` iterations (batched over pairs).

    Parameters
    ----------
    objective : :class:`Objective` (per-pair loss (B,) of ν (B, P))
    nu0 : Tensor (B, P), initial points in [−1, 1]
    steps : number of Adam steps T
    lr : Adam learning rate at the first step (ν units per step, roughly)
    lr_end : the learning rate decays geometrically to ``lr · lr_end`` at the last step
        (1 = constant); without decay Adam keeps hopping around the minimum at a
        distance of about ``lr``
    nu_star : Tensor (B, P), optional; targets' ν*, for the error traces
    tolerance : success threshold on the normalised parameter error
    free : bool array (P,), optional; only these columns move (the others stay at ν₀),
        e.g. to draw paths on a 2-D slice of the loss landscape
    progress : show a tqdm bar over iterations

    Returns
    -------
    MatchResult
    """
    from tqdm.auto import tqdm

    nu0 = nu0.detach()
    B, P = nu0.shape
    mask = torch.ones(P, dtype=nu0.dtype) if free is None else \
        torch.as_tensor(np.asarray(free, dtype=bool), dtype=nu0.dtype)
    nu = nu0.clone().requires_grad_(True)
    opt = torch.optim.Adam([nu], lr=lr)
    gamma = float(lr_end) ** (1.0 / max(steps - 1, 1))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma)
    losses, path, secs = [], [nu0.clone()], [0.0]
    elapsed = 0.0
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        per_pair = objective(nu)
        per_pair.sum().backward()
        nu.grad.mul_(mask)
        opt.step()
        sched.step()
        with torch.no_grad():
            nu.clamp_(-1.0, 1.0)
            # frozen columns stay exactly at ν₀ (Adam's momentum is zero there anyway)
            nu.copy_(torch.where(mask.bool(), nu, nu0))
        elapsed += time.perf_counter() - t0
        losses.append(per_pair.detach().clone())
        path.append(nu.detach().clone())
        secs.append(elapsed)
    with torch.no_grad():
        losses.append(objective(nu.detach()))
    path_t = torch.stack(path)
    if nu_star is not None:
        error = torch.stack([param_error(p, nu_star) for p in path_t]).double().numpy()
    else:
        error = np.full((steps + 1, B), np.nan)
    nu_hat = nu.detach().to(torch.float64)
    return MatchResult(
        theta=objective.scaler.inverse(nu_hat).numpy(), nu=nu_hat.numpy(),
        loss=torch.stack(losses).double().numpy(), error=error,
        path=path_t.double().numpy(), seconds=np.asarray(secs) / B, tolerance=float(tolerance),
        meta={"steps": int(steps), "lr": float(lr), "lr_end": float(lr_end), "optimizer": "adam",
              "loss": objective.loss})


def match_lm(objective: Objective, nu0: torch.Tensor, *, steps: int,
             nu_star: torch.Tensor | None = None, tolerance: float = 0.01,
             damping: float = 1e-2, progress: bool = False,
             desc: str = "matching (LM)") -> MatchResult:
    """Levenberg–Marquardt on the JTFS loss ‖r(ν)‖², r = Φ(g(h⁻¹(ν))) − Φ(x*), from ``nu0``.

    Why: Adam needs ~100 steps of a reverse-mode pass through the JTFS (~10 forwards
    each on a CPU); with P ≤ 5 parameters, the forward-mode Jacobian J (B, K, P) of the
    Jacobian stage (:class:`pnp_core.metric.jacobian.JacobianComputer`, P tangents riding one
    primal) costs a few forwards and gives the Gauss–Newton model r + JΔ of the loss,
    whose minimiser converges in tens of steps near a minimum.

    Each iteration, per pair: solve (JᵀJ + λ(diag JᵀJ + 10⁻⁶ tr(JᵀJ)/P · I)) Δ = −Jᵀr,
    try ν' = clamp(ν + Δ, −1, 1); accept if the loss falls (λ ← λ/3, and the next
    iteration recomputes J there), else keep ν and raise λ ← 4λ (J is kept: a rejected
    step costs one forward). ``damping`` is λ at the start. Pairs whose step no longer
    changes ν (below 10⁻⁷) stop moving. Same :class:`MatchResult` as :func:`match`; an
    "iteration" is one LM trial.
    """
    from tqdm.auto import tqdm

    from pnp_core.metric.jacobian import JacobianComputer

    if objective.loss != "jtfs":
        raise ValueError(f"LM matching minimises the 'jtfs' loss, not {objective.loss!r}")
    dtype = nu0.dtype
    nu = nu0.detach().clone()
    B, P = nu.shape
    jc = JacobianComputer(objective.synth, objective.feature, objective.scaler, method="jvp",
                          dtype=dtype)
    target = objective.target_feat.to(dtype)
    eye = torch.eye(P, dtype=torch.float64)
    lam = torch.full((B,), float(damping), dtype=torch.float64)
    A = torch.zeros(B, P, P, dtype=torch.float64)
    g = torch.zeros(B, P, dtype=torch.float64)
    stale = torch.ones(B, dtype=torch.bool)       # J to (re)compute at ν
    done = torch.zeros(B, dtype=torch.bool)
    with torch.no_grad():
        cost = objective(nu).double()
    losses, path, secs = [cost.clone()], [nu.clone()], [0.0]
    elapsed = 0.0
    for _ in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        t0 = time.perf_counter()
        with torch.no_grad():
            idx = torch.nonzero(stale & ~done).flatten()
            if len(idx):
                theta = objective.scaler.inverse(nu[idx].double())
                J = jc.jacobian(theta).double()                          # (b, K, P)
                r = (objective.feature(objective.synth(theta.to(dtype))) - target[idx]).double()
                A[idx] = J.mT @ J
                g[idx] = (J.mT @ r[..., None])[..., 0]
                stale[idx] = False
            diag = torch.diagonal(A, dim1=-2, dim2=-1)
            reg = diag[..., None] * eye + 1e-6 * diag.sum(-1)[:, None, None] / P * eye
            step = torch.linalg.solve(A + lam[:, None, None] * reg, -g[..., None])[..., 0]
            trial = (nu.double() + step).clamp(-1.0, 1.0).to(dtype)
            moves = ((trial - nu).abs().amax(-1) > 1e-7) & ~done
            done |= ~moves
            new_cost = cost.clone()
            if moves.any():
                new_cost[moves] = objective_subset(objective, trial, moves).double()
            better = moves & (new_cost < cost)
            nu = torch.where(better[:, None], trial, nu)
            cost = torch.where(better, new_cost, cost)
            lam = torch.where(better, lam / 3.0, torch.where(moves, lam * 4.0, lam))
            stale |= better
        elapsed += time.perf_counter() - t0
        losses.append(cost.clone())
        path.append(nu.clone())
        secs.append(elapsed)
    path_t = torch.stack(path)
    if nu_star is not None:
        error = torch.stack([param_error(q, nu_star) for q in path_t]).double().numpy()
    else:
        error = np.full((steps + 1, B), np.nan)
    nu_hat = nu.to(torch.float64)
    return MatchResult(
        theta=objective.scaler.inverse(nu_hat).numpy(), nu=nu_hat.numpy(),
        loss=torch.stack(losses).numpy(), error=error, path=path_t.double().numpy(),
        seconds=np.asarray(secs) / B, tolerance=float(tolerance),
        meta={"steps": int(steps), "damping": float(damping), "optimizer": "lm",
              "loss": objective.loss})


def objective_subset(objective: Objective, nu: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The ``jtfs`` loss of the pairs ``rows`` (bool (B,)) only, at ν[rows]."""
    x = objective.synth(objective.scaler.inverse(nu[rows]))
    return ((objective.feature(x) - objective.target_feat[rows]) ** 2).sum(-1)


def match_pairs(spec, theta_target, theta_init, loss: str, *, steps: int, lr: float,
                tolerance: float = 0.01, batch_size: int = 16, pnp_damping: float = 1e-3,
                lr_end: float = 0.1,
                dtype=torch.float32, progress: bool = False, free=None) -> MatchResult:
    """Match B (target, init) pairs, ``batch_size`` at a time, and concatenate.

    Parameters
    ----------
    spec : :class:`pnp_core.spec.RunSpec` (synth; its feature is the ``jtfs`` loss's Φ)
    theta_target, theta_init : array (B, P) float64, physical units
    loss : one of :data:`MATCHERS` (``jtfs_lm``: the ``jtfs`` loss by :func:`match_lm`,
        ``steps`` LM trials; ``lr`` and ``lr_end`` unused)
    """
    lm = loss == "jtfs_lm"
    loss = "jtfs" if lm else loss
    scaler = box_scaler(spec.space)
    tt = torch.as_tensor(np.array(theta_target, dtype=np.float64))
    ti = torch.as_tensor(np.array(theta_init, dtype=np.float64))
    nu_star_all = scaler.forward(tt).to(dtype)
    nu0_all = scaler.forward(ti).clamp(-1, 1).to(dtype)
    feature = spec.feature if loss in ("jtfs", "pnp") else None
    mss = default_mss(spec.synth.n_samples) if loss == "mss" else None
    parts = []
    for start in range(0, len(tt), batch_size):
        sl = slice(start, start + batch_size)
        nu_star, nu0 = nu_star_all[sl], nu0_all[sl]
        with torch.no_grad():
            target = spec.synth(scaler.inverse(nu_star))
        obj = Objective(loss, spec.synth, scaler, target, nu_star=nu_star, feature=feature,
                        mss=mss, nu0=nu0, pnp_damping=pnp_damping)
        desc = f"{spec.name}/{'jtfs_lm' if lm else loss} pairs {start}–{start + len(nu0) - 1}"
        if lm:
            parts.append(match_lm(obj, nu0, steps=steps, nu_star=nu_star, tolerance=tolerance,
                                  progress=progress, desc=desc))
        else:
            parts.append(match(obj, nu0, steps=steps, lr=lr, nu_star=nu_star,
                               tolerance=tolerance, progress=progress, free=free,
                               lr_end=lr_end, desc=desc))
    return concat_results(parts)


def concat_results(parts: list[MatchResult]) -> MatchResult:
    """Concatenate batches along the pair axis; seconds (amortised per pair) are the
    mean over batches."""
    secs = np.mean([p.seconds for p in parts], axis=0)
    return MatchResult(
        theta=np.concatenate([p.theta for p in parts]), nu=np.concatenate([p.nu for p in parts]),
        loss=np.concatenate([p.loss for p in parts], axis=1),
        error=np.concatenate([p.error for p in parts], axis=1),
        path=np.concatenate([p.path for p in parts], axis=1), seconds=secs,
        tolerance=parts[0].tolerance, meta=parts[0].meta)


__all__ = ["LOSSES", "MATCHERS", "box_scaler", "param_error", "MatchResult", "Objective", "match",
           "match_lm", "objective_subset",
           "match_pairs", "default_mss", "concat_results"]
