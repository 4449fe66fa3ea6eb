"""Storage of metrics M = JᵀJ: shards, merge with validation, summaries.

File format (Parquet, shards and merged files alike)
----------------------------------------------------
One row per sample, sorted by id:

=============== ================================ =============================================
column          Arrow type                       content
=============== ================================ =============================================
``id``          int64                            sample id (params.parquet)
``M``           fixed_size_list<double>[P·P]     M = JᵀJ, **row-major** flattened (M[i, j] at
                                                 i·P + j); symmetric; w.r.t. ν = h(θ)
``eigenvalues`` fixed_size_list<double>[P]       eigenvalues of M, **ascending** (λ_1 ≤ … ≤ λ_P)
=============== ================================ =============================================

Key-value metadata, every value JSON-encoded (read back by :func:`read_metric`):
``format`` (``"pnp-metric/1"``), ``synth``, ``synth_settings``, ``feature``,
``feature_settings``, ``rescaling`` (:meth:`pnp_core.params.Scaler.state`,
fitted on the train fold), ``fold``, ``shard`` (int, or ``"merged"``),
``n_shards``, ``shard_size``, ``n_params``, ``param_names``, ``n_rows``,
``feature_dim`` (K), ``method``, ``dtype``, ``device``, ``batch_size``,
``eigenvalue_order`` (``"ascending"``), ``m_layout`` (``"row-major"``) and
``data_sha256``, a SHA-256 of the little-endian bytes of id, M and
eigenvalues, checked on every read so that a damaged file is never merged.
Files are written atomically (temporary file + rename), with Parquet page
checksums.

The metric is stored in the entry's rescaling. For another rescaling use
:func:`metric_in_rescaling` (chain rule, no recomputation).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from pnp_core.io import atomic_path

FORMAT = "pnp-metric/1"
#: metadata keys that must agree between the shards of one merged file
CONSISTENT_KEYS = ("format", "synth", "synth_settings", "feature", "feature_settings",
                   "rescaling", "fold", "n_params", "param_names", "n_shards", "shard_size",
                   "feature_dim")
QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


class MetricFileError(ValueError):
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


def fold_shard_files(entry: Mapping, fold: str, shard_size: int, folder: str) -> list[str]:
    """The shard paths ``{folder}/shard-XXXX.parquet`` of ``fold`` for a synth ``entry``.

    The count follows from the dataset design, ceil(fold size / shard_size), so the
    workflow needs no checkpoint.
    """
    from pnp_core.config import build_design, build_synth

    size = build_design(entry).fold_sizes(len(build_synth(entry).space))[fold]
    return [f"{folder}/{shard_name(k)}" for k in range(n_shards(size, shard_size))]


def shard_input(config: Mapping):
    """A Snakemake input function: wildcards (synth, fold) → the fold's shard files.

    Lives here (not in a .smk file) so that rule files hold no function definitions.
    """
    from pnp_core.config import synth_entry

    def shards(wildcards) -> list[str]:
        entry = synth_entry(config, wildcards.synth)
        folder = f"results/jacobian/{wildcards.synth}/{wildcards.fold}"
        return fold_shard_files(entry, wildcards.fold, config["jacobian"]["shard_size"], folder)

    return shards


def data_checksum(ids: np.ndarray, M: np.ndarray, eig: np.ndarray) -> str:
    h = hashlib.sha256()
    for arr, dt in ((ids, "<i8"), (M, "<f8"), (eig, "<f8")):
        h.update(np.ascontiguousarray(arr, dtype=dt).tobytes())
    return h.hexdigest()


def _fixed_list(values: np.ndarray, width: int):
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
    meta : mapping of metadata (JSON-encodable values); ``format``, ``n_rows``,
        ``n_params``, ``eigenvalue_order``, ``m_layout`` and ``data_sha256`` are set here.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = np.asarray(ids, dtype=np.int64)
    M = np.asarray(M, dtype=np.float64)
    eig = np.asarray(eig, dtype=np.float64)
    n = len(ids)
    if M.ndim != 3 or M.shape[0] != n or M.shape[1] != M.shape[2] or eig.shape != (n, M.shape[1]):
        raise ValueError(f"write_metric: shapes ids {ids.shape}, M {M.shape}, eig {eig.shape} "
                         "do not match (n,), (n, P, P), (n, P)")
    P = M.shape[1]
    table = pa.table({"id": pa.array(ids, type=pa.int64()), "M": _fixed_list(M, P * P),
                      "eigenvalues": _fixed_list(eig, P)})
    full = {**meta, "format": FORMAT, "n_rows": n, "n_params": P, "eigenvalue_order": "ascending",
            "m_layout": "row-major", "data_sha256": data_checksum(ids, M, eig)}
    table = table.replace_schema_metadata({k: json.dumps(v) for k, v in full.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


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
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise MetricFileError(f"{path}: metric file not found")
    hint = "delete it and rerun the job that wrote it"
    try:
        table = pq.read_table(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as err:
        raise MetricFileError(f"{path}: unreadable Parquet file, truncated or corrupted "
                              f"({err}); {hint}") from None
    raw = table.schema.metadata or {}
    try:
        meta = {k.decode(): json.loads(v) for k, v in raw.items() if k != b"pandas"}
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MetricFileError(f"{path}: corrupted metadata ({err}); {hint}") from None
    if meta.get("format") != FORMAT:
        raise MetricFileError(f"{path}: not a metric file (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r})")
    missing = {"id", "M", "eigenvalues"} - set(table.column_names)
    if missing:
        raise MetricFileError(f"{path}: missing column(s) {sorted(missing)}; {hint}")
    P = int(meta["n_params"])
    if not pa.types.is_int64(table.column("id").type) or table.column("id").null_count:
        raise MetricFileError(f"{path}: column 'id' must be non-null int64")
    ids = table.column("id").to_numpy()
    M = _column(table, "M", P * P, path).reshape(-1, P, P)
    eig = _column(table, "eigenvalues", P, path)
    if len(ids) != meta.get("n_rows"):
        raise MetricFileError(f"{path}: {len(ids)} rows but the metadata says {meta.get('n_rows')} "
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
    expected_ids : array (n,) int, every id of the fold (from params.parquet)
    expect : mapping, optional
        Metadata values the shards must carry (e.g. synth, fold, rescaling kind).

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
        raise MetricFileError("the fold's id list itself has duplicates; rebuild params.parquet")
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
            got = ref.get(key)
            if key == "rescaling_kind":
                got = (ref.get("rescaling") or {}).get("kind")
            if got != value:
                raise MetricFileError(f"{ref_path}: metadata {key}={got!r}, expected {value!r} "
                                      "from the config; delete the stale shards and rerun")

    ids = np.concatenate([t.ids for t in tables]) if tables else np.empty(0, np.int64)
    owner = np.concatenate([np.full(len(t), i) for i, t in enumerate(tables)]) if tables \
        else np.empty(0, int)
    uniq, first, counts = np.unique(ids, return_index=True, return_counts=True)
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
    for key in ("data_sha256", "n_rows", "shard", "seconds", "auto_trials"):
        meta.pop(key, None)
    meta["shard"] = "merged"
    meta["seconds"] = float(sum(float(t.meta.get("seconds") or 0.0) for t in tables))
    meta["shard_files"] = [p.name for p in paths]
    meta["method"] = sorted({str(t.meta.get("method")) for t in tables})
    return MetricTable(ids=ids[order], M=M, eig=eig, meta=meta)


# ----------------------------------------------------------------------------------------------
# summaries


def summarise(table: MetricTable):
    """Per-sample spectra and condition numbers, and their quantiles.

    Returns
    -------
    per_sample : pyarrow.Table, one row per id:
        ``id`` int64; ``eigenvalues`` and ``log10_eigenvalues`` fixed_size_list<double>[P]
        (ascending; log10 is NaN for λ ≤ 0); ``lambda_min``, ``lambda_2`` (2nd smallest),
        ``lambda_max``, ``trace``; ``cond`` = λ_max/λ_min and ``cond2`` = λ_max/λ_2
        (+inf when the denominator is ≤ 0); ``log10_cond``, ``log10_cond2``;
        ``singular`` (bool, λ_min ≤ P·ε·λ_max, i.e. numerically zero).
    quantiles : pyarrow.Table, long format: ``quantity`` (str), ``q`` (float64),
        ``value`` (float64), for quantities ``log10_lambda_1`` … ``log10_lambda_P``
        (1 = smallest), ``log10_cond``, ``log10_cond2``, ``log10_trace``; NaN-aware.
    """
    import pyarrow as pa

    from pnp_core.jacobian import condition_numbers

    eig = np.asarray(table.eig, dtype=np.float64)
    n, P = eig.shape
    c1, c2 = condition_numbers(eig) if n else (np.empty(0), np.empty(0))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_eig = np.where(eig > 0, np.log10(np.where(eig > 0, eig, 1.0)), np.nan)
        log_c1, log_c2 = np.log10(c1), np.log10(c2)
        trace = eig.sum(axis=1)
        log_trace = np.where(trace > 0, np.log10(np.where(trace > 0, trace, 1.0)), np.nan)
    singular = eig[:, 0] <= P * np.finfo(np.float64).eps * eig[:, -1] if n else np.empty(0, bool)
    per_sample = pa.table({
        "id": pa.array(table.ids, type=pa.int64()),
        "eigenvalues": _fixed_list(eig, P),
        "log10_eigenvalues": _fixed_list(log_eig, P),
        "lambda_min": eig[:, 0], "lambda_2": eig[:, min(1, P - 1)], "lambda_max": eig[:, -1],
        "trace": trace, "cond": c1, "cond2": c2, "log10_cond": log_c1, "log10_cond2": log_c2,
        "singular": pa.array(singular, type=pa.bool_()),
    })
    rows = []
    series = {f"log10_lambda_{i + 1}": log_eig[:, i] for i in range(P)}
    series.update(log10_cond=log_c1, log10_cond2=log_c2, log10_trace=log_trace)
    for name, values in series.items():
        finite = values[np.isfinite(values)]
        for q in QUANTILES:
            v = float(np.quantile(finite, q)) if finite.size else float("nan")
            rows.append((name, q, v))
    quantiles = pa.table({"quantity": [r[0] for r in rows], "q": [r[1] for r in rows],
                          "value": [r[2] for r in rows]})
    return per_sample, quantiles


def write_table(table, path: str | os.PathLike, meta: Mapping) -> None:
    """Write a pyarrow table atomically with JSON-encoded metadata."""
    import pyarrow.parquet as pq

    table = table.replace_schema_metadata({k: json.dumps(v) for k, v in meta.items()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# ----------------------------------------------------------------------------------------------
# other rescalings


def metric_in_rescaling(table: MetricTable, theta, dst) -> np.ndarray:
    """The stored metrics re-expressed in another rescaling (chain rule, exact).

    Parameters
    ----------
    table : MetricTable (its ``rescaling`` metadata says where M was taken)
    theta : array (n, P) float64, physical θ of ``table.ids`` (same order)
    dst : pnp_core.params.Scaler, the target rescaling (fit it on the train fold)

    Returns
    -------
    ndarray (n, P, P) float64
    """
    import torch

    from pnp_core.params import Scaler, reparametrise_metric

    src = Scaler.from_state(dst.space, table.meta["rescaling"])
    theta = torch.as_tensor(np.asarray(theta, dtype=np.float64))
    if theta.shape[0] != len(table):
        raise ValueError(f"θ has {theta.shape[0]} rows for {len(table)} metrics")
    M = torch.as_tensor(table.M)
    return reparametrise_metric(M, theta, src, dst).numpy()


__all__ = ["FORMAT", "MetricFileError", "MetricTable", "n_shards", "shard_slice", "shard_name",
           "write_metric", "read_metric", "merge_metric_shards", "summarise", "write_table",
           "metric_in_rescaling", "data_checksum"]
