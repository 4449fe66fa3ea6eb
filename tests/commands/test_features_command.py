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
    # Entitled tolerance: g and Φ run in float64 (differences between batch sizes, threads
    # or kernels ~1e-13 of a row's largest value), then round to float32: two stored
    # values may differ by one float32 rounding step (2**-23 relative), nothing more.
    # (In float32 a 1-ulp change of f_c moves these features by ~5e-5 of the row maximum,
    # which is why this comparison once failed at rtol=1e-5.)
    a, b = load_fold_features(out1)["features"].double(), data["features"].double()
    row_max = a.abs().amax(dim=1, keepdim=True)
    assert ((a - b).abs() <= 2**-23 * a.abs() + 1e-12 * row_max).all()
