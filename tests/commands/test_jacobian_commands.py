"""`pnp dataset`, `pnp jacobian`, `pnp merge-jacobian`, `pnp jacobian-summary` end to end."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import testing_plugins  # noqa: F401  (registers _test_sqrt, _test_identity)

from pnp_core.cli import main
from pnp_core.synth.datasets import load_params, write_params
from pnp_core.features import get_feature
from pnp_core.metric.jacobian import JacobianComputer, compute_metrics
from pnp_core.metric.file import read_metric
from pnp_core.params import Scaler
from pnp_core.synth import get_synth


AMFM_ENTRY = {"type": "amfm", "settings": {"sr": 8192, "n_samples": 2048},
              "rescaling": "logminmax",
              "dataset": {"bins": 3, "val_margin": 1, "n_test": 5, "seed": 1, "jitter": "linear"},
              "feature": {"type": "mss", "settings": {"n_ffts": [256, 64]}}}


def test_cli_jacobian_merge_summary_end_to_end(tmp_path, capsys):
    entry = json.dumps(AMFM_ENTRY)
    params = tmp_path / "params.parquet"
    assert main(["dataset", "--entry", entry, "--out", str(params)]) == 0
    shards = [tmp_path / "test" / f"shard-{k:04d}.parquet" for k in range(3)]
    for k, path in enumerate(shards):
        assert main(["jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                     "--shard", f"{k:04d}", "--shard-size", "2", "--batch-size", "2",
                     "--device", "cpu", "--no-progress", "--out", str(path)]) == 0
    merged = tmp_path / "test.parquet"
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(merged), *map(str, shards)]) == 0
    summary, quant = tmp_path / "test.summary.parquet", tmp_path / "test.quantiles.parquet"
    assert main(["jacobian-summary", str(merged), "--out", str(summary),
                 "--quantiles-out", str(quant)]) == 0

    fold = load_params(params, "test")
    table = read_metric(merged)
    np.testing.assert_array_equal(table.ids, fold["id"].to_numpy())
    meta = table.meta
    assert meta["provenance"]["synth"] == "amfm" and meta["fold"] == "test"
    assert meta["n_params"] == 3 and meta["provenance"]["rescaling"] == "logminmax"
    assert meta["param_names"] == ["f_c", "f_m", "gamma"] and meta["n_shards"] == 3
    # the scaler is fitted on the train fold, not on the fold being computed
    synth = get_synth("amfm", sr=8192, n_samples=2048)
    space = synth.space
    all_df = load_params(params)
    train_scaler = Scaler.fit(space, "logminmax",
                              all_df[all_df["fold"] == "train"][space.names].to_numpy())
    assert meta["scaler"] == train_scaler.state()
    assert meta["scaler"] != Scaler.fit(space, "logminmax", fold[space.names]).state()
    # the stored metrics are the direct computation
    feature = get_feature("mss", n_samples=2048, n_ffts=[256, 64])
    computer = JacobianComputer(synth, feature, train_scaler, method="jvp")
    ids, M, eig = compute_metrics(fold, computer, batch_size=5, progress=False)
    np.testing.assert_allclose(table.M, M, rtol=1e-10)
    np.testing.assert_allclose(table.eig, eig, rtol=1e-8)
    per = pq.read_table(summary).to_pandas()
    assert list(per["id"]) == list(ids) and (per["cond"] >= per["cond2"]).all()
    assert set(pq.read_table(quant).column("quantity").to_pylist()) >= {"log10_cond", "log10_cond2"}

    # a truncated shard stops the merge with an error naming it
    shards[2].write_bytes(shards[2].read_bytes()[:100])
    capsys.readouterr()
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(tmp_path / "again.parquet"), *map(str, shards)]) == 2
    assert "shard-0002.parquet" in capsys.readouterr().err
    assert not (tmp_path / "again.parquet").exists()
    # so does a missing shard
    assert main(["merge-jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--out", str(tmp_path / "again.parquet"), *map(str, shards[:2])]) == 2
    assert "missing" in capsys.readouterr().err


def test_cli_jacobian_nan_stops_without_output(tmp_path, capsys):
    params = tmp_path / "params.parquet"
    df = pd.DataFrame({"id": np.arange(4, dtype=np.int64), "fold": ["train", "train", "test", "test"],
                       "bin_code": ["0", "1", "2", "3"], "a": [1.6, 1.9, 1.2, 1.8],
                       "b": [2.0, 3.0, 4.0, 5.0]})
    write_params(df, params, {"synth": "_test_sqrt"}, {"a": "1", "b": "Hz"})
    entry = json.dumps({"type": "_test_sqrt", "rescaling": "logminmax",
                        "dataset": {"bins": 2, "val_margin": 0, "n_test": 0},
                        "feature": {"type": "_test_identity", "settings": {}}})
    out = tmp_path / "shard-0000.parquet"
    assert main(["jacobian", "--entry", entry, "--params", str(params), "--fold", "test",
                 "--no-progress", "--method", "jvp", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ids: 2" in err and len(err.strip().splitlines()) == 1  # one line, no traceback
    assert list(tmp_path.iterdir()) == [params]
