"""The metric file format (shards and merged files), its merge, and other rescalings.

File format ``pnp-metric/2`` (a table of :mod:`pnp_core.io`)
-------------------------------------------------------------
One row per sample, sorted by id:

=============== ================================ =============================================
column          Arrow type                       content
=============== ================================ =============================================
``id``          int64                            sample id (params table)
``M``           fixed_size_list<double>[P·P]     M = JᵀJ, **row-major** flattened (M[i, j] at
                                                 i·P + j); symmetric; w.r.t. ν = h(θ)
``eigenvalues`` fixed_size_list<double>[P]       eigenvalues of M, **ascending** (λ_1 ≤ … ≤ λ_P)
=============== ================================ =============================================

Metadata (the table's JSON metadata): ``format``; ``provenance``
(:data:`pnp_core.spec.PROVENANCE_KEYS`); ``scaler`` (the fitted rescaling,
:meth:`pnp_core.params.Scaler.state`, fitted on the train fold); ``fold``;
``shard`` (int, or ``"merged"``); ``n_shards``; ``shard_size``; ``n_params``;
``param_names``; ``n_rows``; ``feature_dim`` (K); ``method``; ``dtype``;
``device``; ``batch_size``; ``seconds``; ``eigenvalue_order`` (``"ascending"``);
``m_layout`` (``"row-major"``) and ``data_sha256``, a SHA-256 of the
little-endian bytes of id, M and eigenvalues, checked on every read so that a
damaged file is never merged.

The metric is stored in the entry's rescaling. For another rescaling use
:func:`metric_in_rescaling` (chain rule, no recomputation).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from pnp_core.errors import TableFileError
from pnp_core.io import read_table, write_table

FORMAT = "pnp-metric/2"
#: metadata keys that must agree between the shards of one merged file
CONSISTENT_KEYS = ("provenance", "scaler", "fold", "n_params", "param_names", "n_shards",
                   "shard_size", "feature_dim")
_WHAT = "this metric file"


class MetricFileError(TableFileError):
    """A metric file (shard or merged) is unreadable, inconsistent or incomplete."""


@dataclass
class MetricTable:
    """A metric file in memory.

    Attributes
    ----------
    ids : ndarray (n,) int64
    M : ndarray (n, P, P) float64
    eig : ndarray (n, P) float64, ascending
    meta : dict, decoded metadata (see the module docstring)
    """

    ids: np.ndarray
    M: np.ndarray
    eig: np.ndarray
    meta: dict

    def __len__(self) -> int:
        return len(self.ids)


# ----------------------------------------------------------------------------------------------
# shards


def n_shards(n_rows: int, shard_size: int) -> int:
    """Shards needed for a fold of ``n_rows`` samples (0 for an empty fold)."""
    if shard_size < 1:
        raise ValueError(f"jacobian.shard_size must be ≥ 1, got {shard_size}")
    return -(-int(n_rows) // int(shard_size))


def shard_slice(n_rows: int, shard_size: int, shard: int) -> slice:
    """Rows [shard·size, (shard+1)·size) of the fold (sorted by id) that shard ``shard`` holds."""
    total = n_shards(n_rows, shard_size)
    if not 0 <= shard < total:
        raise ValueError(f"shard {shard} does not exist: a fold of {n_rows} samples with "
                         f"shard_size {shard_size} has shards 0…{total - 1}")
    return slice(shard * shard_size, min((shard + 1) * shard_size, n_rows))


def shard_name(shard: int) -> str:
    """File name of shard ``shard``: ``shard-0003.parquet`` (4-digit zero-padded index)."""
    return f"shard-{int(shard):04d}.parquet"


def data_checksum(ids: np.ndarray, M: np.ndarray, eig: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr, dt in ((ids, "<i8"), (M, "<f8"), (eig, "<f8")):
        h.update(np.ascontiguousarray(arr, dtype=dt).tobytes())
    return h.hexdigest()


def fixed_list(values: np.ndarray, width: int):
    """A pyarrow fixed_size_list<double>[width] column from an array (n, …) of n·width values."""
    import pyarrow as pa

    flat = pa.array(np.ascontiguousarray(values, dtype=np.float64).reshape(-1), type=pa.float64())
    return pa.FixedSizeListArray.from_arrays(flat, width)


def write_metric(path: str | os.PathLike, ids, M, eig, meta: Mapping) -> None:
    """Write a metric file atomically.

    Parameters
    ----------
    path : output path (.parquet)
    ids : array (n,) int
    M : array (n, P, P) float64
    eig : array (n, P) float64, ascending
    meta : mapping of metadata (JSON-encodable values); ``n_rows``, ``n_params``,
        ``eigenvalue_order``, ``m_layout`` and ``data_sha256`` are set here.
    """
    import pyarrow as pa

    ids = np.asarray(ids, dtype=np.int64)
    M = np.asarray(M, dtype=np.float64)
    eig = np.asarray(eig, dtype=np.float64)
    n = len(ids)
    if M.ndim != 3 or M.shape[0] != n or M.shape[1] != M.shape[2] or eig.shape != (n, M.shape[1]):
        raise ValueError(f"write_metric: shapes ids {ids.shape}, M {M.shape}, eig {eig.shape} "
                         "do not match (n,), (n, P, P), (n, P)")
    P = M.shape[1]
    table = pa.table({"id": pa.array(ids, type=pa.int64()), "M": fixed_list(M, P * P),
                      "eigenvalues": fixed_list(eig, P)})
    full = {**meta, "n_rows": n, "n_params": P, "eigenvalue_order": "ascending",
            "m_layout": "row-major", "data_sha256": data_checksum(ids, M, eig)}
    write_table(table, path, FORMAT, full)


def _column(table, name: str, width: int, path) -> np.ndarray:
    import pyarrow as pa

    col = table.column(name)
    typ = col.type
    if not (pa.types.is_fixed_size_list(typ) and typ.list_size == width
            and pa.types.is_float64(typ.value_type)):
        raise MetricFileError(f"{path}: column {name!r} has type {typ}, expected "
                              f"fixed_size_list<double>[{width}]")
    if col.null_count:
        raise MetricFileError(f"{path}: column {name!r} has {col.null_count} null row(s)")
    if col.num_chunks == 0:
        return np.empty((0, width))
    return col.combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, width)


def read_metric(path: str | os.PathLike, verify: bool = True) -> MetricTable:
    """Read and validate a metric file.

    Raises
    ------
    MetricFileError
        Naming ``path``, when the file is missing, truncated, corrupted (Parquet error or
        checksum mismatch), not a metric file, or internally inconsistent.
    """
    import pyarrow as pa

    path = Path(path)
    hint = "delete it and rerun the job that wrote it"
    try:
        table, meta = read_table(path, FORMAT, what=_WHAT, arrow=True)
    except MetricFileError:
        raise
    except TableFileError as err:
        raise MetricFileError(str(err)) from None
    missing = {"id", "M", "eigenvalues"} - set(table.column_names)
    if missing:
        raise MetricFileError(f"{path}: missing column(s) {sorted(missing)}; {hint}")
    try:
        P = int(meta["n_params"])
        n_rows = int(meta["n_rows"])
    except (KeyError, TypeError, ValueError) as err:
        raise MetricFileError(f"{path}: corrupted metadata (n_params/n_rows: {err!r}); {hint}") \
            from None
    if not pa.types.is_int64(table.column("id").type) or table.column("id").null_count:
        raise MetricFileError(f"{path}: column 'id' must be non-null int64")
    ids = table.column("id").to_numpy()
    M = _column(table, "M", P * P, path).reshape(-1, P, P)
    eig = _column(table, "eigenvalues", P, path)
    if len(ids) != n_rows:
        raise MetricFileError(f"{path}: {len(ids)} rows but the metadata says {n_rows} "
                              f"(truncated?); {hint}")
    if verify and data_checksum(ids, M, eig) != meta.get("data_sha256"):
        raise MetricFileError(f"{path}: data checksum mismatch, the file is corrupted; {hint}")
    return MetricTable(ids=ids.astype(np.int64), M=M, eig=eig, meta=meta)


# ----------------------------------------------------------------------------------------------
# merge


def _show(ids: Iterable, limit: int = 20) -> str:
    ids = [int(i) for i in ids]
    return ", ".join(map(str, ids[:limit])) + (f" … ({len(ids)} in total)" if len(ids) > limit else "")


def merge_metric_shards(paths: Sequence[str | os.PathLike], expected_ids,
                        expect: Mapping | None = None) -> MetricTable:
    """Read shards, check them against each other and the fold, and concatenate.

    Parameters
    ----------
    paths : shard files (any order)
    expected_ids : array (n,) int, every id of the fold (from the params table)
    expect : mapping, optional
        Metadata values the shards must carry (e.g. provenance, fold).

    Returns
    -------
    MetricTable sorted by id, with merged metadata (``shard`` = ``"merged"``).

    Raises
    ------
    MetricFileError
        A shard is unreadable/corrupted/truncated (naming the file), shards disagree on
        their settings, an id of the fold is missing, an id appears twice (naming both
        files), an id is not in the fold, or shard indices are missing/duplicated.
    """
    expected = np.asarray(expected_ids, dtype=np.int64)
    if len(np.unique(expected)) != len(expected):
        raise MetricFileError("the fold's id list itself has duplicates; rebuild the params table")
    tables = [read_metric(p) for p in paths]
    paths = [Path(p) for p in paths]
    if tables:
        ref, ref_path = tables[0].meta, paths[0]
        for t, p in zip(tables[1:], paths[1:]):
            for key in CONSISTENT_KEYS:
                if t.meta.get(key) != ref.get(key):
                    raise MetricFileError(
                        f"{p}: metadata {key}={t.meta.get(key)!r} differs from {ref_path} "
                        f"({ref.get(key)!r}); stale shard from another config? delete and rerun")
        for key, value in (expect or {}).items():
            if ref.get(key) != value:
                raise MetricFileError(f"{ref_path}: metadata {key}={ref.get(key)!r}, expected "
                                      f"{value!r} from the config; delete the stale shards and "
                                      "rerun")

    ids = np.concatenate([t.ids for t in tables]) if tables else np.empty(0, np.int64)
    owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)]) if tables \
        else np.empty(0, int)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        where = [str(paths[k]) for k in np.unique(owner[np.isin(ids, dup[:1])])]
        raise MetricFileError(f"duplicate sample id(s) across shards: {_show(dup)}; id {dup[0]} "
                              f"is in {' and '.join(where)}")
    missing = np.setdiff1d(expected, uniq)
    if missing.size:
        raise MetricFileError(f"{missing.size} id(s) of the fold are missing from the shards: "
                              f"{_show(missing)}; rerun the shard job(s) that should hold them")
    extra = np.setdiff1d(uniq, expected)
    if extra.size:
        where = sorted({str(paths[k]) for k in owner[np.isin(ids, extra)]})
        raise MetricFileError(f"{extra.size} id(s) are not in the fold: {_show(extra)} "
                              f"(in {', '.join(where)}); stale shards? delete and rerun")
    if tables:
        idx = sorted(int(t.meta["shard"]) for t in tables)
        if idx != list(range(int(tables[0].meta["n_shards"]))):
            raise MetricFileError(f"shard indices {idx} are not 0…{tables[0].meta['n_shards'] - 1}")

    order = np.argsort(ids, kind="stable")
    P = tables[0].M.shape[1] if tables else int((expect or {}).get("n_params", 0))
    M = np.concatenate([t.M for t in tables])[order] if tables else np.empty((0, P, P))
    eig = np.concatenate([t.eig for t in tables])[order] if tables else np.empty((0, P))
    meta = dict(tables[0].meta) if tables else {}
    for key in ("data_sha256", "n_rows", "shard", "seconds", "auto_trials", "format"):
        meta.pop(key, None)
    meta["shard"] = "merged"
    meta["seconds"] = float(sum(float(t.meta.get("seconds") or 0.0) for t in tables))
    meta["shard_files"] = [p.name for p in paths]
    meta["method"] = sorted({str(t.meta.get("method")) for t in tables})
    return MetricTable(ids=ids[order], M=M, eig=eig, meta=meta)


def merge_fold(spec, params, fold: str, shard_paths: Sequence[str | os.PathLike]) -> MetricTable:
    """Merge the shards of ``fold`` and check them against ``spec`` and the params table.

    Parameters
    ----------
    spec : pnp_core.spec.RunSpec (the entry slice the shards were computed from)
    params : DataFrame, the whole params table
    fold : str
    shard_paths : the fold's shard files (none for an empty fold)
    """
    ids = params.loc[params["fold"] == fold, "id"].to_numpy()
    expect = {"provenance": spec.provenance(), "fold": fold, "param_names": spec.space.names,
              "n_params": len(spec.space)}
    table = merge_metric_shards(shard_paths, ids, expect)
    if not shard_paths:  # an empty fold: describe it from the spec
        table.meta = {**expect, "shard": "merged", "n_shards": 0, "shard_files": [],
                      "scaler": spec.fit_scaler(params).state(),
                      "feature_dim": int(spec.feature.n_coefficients)}
    return table


# ----------------------------------------------------------------------------------------------
# other rescalings


def metric_in_rescaling(table: MetricTable, theta, dst) -> np.ndarray:
    """The stored metrics re-expressed in another rescaling (chain rule, exact).

    Parameters
    ----------
    table : MetricTable (its ``scaler`` metadata says where M was taken)
    theta : array (n, P) float64, physical θ of ``table.ids`` (same order)
    dst : pnp_core.params.Scaler, the target rescaling (fit it on the train fold)

    Returns
    -------
    ndarray (n, P, P) float64
    """
    import torch

    from pnp_core.params import Scaler, reparametrise_metric

    src = Scaler.from_state(dst.space, table.meta["scaler"])
    theta = torch.as_tensor(np.array(theta, dtype=np.float64))  # a writable copy
    if theta.shape[0] != len(table):
        raise ValueError(f"θ has {theta.shape[0]} rows for {len(table)} metrics")
    M = torch.as_tensor(np.array(table.M, dtype=np.float64))  # writable (Arrow buffers are not)
    return reparametrise_metric(M, theta, src, dst).numpy()


__all__ = ["FORMAT", "MetricFileError", "MetricTable", "n_shards", "shard_slice", "shard_name",
           "write_metric", "read_metric", "merge_metric_shards", "merge_fold", "metric_in_rescaling",
           "data_checksum", "fixed_list"]
