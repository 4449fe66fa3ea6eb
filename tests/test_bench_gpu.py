"""benchmarks/bench_gpu.py (the GPU check of benchmarks/gpu.sh) runs end to end, here on the
CPU at the paper's settings with tiny sizes: every part writes its row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_part_on_a_cpu(tmp_path):
    out = tmp_path / "gpu.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_gpu.py"), "--device", "cpu",
                    "--shard-size", "1", "--epoch-samples", "2", "--batch", "2",
                    "--eval-sounds", "2", "--out", str(out)], check=True, cwd=tmp_path,
                   timeout=900)
    df = pd.read_csv(out)
    assert df["part"].tolist() == ["jacobian"] + ["train_epoch"] * 4 + ["eval"]
    assert df.loc[df["part"] == "train_epoch", "loss"].tolist() == ["p", "pnp", "ddsp_mss",
                                                                    "ddsp_jtfs"]
    assert (df["seconds"] > 0).all() and df["samples"].tolist() == [1, 2, 2, 2, 2, 2]
    assert df["peak_gpu_mib"].isna().all() and (df["device"] == "cpu").all()


def test_gpu_sh_refuses_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: gpu.sh would run the whole check")
    r = subprocess.run(["bash", str(ROOT / "benchmarks/gpu.sh")], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 3 and "no CUDA device" in r.stderr
