"""Batched forward-mode Jacobians J = ∂Φ(g(h⁻¹(ν)))/∂ν and metrics M = JᵀJ.

For a batch of B samples with physical parameters θ (B, P), the forward map is

    F(ν) = Φ(g(h⁻¹(ν))),   ν = h(θ) ∈ R^P,   F(ν) ∈ R^K,

and its Jacobian J (K × P) is taken **at ν_n = h(θ_n)** (the reference's
min-max script evaluated it at the unscaled θ, a bug: see docs/paper.md).
Forward mode is used because P (3 or 5) ≪ K (~10⁴): the P columns of J are P
Jacobian–vector products with the basis tangents e_1 … e_P.

Batching relies on the synthesizer and feature acting **row-wise** on their
(B, ·) inputs (the :class:`~pnp_core.synth.Synth` and
:class:`~pnp_core.features.Feature` interfaces promise it): the tangent e_p
broadcast over the batch then yields column p of every sample's J in one pass.

The chain rule splits the work in two (:class:`JacobianComputer`):

1. **synthesizer tangents** ẋ_p = ∂g(h⁻¹(ν))/∂ν_p, (P, B, N), with x = g(θ):
   the synthesizer's own :meth:`~pnp_core.synth.Synth.tangents` (analytic for
   the FTM drum, autodiff by default), times the rescaling's diagonal dθ/dν.
   An override is checked against the synthesizer's output on first use and
   falls back to autodiff (with a warning) if they disagree.
2. **feature tangents** J[:, :, p] = ∂Φ(x)·ẋ_p, by the feature's
   :meth:`~pnp_core.features.Feature.jacobian_columns`.

Two strategies for step 2 (config ``jacobian.method``):

``jvp``
    a Python loop of P ``torch.func.jvp`` calls. Peak memory ≈ one forward
    with one tangent; the primal Φ(x) is recomputed P times.
``vmap``
    ``torch.func.vmap`` of ``jvp`` over the P tangents (what ``jacfwd``
    does): the primal is computed once, the P tangents travel together, so
    memory grows ≈ (P + 1)/2 × that of ``jvp``. ``chunk`` tangents at a time
    bound it (``vmap(chunk_size=…)``).
``auto``
    measures both on the job's first batch (after a warm-up jvp, so that
    filter caches exist) and keeps the faster one whose *estimated* peak memory
    fits ``memory_budget_mb``; the larger vmap chunk that fits is tried.

:func:`jacobian_jvp` / :func:`jacobian_vmap` differentiate the whole map
F = Φ∘g∘h⁻¹ by autodiff; they are the reference the split is tested against.

M = JᵀJ and its eigenvalues are always formed in float64 (M spans ~6 orders
of magnitude). Eigenvalues come from ``torch.linalg.eigvalsh`` and are stored
in **ascending** order (λ_1 ≤ … ≤ λ_P). Metrics for another rescaling follow
from the chain rule, :func:`pnp_core.params.reparametrise_metric`.
"""

from __future__ import annotations

import logging
import re
import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from pnp_core.errors import DataError
from pnp_core.params import Scaler

log = logging.getLogger(__name__)

METHODS = ("auto", "jvp", "vmap")


class NonFiniteJacobianError(DataError, FloatingPointError):
    """J or M holds NaN/Inf; ``ids`` lists the offending sample ids."""

    def __init__(self, what: str, ids: Sequence[int]) -> None:
        self.ids = [int(i) for i in ids]
        shown = ", ".join(map(str, self.ids[:50])) + (" …" if len(self.ids) > 50 else "")
        super().__init__(
            f"non-finite values (NaN/Inf) in {what} of {len(self.ids)} sample(s), ids: {shown}. "
            "Check the synthesizer at these parameters (e.g. a mode at Nyquist, a silent "
            "sound, |z| at 0 in the feature); no output was written."
        )


def forward_map(synth, feature, scaler: Scaler) -> Callable[[torch.Tensor], torch.Tensor]:
    """F: ν (B, P) → Φ(g(h⁻¹(ν))) (B, K), in the dtype/device of ν.

    Pure torch ops throughout, so ``torch.func.jvp``/``vmap`` work through it.
    """

    def F(nu: torch.Tensor) -> torch.Tensor:
        return feature(synth(scaler.inverse(nu)))

    return F


def _basis(nu: torch.Tensor) -> torch.Tensor:
    """The P tangents e_p broadcast over the batch: (P, B, P), like ν."""
    B, P = nu.shape
    return torch.eye(P, dtype=nu.dtype, device=nu.device).unsqueeze(1).expand(P, B, P)


def jacobian_jvp(F: Callable, nu: torch.Tensor) -> torch.Tensor:
    """J by a loop of P forward-mode products.

    Parameters
    ----------
    F : callable, (B, P) → (B, K), row-wise
    nu : Tensor (B, P), float

    Returns
    -------
    J : Tensor (B, K, P), dtype and device of ``F(nu)``
    """
    cols = [torch.func.jvp(F, (nu,), (t.contiguous(),))[1] for t in _basis(nu)]
    return torch.stack(cols, dim=-1)


def jacobian_vmap(F: Callable, nu: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """J with the P tangents vmapped (jacfwd-style), ``chunk`` tangents at a time.

    Parameters
    ----------
    F : callable, (B, P) → (B, K), row-wise
    nu : Tensor (B, P), float
    chunk : int, optional
        Tangents per vmapped pass (None = all P at once).

    Returns
    -------
    J : Tensor (B, K, P)
    """

    def push(t):
        return torch.func.jvp(F, (nu,), (t,))[1]

    P = nu.shape[-1]
    chunk = None if chunk is None or chunk >= P else int(chunk)
    return torch.func.vmap(push, chunk_size=chunk)(_basis(nu)).permute(1, 2, 0)


def synth_tangents(synth, scaler: Scaler, nu: torch.Tensor, *,
                   analytic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """x = g(h⁻¹(ν)) and ẋ_p = ∂x/∂ν_p.

    The synthesizer's :meth:`~pnp_core.synth.Synth.tangents` give ∂x/∂θ (its own
    analytic form when it has one, else autodiff); the rescaling is diagonal, so
    ∂x/∂ν_p = ∂x/∂θ_p · dθ_p/dν_p.

    Parameters
    ----------
    synth, scaler : the synthesizer g and the rescaling h
    nu : Tensor (B, P)
    analytic : use the synthesizer's own :meth:`tangents` (False: autodiff, the base
        class's implementation)

    Returns
    -------
    x : Tensor (B, N)
    dx : Tensor (P, B, N)
    """
    from pnp_core.synth import Synth

    theta = scaler.inverse(nu)
    x, dx_dtheta = synth.tangents(theta) if analytic else Synth.tangents(synth, theta)
    S = scaler.jacobian_diag(theta)                    # dθ/dν (B, P)
    return x, (dx_dtheta * S.T.unsqueeze(-1)).contiguous()


def metric_from_jacobian(J: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """M = JᵀJ in float64 (exactly symmetric) and its eigenvalues, ascending.

    Parameters
    ----------
    J : Tensor (B, K, P)

    Returns
    -------
    M : Tensor (B, P, P) float64, same device as J
    eig : Tensor (B, P) float64, λ_1 ≤ … ≤ λ_P
    """
    J = J.to(torch.float64)
    M = J.mT @ J
    M = 0.5 * (M + M.mT)  # make symmetry exact: eigvalsh reads one triangle only
    return M, torch.linalg.eigvalsh(M)


def _nonfinite_rows(x: torch.Tensor) -> np.ndarray:
    return (~torch.isfinite(x.reshape(x.shape[0], -1)).all(dim=-1)).cpu().numpy()


def check_finite(what: str, x: torch.Tensor, ids) -> None:
    """Raise :class:`NonFiniteJacobianError` naming the ids of rows of ``x`` (B, …) with NaN/Inf."""
    bad = _nonfinite_rows(x)
    if bad.any():
        raise NonFiniteJacobianError(what, np.asarray(ids)[bad])


# ----------------------------------------------------------------------------------------------
# peak memory of a code block (for the auto method and the benchmark)


def proc_status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (e.g. VmHWM, VmRSS); None where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            m = re.search(rf"{field}:\s+(\d+)\s+kB", fh.read())
        return int(m.group(1)) if m else None
    except OSError:
        return None


def _vm_hwm_kb() -> int | None:
    return proc_status_kb("VmHWM")


def _vm_rss_kb() -> int | None:
    return proc_status_kb("VmRSS")


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux ≥ 4.0: reset VmHWM to the current RSS
        return True
    except OSError:
        return False


class PeakMemory:
    """Peak memory (MB) allocated inside a ``with`` block, above what was held before.

    CUDA: ``torch.cuda.max_memory_allocated`` (reset on entry). CPU: the
    process's resident high-water mark VmHWM, reset on entry through
    ``/proc/self/clear_refs`` (Linux); elsewhere ``ru_maxrss`` growth, which
    is only a lower bound (the high-water mark cannot be reset there).
    ``mb`` is None when nothing could be measured.
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.mb: float | None = None

    def __enter__(self) -> "PeakMemory":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self._mode = "cuda"
        elif _reset_hwm() and _vm_rss_kb() is not None:
            self._base = _vm_rss_kb()
            self._mode = "hwm"
        else:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self._mode = "rusage"
        return self

    def __exit__(self, *exc) -> None:
        if self._mode == "cuda":
            torch.cuda.synchronize(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self._base) / 2**20
        elif self._mode == "hwm":
            peak = _vm_hwm_kb()
            self.mb = None if peak is None else max(peak - self._base, 0) / 1024
        else:
            self.mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self._base, 0) / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """What the auto method measured on the first batch (seconds/MB per batch)."""

    batch_size: int
    forward_mb: float | None = None  # peak of the one-sample warm-up jvp
    trials: list[dict] = field(default_factory=list)
    chosen: str = ""
    chunk: int | None = None


def choose_vmap_chunk(n_params: int, jvp_peak_mb: float | None, budget_mb: float) -> int:
    """Tangents per vmap pass whose estimated peak memory fits ``budget_mb``.

    The jvp loop holds about two units of memory (primal + one tangent stream), vmap
    with c tangents about 1 + c units, so one unit ≈ ``jvp_peak_mb``/2. Returns a value
    in 1…P; 1 means "use the jvp loop". An unmeasured peak (None or 0) returns P.
    """
    if not jvp_peak_mb or jvp_peak_mb <= 0:
        return int(n_params)
    unit = jvp_peak_mb / 2.0
    return max(1, min(int(n_params), int(budget_mb // unit) - 1))


class JacobianComputer:
    """Computes J, M and eigenvalues for batches of physical θ.

    Parameters
    ----------
    synth : Synth
        g: θ (B, P) → x (B, N).
    feature : Feature
        Φ: x (B, N) → (B, K).
    scaler : Scaler
        h, fitted on the train fold; J is taken w.r.t. ν = h(θ).
    method : {'auto', 'jvp', 'vmap'}
    memory_budget_mb : float
        Budget for the auto choice (host RAM on CPU, GPU memory on CUDA).
    device : torch.device or str
    dtype : torch.dtype
        Precision of ν, the synthesis, Φ and J (M is always float64).
    chunk : int, optional
        vmap chunk (tangents per pass) when ``method='vmap'``; None = all P.
    analytic_synth : bool
        Use the synthesizer's analytic derivatives where they exist (FTM);
        False = autodiff through the synthesizer.
    """

    def __init__(self, synth, feature, scaler: Scaler, *, method: str = "auto",
                 memory_budget_mb: float = 2000, device="cpu", dtype=torch.float64,
                 chunk: int | None = None, analytic_synth: bool = True) -> None:
        if method not in METHODS:
            raise ValueError(f"jacobian method must be one of {METHODS}, got {method!r}")
        self.synth, self.feature, self.scaler = synth, feature, scaler
        self.F = forward_map(synth, feature, scaler)
        self.method = method
        self.budget_mb = float(memory_budget_mb)
        self.device = torch.device(device)
        self.dtype = dtype
        self.chunk = chunk
        self.n_params = len(synth.space)
        self.calibration: Calibration | None = None
        self.analytic_synth = analytic_synth and synth.has_own_tangents
        self._analytic_checked = False

    # -- core -------------------------------------------------------------------------------------

    def nu(self, theta: torch.Tensor) -> torch.Tensor:
        """ν = h(θ) (B, P) in ``dtype`` on ``device``."""
        theta = torch.as_tensor(theta, dtype=torch.float64).to(self.device)
        return self.scaler.forward(theta).to(self.dtype)

    def tangents(self, nu: torch.Tensor):
        """x (B, N) and ẋ (P, B, N) at ν; see :func:`synth_tangents`."""
        x, dx = synth_tangents(self.synth, self.scaler, nu, analytic=self.analytic_synth)
        if self.analytic_synth and not self._analytic_checked:
            # Guard against the synthesizer changing under the analytic formulas.
            ref = self.synth(self.scaler.inverse(nu))
            err = (x - ref).abs().max().item()
            tol = 1e-4 if self.dtype == torch.float32 else 1e-9
            if not err <= tol * max(ref.abs().max().item(), 1.0):
                log.warning("analytic %s tangents disagree with the synthesizer (max |Δx| = "
                            "%.3g); using autodiff through it", self.synth.name, err)
                self.analytic_synth = False
                x, dx = synth_tangents(self.synth, self.scaler, nu, analytic=False)
            self._analytic_checked = True
        return x, dx

    def _jacobian(self, nu: torch.Tensor, method: str, chunk: int | None) -> torch.Tensor:
        x, dx = self.tangents(nu)
        return self.feature.jacobian_columns(x, dx, method=method, chunk=chunk)

    def jacobian(self, theta: torch.Tensor, ids=None) -> torch.Tensor:
        """J (B, K, P) at ν = h(θ) for physical θ (B, P); raises on NaN/Inf (naming ``ids``)."""
        nu = self.nu(theta)
        ids = np.arange(len(nu)) if ids is None else np.asarray(ids)
        if self.method == "auto" and self.calibration is None:
            J = self._calibrate(nu)
        else:
            method = self.calibration.chosen if self.calibration else self.method
            chunk = self.calibration.chunk if self.calibration else self.chunk
            J = self._jacobian(nu, method, chunk)
        check_finite("the Jacobian J", J, ids)
        return J

    def metric(self, theta: torch.Tensor, ids=None):
        """J, M, eigenvalues for θ (B, P).

        Returns
        -------
        J : Tensor (B, K, P), ``dtype``, on ``device``
        M : Tensor (B, P, P) float64, on the CPU
        eig : Tensor (B, P) float64, ascending, on the CPU
        """
        ids = np.arange(len(theta)) if ids is None else np.asarray(ids)
        J = self.jacobian(theta, ids)
        M, eig = metric_from_jacobian(J)
        check_finite("the metric M = JᵀJ", M, ids)
        check_finite("the eigenvalues of M", eig, ids)
        return J, M.cpu(), eig.cpu()

    @property
    def chosen_method(self) -> str:
        """The method in use (after calibration for ``auto``)."""
        if self.calibration is not None:
            return self.calibration.chosen
        return self.method

    # -- auto ------------------------------------------------------------------------------------

    def _timed(self, fn):
        _sync(self.device)
        with PeakMemory(self.device) as mem:
            t0 = time.perf_counter()
            out = fn()
            _sync(self.device)
            dt = time.perf_counter() - t0
        return out, dt, mem.mb

    def _calibrate(self, nu: torch.Tensor) -> torch.Tensor:
        """Measure jvp (and vmap if it should fit) on this batch; keep the faster. Returns J."""
        P, B = self.n_params, nu.shape[0]
        cal = Calibration(batch_size=B)
        # Warm-up: one jvp on one sample builds the feature's filter caches and torch.func's
        # first-call state, which would otherwise be charged to whichever method runs first.
        x0, dx0 = self.tangents(nu[:1])
        _, _, cal.forward_mb = self._timed(
            lambda: torch.func.jvp(self.feature, (x0,), (dx0[0],)))
        J, t_jvp, m_jvp = self._timed(lambda: self._jacobian(nu, "jvp", None))
        cal.trials.append({"method": "jvp", "chunk": 1, "seconds": t_jvp, "peak_mb": m_jvp})
        best = ("jvp", None, t_jvp, J)
        if m_jvp is not None and m_jvp > self.budget_mb:
            log.warning("jvp with batch %d peaked at %.0f MB > budget %.0f MB: lower "
                        "jacobian.batch_size", B, m_jvp, self.budget_mb)
        chunk = choose_vmap_chunk(P, m_jvp, self.budget_mb)
        if chunk >= 2:
            try:
                Jv, t_v, m_v = self._timed(lambda: self._jacobian(nu, "vmap", chunk))
            except (RuntimeError, NotImplementedError) as err:  # e.g. an op without a vmap rule
                log.warning("vmap Jacobian failed (%s); using the jvp loop", err)
            else:
                cal.trials.append({"method": "vmap", "chunk": chunk, "seconds": t_v, "peak_mb": m_v})
                if t_v < t_jvp:
                    best = ("vmap", chunk, t_v, Jv)
        cal.chosen, cal.chunk = best[0], best[1]
        self.calibration = cal
        log.info("jacobian method auto → %s%s (trials: %s)", cal.chosen,
                 f" (chunk {cal.chunk})" if cal.chunk else "",
                 "; ".join(_describe_trial(t) for t in cal.trials))
        return best[3]


def _describe_trial(t: dict) -> str:
    mem = "?" if t["peak_mb"] is None else f"{t['peak_mb']:.0f}"
    return f"{t['method']}[chunk {t['chunk']}] {t['seconds']:.3g} s, {mem} MB"


def compute_metrics(df, computer: JacobianComputer, *, batch_size: int, progress: bool = True,
                    desc: str = "jacobian", fold: str | None = None):
    """M and eigenvalues for every row of a params table (sorted by id).

    Parameters
    ----------
    df : DataFrame with ``id`` and one column per parameter (physical units)
    computer : JacobianComputer
    batch_size : int

    Returns
    -------
    ids : ndarray (n,) int64
    M : ndarray (n, P, P) float64
    eig : ndarray (n, P) float64, ascending
    """
    from pnp_core.synth.datasets import theta_batches

    P = computer.n_params
    ids_out, M_out, eig_out = [], [], []
    for ids, theta in theta_batches(df, computer.synth.space, batch_size, device="cpu",
                                    dtype=torch.float64, desc=desc, progress=progress,
                                    fold=fold):
        _, M, eig = computer.metric(theta, ids)
        ids_out.append(np.asarray(ids, dtype=np.int64))
        M_out.append(M.numpy())
        eig_out.append(eig.numpy())
    if not ids_out:
        return (np.empty(0, np.int64), np.empty((0, P, P)), np.empty((0, P)))
    return np.concatenate(ids_out), np.concatenate(M_out), np.concatenate(eig_out)


def compute_shard(spec, params, fold: str, shard: int = 0, shard_size: int | None = None, *,
                  batch_size: int = 4, method: str = "auto", memory_budget_mb: float = 2000,
                  dtype: torch.dtype = torch.float64, device="cpu", analytic_synth: bool = True,
                  progress: bool = True):
    """M and eigenvalues of one shard of a fold, with the metadata of its metric file.

    The rescaling h is fitted on the **train** rows of ``params`` whatever fold is
    computed (every train row is validated first: a bad one would move the bounds).

    Parameters
    ----------
    spec : pnp_core.spec.RunSpec
    params : DataFrame, the whole params table (all folds)
    fold, shard, shard_size : rows [shard·size, (shard+1)·size) of the fold sorted by id;
        ``shard_size`` None = the whole fold in one shard
    batch_size, method, memory_budget_mb, dtype, device, analytic_synth : see
        :class:`JacobianComputer`

    Returns
    -------
    pnp_core.metric.file.MetricTable (format of :mod:`pnp_core.metric.file`)
    """
    from pnp_core.metric.file import MetricTable, n_shards, shard_slice

    scaler = spec.fit_scaler(params)
    rows = params[params["fold"] == fold].sort_values("id").reset_index(drop=True)
    size = shard_size or max(len(rows), 1)
    df = rows.iloc[shard_slice(len(rows), size, shard)]
    computer = JacobianComputer(spec.synth, spec.feature, scaler, method=method,
                                memory_budget_mb=memory_budget_mb, device=device, dtype=dtype,
                                analytic_synth=analytic_synth)
    t0 = time.perf_counter()
    ids, M, eig = compute_metrics(df, computer, batch_size=batch_size, progress=progress,
                                  desc=f"{spec.name}/{fold} shard {shard} jacobian", fold=fold)
    seconds = time.perf_counter() - t0
    cal = computer.calibration
    meta = {
        "provenance": spec.provenance(), "scaler": scaler.state(), "fold": fold,
        "shard": int(shard), "n_shards": n_shards(len(rows), size), "shard_size": int(size),
        "param_names": spec.space.names, "feature_dim": int(spec.feature.n_coefficients),
        "method": computer.chosen_method, "auto_trials": cal.trials if cal else None,
        "dtype": str(dtype).removeprefix("torch."), "device": str(torch.device(device)),
        "batch_size": int(batch_size), "seconds": seconds,
        "synth_tangents": "own" if computer.analytic_synth else "autodiff",
    }
    return MetricTable(ids=ids, M=M, eig=eig, meta=meta)


__all__ = [
    "METHODS", "NonFiniteJacobianError", "forward_map", "jacobian_jvp", "jacobian_vmap",
    "synth_tangents", "compute_shard",
    "metric_from_jacobian", "check_finite", "PeakMemory", "proc_status_kb", "choose_vmap_chunk",
    "JacobianComputer", "compute_metrics",
]
