"""Parameter spaces and the rescalings h / h⁻¹ of the paper's ablation.

A :class:`ParamSpace` names a synthesizer's parameters, their physical units and
ranges, and which columns live on a log scale. The *natural* domain of a column
is log10(θ) for log-scaled columns and θ otherwise; the dataset grid is uniform
in that domain.

The four rescalings (docs/paper.md) map physical θ to the network's target
space ν = h(θ):

========== ==================================================================
``raw``    ν = θ (physical units)
``log``    ν = log10 θ on log-scaled columns, θ elsewhere (the natural domain)
``minmax`` ν = 2 (θ − θ_min)/(θ_max − θ_min) − 1, fitted on the train fold
``logminmax`` min-max applied to the natural domain (the paper's default)
========== ==================================================================

Every inverse h⁻¹ is written with differentiable torch ops so it can sit inside
``torch.func.jacfwd``. :meth:`Scaler.jacobian_diag` gives dθ/dν, the diagonal S
of the chain rule M_ν = Sᵀ M_θ S used to re-express a metric in another space.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from pnp_core.errors import DataError

RESCALINGS = ("raw", "log", "minmax", "logminmax")


@dataclass(frozen=True)
class Param:
    """One synthesizer parameter: ``low``/``high`` are physical bounds (inclusive)."""

    name: str
    unit: str
    low: float
    high: float
    log: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"parameter {self.name!r}: low={self.low} must be < high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"parameter {self.name!r} is log-scaled, so low must be > 0")


class ParamSpace:
    """An ordered set of :class:`Param`; θ has shape (B, P) in this order."""

    def __init__(self, params: Sequence[Param]) -> None:
        self.params = tuple(params)
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate parameter names in {names}")

    def __len__(self) -> int:
        return len(self.params)

    def __iter__(self):
        return iter(self.params)

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.params]

    @property
    def log_mask(self) -> np.ndarray:
        return np.array([p.log for p in self.params], dtype=bool)

    @property
    def low(self) -> np.ndarray:
        return np.array([p.low for p in self.params], dtype=np.float64)

    @property
    def high(self) -> np.ndarray:
        return np.array([p.high for p in self.params], dtype=np.float64)

    def to_natural(self, theta: np.ndarray) -> np.ndarray:
        """Physical θ (…, P) → natural domain (log10 on log-scaled columns)."""
        theta = np.asarray(theta, dtype=np.float64)
        return np.where(self.log_mask, np.log10(np.where(self.log_mask, theta, 1.0)), theta)

    def from_natural(self, u: np.ndarray) -> np.ndarray:
        """Natural domain (…, P) → physical θ."""
        u = np.asarray(u, dtype=np.float64)
        return np.where(self.log_mask, 10.0 ** u, u)

    def validate(self, theta, ids: Iterable | None = None, *, rtol: float = 1e-9,
                 fold: str | None = None, source: str | None = None) -> None:
        """Raise :class:`~pnp_core.errors.DataError` naming the parameter, sample id
        (and ``fold`` when given) of the first bad θ.

        θ must be finite and inside [low, high] (up to a relative tolerance
        ``rtol`` of the range, for float round-off at the grid's edges). ``source``
        (the params file the rows come from) is named in the message too.
        """
        arr = theta.detach().cpu().numpy() if isinstance(theta, torch.Tensor) else np.asarray(theta)
        arr = np.atleast_2d(np.asarray(arr, dtype=np.float64))
        if arr.shape[-1] != len(self):
            raise ValueError(f"θ has {arr.shape[-1]} columns, expected {len(self)} ({self.names})")
        ids = list(range(len(arr))) if ids is None else list(ids)
        slack = rtol * (self.high - self.low)
        bad = ~np.isfinite(arr) | (arr < self.low - slack) | (arr > self.high + slack)
        if bad.any():
            row, col = map(int, np.argwhere(bad)[0])
            p = self.params[col]
            where = f" ({fold} fold)" if fold else ""
            value = float(arr[row, col])
            what = "is not finite" if not np.isfinite(value) else \
                f"is out of range [{p.low:g}, {p.high:g}] {p.unit}"
            fix = (f"; fix or remove the row in {source}, or rebuild the table with "
                   "`pnp dataset`") if source else ""
            raise DataError(
                (f"{source}: " if source else "")
                + f"sample id {ids[row]}{where}: parameter {p.name!r} = {value:g} {what} "
                f"({int(bad.sum())} bad value(s) in total){fix}"
            )

    def describe(self) -> str:
        rows = [f"{p.name:>8} [{p.unit}] {p.low:g} … {p.high:g}{' (log)' if p.log else ''}"
                for p in self.params]
        return "\n".join(rows)


class Scaler:
    """A fitted rescaling h: θ (physical) ↔ ν (network target space).

    Parameters
    ----------
    space : ParamSpace
    kind : one of :data:`RESCALINGS`
    lo, hi : array (P,), optional
        Bounds, in the natural (``logminmax``) or physical (``minmax``) domain,
        that map to −1 and +1. Required for the min-max kinds; use :meth:`fit`.
    """

    def __init__(self, space: ParamSpace, kind: str, lo=None, hi=None) -> None:
        if kind not in RESCALINGS:
            raise ValueError(f"unknown rescaling {kind!r}; choose one of {RESCALINGS}")
        self.space, self.kind = space, kind
        self.uses_log = kind in ("log", "logminmax")
        self.uses_minmax = kind in ("minmax", "logminmax")
        if self.uses_minmax:
            if lo is None or hi is None:
                raise ValueError(f"rescaling {kind!r} needs bounds: use Scaler.fit(space, kind, train_theta)")
            self.lo = np.asarray(lo, dtype=np.float64)
            self.hi = np.asarray(hi, dtype=np.float64)
            if np.any(self.hi <= self.lo):
                raise ValueError(f"degenerate min-max bounds for {kind!r}: lo={self.lo}, hi={self.hi}")
        else:
            self.lo = self.hi = None
        self._log = space.log_mask if self.uses_log else np.zeros(len(space), dtype=bool)

    @classmethod
    def fit(cls, space: ParamSpace, kind: str, train_theta) -> "Scaler":
        """Fit the min-max bounds on the train fold's physical θ (N, P)."""
        if kind not in RESCALINGS:
            raise ValueError(f"unknown rescaling {kind!r}; choose one of {RESCALINGS}")
        if kind not in ("minmax", "logminmax"):
            return cls(space, kind)
        theta = np.asarray(train_theta, dtype=np.float64)
        u = space.to_natural(theta) if kind == "logminmax" else theta
        return cls(space, kind, u.min(axis=0), u.max(axis=0))

    def state(self) -> dict:
        """JSON-serialisable description (for Parquet metadata and checkpoints)."""
        return {"kind": self.kind,
                "lo": None if self.lo is None else self.lo.tolist(),
                "hi": None if self.hi is None else self.hi.tolist()}

    @classmethod
    def from_state(cls, space: ParamSpace, state: dict) -> "Scaler":
        return cls(space, state["kind"], state.get("lo"), state.get("hi"))

    def _consts(self, ref: torch.Tensor):
        log = torch.as_tensor(self._log, device=ref.device)
        if not self.uses_minmax:
            return log, None, None
        lo = torch.as_tensor(self.lo, dtype=ref.dtype, device=ref.device)
        hi = torch.as_tensor(self.hi, dtype=ref.dtype, device=ref.device)
        return log, lo, hi

    def forward(self, theta: torch.Tensor) -> torch.Tensor:
        """h: physical θ (…, P) → ν (…, P)."""
        theta = torch.as_tensor(theta)
        log, lo, hi = self._consts(theta)
        u = torch.where(log, torch.log10(torch.where(log, theta, torch.ones_like(theta))), theta)
        if self.uses_minmax:
            u = 2.0 * (u - lo) / (hi - lo) - 1.0
        return u

    __call__ = forward

    def inverse(self, nu: torch.Tensor) -> torch.Tensor:
        """h⁻¹: ν (…, P) → physical θ (…, P); differentiable, torch.func-safe."""
        nu = torch.as_tensor(nu)
        log, lo, hi = self._consts(nu)
        u = (nu + 1.0) * 0.5 * (hi - lo) + lo if self.uses_minmax else nu
        return torch.where(log, torch.pow(10.0, u), u)

    def jacobian_diag(self, theta: torch.Tensor) -> torch.Tensor:
        """dθ/dν at θ (…, P): the diagonal of S in M_ν = Sᵀ M_θ S."""
        theta = torch.as_tensor(theta)
        log, lo, hi = self._consts(theta)
        d = torch.where(log, theta * math.log(10.0), torch.ones_like(theta))
        if self.uses_minmax:
            d = d * 0.5 * (hi - lo)
        return d


def reparametrise_metric(M_from: torch.Tensor, theta: torch.Tensor,
                         src: Scaler, dst: Scaler) -> torch.Tensor:
    """Re-express metrics M (B, P, P) taken w.r.t. ``src``'s ν in ``dst``'s ν.

    By the chain rule, J_dst = J_src · diag(dν_src/dν_dst), so
    M_dst = S M_src S with S = diag((dθ/dν_dst) / (dθ/dν_src)) evaluated at θ (B, P).
    """
    s = dst.jacobian_diag(theta) / src.jacobian_diag(theta)
    return s.unsqueeze(-1) * M_from * s.unsqueeze(-2)
