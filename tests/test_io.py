"""The table convention: atomic Parquet with a format name/version checked on read."""

from __future__ import annotations

import pandas as pd
import pytest

from pnp_core.errors import TableFileError
from pnp_core.io import read_table, read_table_meta, write_table


def test_roundtrip_keeps_data_and_metadata(tmp_path):
    df = pd.DataFrame({"id": [1, 2], "x": [0.5, 1.5]})
    write_table(df, tmp_path / "t.parquet", "pnp-thing/1", {"provenance": {"synth": "ftm"}})
    back, meta = read_table(tmp_path / "t.parquet", "pnp-thing/1")
    pd.testing.assert_frame_equal(back, df)
    assert meta["format"] == "pnp-thing/1" and meta["provenance"] == {"synth": "ftm"}


def test_wrong_kind_version_or_foreign_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "t.parquet"
    write_table(pd.DataFrame({"a": [1]}), path, "pnp-thing/1")
    with pytest.raises(TableFileError, match=r"t.parquet: this is a 'pnp-thing' table .*not a "
                                             r"'pnp-other' table"):
        read_table(path, "pnp-other/1")
    with pytest.raises(TableFileError, match=r"t.parquet: format pnp-thing/1 but this pnp_core "
                                             r"reads pnp-thing/2"):
        read_table(path, "pnp-thing/2")
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(TableFileError, match=r"plain.parquet: no pnp metadata"):
        read_table_meta(plain, "pnp-thing/1")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(TableFileError, match=r"junk.parquet: not a readable Parquet file"):
        read_table(tmp_path / "junk.parquet", "pnp-thing/1")
    with pytest.raises(TableFileError, match=r"lacks column\(s\) \['b'\]"):
        read_table(path, "pnp-thing/1", columns=["b"])
