import json

import torch

from pnp_core.cli import main
from pnp_core.features.fold import load_fold_features


def test_features_cli_writes_fold_file(tmp_path):
    entry = {"type": "amfm", "settings": {"sr": 8192, "n_samples": 2048},
             "dataset": {"bins": 3, "val_margin": 1, "n_test": 4},
             "feature": {"type": "mss", "settings": {"n_ffts": [256, 64]}}}
    params, out = tmp_path / "params.parquet", tmp_path / "test.pt"
    assert main(["dataset", "--entry", json.dumps(entry), "--out", str(params)]) == 0
    assert main(["features", "--entry", json.dumps(entry), "--params", str(params),
                 "--fold", "test", "--batch-size", "3", "--out", str(out)]) == 0
    data = load_fold_features(out)
    assert data["features"].shape[0] == 4 and data["features"].dtype == torch.float32
    assert torch.equal(data["ids"], data["ids"].sort().values)
    prov = data["provenance"]
    assert data["fold"] == "test" and prov["synth"] == "amfm" and prov["feature"] == "mss"
    assert "rescaling" not in prov  # the features do not depend on it
    # rows are Φ(g(θ)) of the listed ids, whatever the batch size
    out1 = tmp_path / "test1.pt"
    assert main(["features", "--entry", json.dumps(entry), "--params", str(params),
                 "--fold", "test", "--batch-size", "1", "--out", str(out1)]) == 0
    assert torch.allclose(load_fold_features(out1)["features"], data["features"], rtol=1e-5)
