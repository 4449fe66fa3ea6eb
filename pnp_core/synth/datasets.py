"""Stratified jittered-grid datasets and their folds (docs/paper.md).

Each parameter's natural domain (log10 for log-scaled columns) is cut into
``bins`` equal cells, giving ``bins**P`` cells; every cell holds exactly one
sample, drawn uniformly inside the cell. The sample id is the cell's mixed-radix
index (first parameter most significant), so for 10 bins the id *is* the
5-digit bin code of the paper (id 7 = bins (0, 0, 0, 0, 7)).

Folds:

* ``val``  — interior cells: every bin index in [margin, bins − margin).
  FTM: 10 bins, margin 2 → 6⁵ = 7,776; AM/FM: 30 bins, margin 8 → 14³ = 2,744.
* ``test`` — ``n_test`` cells drawn with the seed among the non-val cells.
* ``train`` — the rest.

``jitter`` says where the uniform draw inside a cell happens: ``natural``
(FTM reference: uniform in log10 for log-scaled columns) or ``linear`` (AM/FM
reference: uniform in physical units between the log-spaced edges).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pnp_core.params import ParamSpace

FOLDS = ("train", "val", "test")
JITTERS = ("natural", "linear")


@dataclass(frozen=True)
class GridDesign:
    """Dataset design; see the module docstring."""

    bins: int
    val_margin: int
    n_test: int
    seed: int
    jitter: str = "natural"

    def __post_init__(self) -> None:
        if self.bins < 1:
            raise ValueError(f"dataset.bins must be ≥ 1, got {self.bins}")
        if not 0 <= 2 * self.val_margin < self.bins:
            raise ValueError(f"dataset.val_margin={self.val_margin} leaves no interior cell "
                             f"with bins={self.bins} (need 0 ≤ 2·margin < bins)")
        if self.jitter not in JITTERS:
            raise ValueError(f"dataset.jitter must be one of {JITTERS}, got {self.jitter!r}")
        if self.n_test < 0:
            raise ValueError(f"dataset.n_test must be ≥ 0, got {self.n_test}")

    def fold_sizes(self, n_params: int) -> dict[str, int]:
        total = self.bins ** n_params
        val = (self.bins - 2 * self.val_margin) ** n_params
        if self.n_test > total - val:
            raise ValueError(f"dataset.n_test={self.n_test} exceeds the {total - val} non-validation cells")
        return {"train": total - val - self.n_test, "val": val, "test": self.n_test}


def bin_code(bins: np.ndarray, n_bins: int) -> np.ndarray:
    """Cell indices (N, P) → strings of zero-padded digits joined by '-'."""
    width = len(str(n_bins - 1))
    return np.array(["-".join(f"{b:0{width}d}" for b in row) for row in bins])


def make_grid_dataset(space: ParamSpace, design: GridDesign) -> pd.DataFrame:
    """Build the dataset table.

    Returns
    -------
    DataFrame with columns ``id`` (int64), ``fold`` (str), ``bin_code`` (str),
    one float64 column per parameter in physical units, sorted by id.
    """
    n_params = len(space)
    sizes = design.fold_sizes(n_params)
    shape = (design.bins,) * n_params
    ids = np.arange(design.bins ** n_params, dtype=np.int64)
    cells = np.stack(np.unravel_index(ids, shape), axis=1)  # (N, P)

    rng = np.random.default_rng(design.seed)
    jitter = rng.random(cells.shape)
    lo_nat, hi_nat = space.to_natural(space.low), space.to_natural(space.high)
    edges_lo = lo_nat + (hi_nat - lo_nat) * cells / design.bins
    edges_hi = lo_nat + (hi_nat - lo_nat) * (cells + 1) / design.bins
    if design.jitter == "natural":
        theta = space.from_natural(edges_lo + jitter * (edges_hi - edges_lo))
    else:
        a, b = space.from_natural(edges_lo), space.from_natural(edges_hi)
        theta = a + jitter * (b - a)
    theta = np.clip(theta, space.low, space.high)  # round-off at the outer edges

    m = design.val_margin
    interior = np.all((cells >= m) & (cells < design.bins - m), axis=1)
    fold = np.full(len(ids), "train", dtype=object)
    fold[interior] = "val"
    outside = np.flatnonzero(~interior)
    test = rng.choice(outside, size=design.n_test, replace=False)
    fold[test] = "test"

    df = pd.DataFrame({"id": ids, "fold": fold.astype(str), "bin_code": bin_code(cells, design.bins)})
    for j, name in enumerate(space.names):
        df[name] = theta[:, j]
    counts = df["fold"].value_counts().to_dict()
    assert counts.get("val", 0) == sizes["val"] and counts.get("test", 0) == sizes["test"], counts
    space.validate(df[space.names].to_numpy(), df["id"].to_numpy())
    return df


def write_params(df: pd.DataFrame, path, provenance: dict, units: dict) -> None:
    """Write a params table (format ``pnp-params/1``).

    Columns: ``id`` int64, ``fold`` str (train/val/test), ``bin_code`` str, then one
    float64 column per parameter in physical units (``units`` maps name → unit).
    """
    from pnp_core.io import write_table
    from pnp_core.formats import PARAMS_FORMAT

    write_table(df, path, PARAMS_FORMAT, {"provenance": provenance, "units": units})


def load_params(path, fold: str | None = None, *, space: ParamSpace | None = None) -> pd.DataFrame:
    """Read a params table, optionally one fold (sorted by id).

    With ``space``, the table must hold every parameter column of it; the error names
    the file and the missing columns.
    """
    from pnp_core.errors import TableFileError
    from pnp_core.io import read_table
    from pnp_core.formats import PARAMS_FORMAT

    if fold is not None and fold not in FOLDS:
        raise ValueError(f"unknown fold {fold!r}; choose one of {FOLDS}")
    df = read_table(path, PARAMS_FORMAT, what="the params table").data
    need = ["id", "fold"] + (space.names if space is not None else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise TableFileError(f"{path}: the params table lacks column(s) {missing} "
                             f"(has {list(df.columns)}); rebuild it with `pnp dataset` "
                             "for this synthesizer")
    if fold is not None:
        df = df[df["fold"] == fold]
    df = df.sort_values("id").reset_index(drop=True)
    df.attrs["source"] = str(path)  # named by the row checks (ParamSpace.validate)
    return df


def theta_batches(df: pd.DataFrame, space: ParamSpace, batch_size: int, *, device="cpu",
                  dtype=None, desc: str | None = None, progress: bool = True,
                  fold: str | None = None):
    """Iterate over ``df`` in batches of physical θ, with progress (bar in the log, a line
    on the terminal every ~30 s: :class:`pnp_core.progress.Progress`).

    Yields
    ------
    ids : ndarray (b,) int64
    theta : Tensor (b, P) of ``dtype`` on ``device``, validated (finite, in range)
    """
    import torch

    from pnp_core.progress import Progress

    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    missing = [n for n in space.names if n not in df.columns]
    if missing:
        raise ValueError(f"parameter table lacks column(s) {missing} of the synthesizer")
    ids = df["id"].to_numpy()
    theta = np.array(df[space.names], dtype=np.float64)  # a writable copy for torch
    space.validate(theta, ids, fold=fold, source=df.attrs.get("source"))
    dtype = dtype or torch.get_default_dtype()
    with Progress(len(df), desc or "batches", unit="sample", disable=not progress) as bar:
        for start in range(0, len(df), batch_size):
            sl = slice(start, start + batch_size)
            yield ids[sl], torch.as_tensor(theta[sl], dtype=dtype, device=device)
            bar.update(len(ids[sl]))
