"""The metric file format: shards, checksums, merge and its checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from pnp_core.metric.file import (MetricFileError, MetricTable, merge_metric_shards, n_shards,
                                  read_metric, shard_name, shard_slice, write_metric)

# ---------------------------------------------------------------------------------------------
# shard files and merge


def _table(ids, M=None, meta=None):
    ids = np.asarray(ids, dtype=np.int64)
    if M is None:
        rng = np.random.default_rng(int(ids.sum()))
        A = rng.normal(size=(len(ids), 3, 3))
        M = A @ np.swapaxes(A, 1, 2)
    return MetricTable(ids=ids, M=M, eig=np.linalg.eigvalsh(M), meta=dict(meta or {}))


def _write_shards(folder: Path, fold_ids, shard_size, **meta_over):
    paths = []
    k = -(-len(fold_ids) // shard_size)
    for s in range(k):
        t = _table(fold_ids[shard_slice(len(fold_ids), shard_size, s)])
        meta = {"provenance": {"synth": "x"}, "fold": "test", "shard": s, "n_shards": k,
                "shard_size": shard_size,
                "scaler": {"kind": "logminmax", "lo": [0, 0, 0], "hi": [1, 1, 1]}, **meta_over}
        path = folder / f"shard-{s:04d}.parquet"
        write_metric(path, t.ids, t.M, t.eig, meta)
        paths.append(path)
    return paths


def test_shard_roundtrip_and_merge_is_complete_and_sorted(tmp_path):
    fold_ids = np.array([3, 8, 9, 15, 21, 40, 41])
    paths = _write_shards(tmp_path, fold_ids, 3)
    t0 = read_metric(paths[0])
    assert list(t0.ids) == [3, 8, 9] and t0.M.shape == (3, 3, 3) and t0.meta["shard"] == 0
    schema = pq.read_schema(paths[0])
    assert str(schema.field("M").type) == "fixed_size_list<element: double>[9]"
    merged = merge_metric_shards(paths[::-1], fold_ids)
    assert list(merged.ids) == list(fold_ids)
    assert merged.meta["shard"] == "merged"
    np.testing.assert_array_equal(merged.M[:3], t0.M)
    out = tmp_path / "merged.parquet"
    write_metric(out, merged.ids, merged.M, merged.eig, merged.meta)
    back = read_metric(out)
    np.testing.assert_array_equal(back.ids, fold_ids)
    np.testing.assert_array_equal(back.eig, merged.eig)


def test_merge_detects_a_missing_id(tmp_path):
    fold_ids = np.arange(10, 17)
    paths = _write_shards(tmp_path, fold_ids, 3)
    with pytest.raises(MetricFileError, match=r"1 id\(s\) of the fold are missing.*: 16"):
        merge_metric_shards(paths[:2], fold_ids)
    with pytest.raises(MetricFileError, match=r"missing.*: 99"):
        merge_metric_shards(paths, np.append(fold_ids, 99))


def test_merge_detects_a_duplicate_id(tmp_path):
    fold_ids = np.arange(10, 17)
    paths = _write_shards(tmp_path, fold_ids, 3)
    t = _table([12, 13, 14, 15])  # shard 1 now also holds id 12 of shard 0
    write_metric(paths[1], t.ids, t.M, t.eig, read_metric(paths[1]).meta)
    with pytest.raises(MetricFileError, match=r"duplicate sample id\(s\).*12.*shard-0000.parquet "
                                              r"and .*shard-0001.parquet"):
        merge_metric_shards(paths, fold_ids)


def test_merge_detects_a_foreign_id_and_inconsistent_shards(tmp_path):
    fold_ids = np.arange(10, 16)
    paths = _write_shards(tmp_path, fold_ids, 3)
    t = _table([13, 14, 15, 77])
    write_metric(paths[1], t.ids, t.M, t.eig, read_metric(paths[1]).meta)
    with pytest.raises(MetricFileError, match=r"not in the fold: 77 .*shard-0001"):
        merge_metric_shards(paths, fold_ids)
    other = tmp_path / "other"
    other.mkdir()
    paths = _write_shards(tmp_path, fold_ids, 3)
    stale = _write_shards(other, fold_ids, 3, scaler={"kind": "log", "lo": None, "hi": None})
    with pytest.raises(MetricFileError, match=r"other/shard-0001.parquet: metadata scaler"):
        merge_metric_shards([paths[0], stale[1]], fold_ids)


@pytest.mark.parametrize("damage", ["truncate", "corrupt", "empty"])
def test_merge_detects_a_damaged_shard_naming_the_file(tmp_path, damage):
    fold_ids = np.arange(100)
    paths = _write_shards(tmp_path, fold_ids, 50)
    raw = paths[1].read_bytes()
    if damage == "truncate":
        paths[1].write_bytes(raw[: len(raw) // 2])
    elif damage == "empty":
        paths[1].write_bytes(b"")
    else:  # flip bytes inside the first data page (after the 4-byte magic)
        buf = bytearray(raw)
        for i in range(40, 60):
            buf[i] ^= 0xFF
        paths[1].write_bytes(bytes(buf))
    with pytest.raises(MetricFileError, match=r"shard-0001\.parquet: .*(corrupt|truncated)"):
        merge_metric_shards(paths, fold_ids)


def test_checksum_catches_silent_data_changes(tmp_path):
    # A file that Parquet reads fine but whose data changed (e.g. rewritten by other code).
    path = _write_shards(tmp_path, np.arange(5), 5)[0]
    table = pq.read_table(path)
    meta = table.schema.metadata
    ids = table.column("id").to_numpy().copy()
    ids[0] = 99
    import pyarrow as pa

    forged = table.set_column(0, "id", pa.array(ids)).replace_schema_metadata(meta)
    pq.write_table(forged, path)
    with pytest.raises(MetricFileError, match=r"shard-0000.parquet: data checksum mismatch"):
        read_metric(path)


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    import pyarrow.parquet as pq_mod

    def dies(table, where, **kw):
        Path(where).write_bytes(b"PAR1 half a file")
        raise KeyboardInterrupt  # a kill in the middle of writing

    monkeypatch.setattr(pq_mod, "write_table", dies)
    t = _table([1, 2])
    with pytest.raises(KeyboardInterrupt):
        write_metric(tmp_path / "shard-0000.parquet", t.ids, t.M, t.eig, {})
    assert list(tmp_path.iterdir()) == []


def test_shard_slices_partition_the_fold():
    rows = [shard_slice(10, 4, k) for k in range(3)]
    assert [(r.start, r.stop) for r in rows] == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError, match="shard 3 does not exist"):
        shard_slice(10, 4, 3)
    assert n_shards(236, 100) == 3 and n_shards(0, 100) == 0
    assert shard_name(2) == "shard-0002.parquet"

