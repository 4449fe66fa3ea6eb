"""File IO conventions: atomic writes and the one table format of the project.

Atomic writes
    Every output is first written to a temporary file in the destination folder
    and then renamed over the final path (``os.replace`` is atomic on POSIX), so
    an interrupted job never leaves a half-written file that looks complete.

Tables
    Every tabular output (params, metric shards and merged metrics, summaries,
    histories, predictions, per-sample metrics) is a Parquet file written by
    :func:`write_table` and read by :func:`read_table`. Its Arrow schema metadata
    holds one key, ``pnp``, whose value is a JSON object with at least

    ``format``
        ``"<name>/<version>"``, e.g. ``"pnp-params/1"``; checked on read, so a
        file of another kind or of an older layout is refused with its path;
    ``provenance``
        where the numbers come from (:data:`pnp_core.spec.PROVENANCE_KEYS`),

    ``meta_sha256``
        the SHA-256 of the rest of this JSON object (canonical: sorted keys), so a
        flipped bit in the metadata is refused on read instead of silently changing,
        e.g., the scaler bounds a metric was taken in (a file without it is refused),

    and whatever else the writer adds. Parquet page checksums are written and
    verified. Columns are documented where each format is defined.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple

import pandas as pd

from pnp_core.errors import TableFileError

#: the Arrow schema-metadata key holding a table's JSON metadata
META_KEY = b"pnp"

#: what each table format is and which step writes it (for "wrong file" messages)
KNOWN_FORMATS = {
    "pnp-params": "a params table (id, fold, bin_code, θ; written by `pnp dataset`)",
    "pnp-metric": "a metric file (M = JᵀJ per sample; written by `pnp jacobian` or "
                  "`pnp merge-jacobian`)",
    "pnp-metric-summary": "a metric summary (written by `pnp jacobian-summary --out`)",
    "pnp-metric-quantiles": "a quantile table (written by `pnp jacobian-summary "
                            "--quantiles-out`)",
}


def _meta_checksum(meta: Mapping) -> str:
    import hashlib

    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _split_format(fmt: str) -> tuple[str, int]:
    name, _, version = str(fmt).rpartition("/")
    if not name or not version.isdigit():
        raise ValueError(f"table format must look like 'name/1', got {fmt!r}")
    return name, int(version)


def write_table(data, path: str | os.PathLike, fmt: str, meta: Mapping | None = None) -> None:
    """Write a table atomically with its format and JSON metadata.

    Parameters
    ----------
    data : pandas.DataFrame or pyarrow.Table
        A DataFrame is written without its index.
    path : output path (.parquet)
    fmt : ``"<name>/<version>"`` of the table's layout
    meta : JSON-serialisable mapping stored beside ``format`` (e.g. ``provenance``)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    _split_format(fmt)
    table = pa.Table.from_pandas(data, preserve_index=False) if isinstance(data, pd.DataFrame) \
        else data
    merged = dict(table.schema.metadata or {})
    full = {**(meta or {}), "format": fmt}
    full["meta_sha256"] = _meta_checksum(full)
    merged[META_KEY] = json.dumps(full, sort_keys=True).encode()
    table = table.replace_schema_metadata(merged)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, write_page_checksum=True)


class Table(NamedTuple):
    """A table read by :func:`read_table`: ``data`` (DataFrame or pyarrow.Table) and ``meta``."""

    data: object
    meta: dict


def _hint(what: str) -> str:
    return f"delete it and rerun the rule that writes {what}" if what else \
        "delete it and rerun the rule that wrote it"


def read_table_meta(path: str | os.PathLike, fmt: str | None = None, *, what: str = "") -> dict:
    """The JSON metadata of a table file, its format checked against ``fmt`` (name/version)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.exists():
        raise TableFileError(f"{path}: file not found; run the rule that writes "
                             f"{what or 'it'} first (e.g. snakemake {path})")
    try:
        raw = pq.read_schema(path).metadata or {}
    except (pa.ArrowException, OSError) as err:
        raise TableFileError(f"{path}: not a readable Parquet file, truncated or corrupted "
                             f"({err}); {_hint(what)}") from None
    return _decode_meta(path, raw, fmt, what)


def _decode_meta(path: Path, raw: Mapping, fmt: str | None, what: str) -> dict:
    if META_KEY not in raw:
        got = "no pnp metadata"
        raise TableFileError(f"{path}: {got}, so not a table written by pnp_core"
                             + (f" (expected format {fmt!r})" if fmt else "") + f"; {_hint(what)}")
    try:
        meta = json.loads(raw[META_KEY].decode())
        if not isinstance(meta, dict):
            raise ValueError("metadata is not a JSON object")
    except (UnicodeDecodeError, ValueError) as err:
        raise TableFileError(f"{path}: corrupted metadata ({err}); {_hint(what)}") from None
    if meta.get("meta_sha256") != _meta_checksum(meta):
        why = "its checksum does not match" if "meta_sha256" in meta else "no checksum"
        raise TableFileError(f"{path}: corrupted metadata ({why}: a damaged or hand-edited "
                             f"file, or one written before pnp_core 0.1 checked them); "
                             f"{_hint(what)}")
    if fmt is not None:
        want_name, want_version = _split_format(fmt)
        got = str(meta.get("format", ""))
        try:
            got_name, got_version = _split_format(got)
        except ValueError:
            raise TableFileError(f"{path}: corrupted metadata (format {got!r}); {_hint(what)}") \
                from None
        if got_name != want_name:
            got_what = KNOWN_FORMATS.get(got_name, f"a {got_name!r} table")
            want_what = KNOWN_FORMATS.get(want_name, f"a {want_name!r} table")
            raise TableFileError(f"{path}: this is {got_what} (format {got}), not {want_what} "
                                 f"(format {fmt}); keep the file and pass the right path")
        if got_version != want_version:
            raise TableFileError(f"{path}: format {got} but this pnp_core reads {fmt}; "
                                 f"{_hint(what)}")
    return meta


def read_table(path: str | os.PathLike, fmt: str, *, what: str = "", arrow: bool = False,
               columns: list[str] | None = None) -> Table:
    """Read a table written by :func:`write_table`, checking its format.

    Parameters
    ----------
    path : the .parquet file
    fmt : expected ``"<name>/<version>"``
    what : a few words on what the file is, for error messages ("the params table")
    arrow : return a pyarrow.Table instead of a DataFrame
    columns : read only these columns

    Raises
    ------
    TableFileError
        Naming ``path``: missing, unreadable/corrupted (page checksums are verified),
        not a pnp table, of another format or version, or lacking a requested column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    meta = read_table_meta(path, fmt, what=what)
    try:
        table = pq.read_table(path, columns=columns, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as err:
        if columns and "No match for FieldRef" in str(err) or "not in schema" in str(err):
            have = pq.read_schema(path).names
            raise TableFileError(f"{path}: lacks column(s) "
                                 f"{sorted(set(columns) - set(have))} (has {have}); "
                                 f"{_hint(what)}") from None
        raise TableFileError(f"{path}: unreadable Parquet file, truncated or corrupted ({err}); "
                             f"{_hint(what)}") from None
    return Table(table if arrow else table.to_pandas(), meta)


def write_csv(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a small table meant to be read by people (a summary, a result) as CSV,
    atomically, floats with 6 significant digits. Pipeline tables use :func:`write_table`."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")


__all__ = ["atomic_path", "write_table", "read_table", "read_table_meta", "write_csv", "Table",
           "META_KEY"]
