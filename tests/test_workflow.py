"""Real Snakemake runs on a scratch copy of the workflow (see conftest.workdir)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BIN = Path(sys.executable).parent


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "snakemake"), *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=1800)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def test_lint_reports_nothing(workdir):
    proc = snakemake(workdir, "--lint")
    assert "Lints for" not in proc.stdout + proc.stderr


def test_snakefmt_is_clean(repo):
    proc = subprocess.run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/"],
                          cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_paper_preset_builds_the_dag(workdir):
    proc = snakemake(workdir, "-n", "--configfile", "workflow/presets/paper.yaml")
    out = proc.stdout + proc.stderr
    assert "make_dataset" in out and "Job stats" in out


def test_bad_config_fails_before_any_job(workdir):
    proc = snakemake(workdir, "-n", "--config", "device=tpu", check=False)
    assert proc.returncode != 0
    assert "config key 'device'" in proc.stdout + proc.stderr


def test_dataset_rule_default_and_paper_fold_sizes(workdir):
    targets = ["results/data/ftm/params.parquet", "results/data/amfm/params.parquet"]
    snakemake(workdir, "--cores", "2", *targets)
    ftm = pd.read_parquet(workdir / targets[0])
    assert ftm["fold"].value_counts().to_dict() == {"train": 928, "test": 64, "val": 32}
    # targets first: --configfile takes several values; the paper preset's results_dir
    paper = [t.replace("results/", "results/paper/") for t in targets]
    snakemake(workdir, *paper, "--cores", "2", "--configfile", "workflow/presets/paper.yaml")
    ftm = pd.read_parquet(workdir / paper[0])
    amfm = pd.read_parquet(workdir / paper[1])
    assert ftm["fold"].value_counts().to_dict() == {"train": 82224, "test": 10000, "val": 7776}
    assert amfm["fold"].value_counts().to_dict() == {"train": 21556, "test": 2700, "val": 2744}
    assert (workdir / "logs/paper/make_dataset/ftm.log").exists()


@pytest.mark.slow
def test_default_config_builds_everything(workdir):
    """`snakemake --cores 2` on the laptop config: datasets, features, metrics, trainings,
    evaluations and Table 1."""
    snakemake(workdir, "--cores", "2")
    params = pd.read_parquet(workdir / "results/data/ftm/params.parquet")
    merged = pd.read_parquet(workdir / "results/jacobian/ftm/train.parquet")
    train_ids = params.loc[params["fold"] == "train", "id"]
    assert sorted(merged["id"]) == sorted(train_ids)
    for synth in ("ftm", "amfm"):
        for fold in ("train", "val", "test"):
            assert (workdir / f"results/jacobian/{synth}/{fold}.parquet").exists()
        assert (workdir / f"results/features/{synth}/test.pt").exists()
    # the Table-1 trainings: finite histories, a resumable checkpoint each
    for synth in ("ftm", "amfm"):
        for run in ("p_seed0", "ddsp-mss_seed0", "ddsp-jtfs_seed0", "pnp-jtfs_seed0"):
            hist = pd.read_parquet(workdir / f"results/runs/{synth}/{run}/history.parquet")
            cols = ["train_loss", "val_loss", "val_ploss", "lr", "seconds"]
            assert len(hist) >= 1 and np.isfinite(hist[cols].to_numpy()).all(), (synth, run)
            assert (workdir / f"results/runs/{synth}/{run}/checkpoint/last.pt").exists()
    # Table 1: every row finite, every test sample evaluated
    table = pd.read_csv(workdir / "results/table1.csv")
    assert len(table) == 8 and (table["n_runs"] == 1).all()
    cols = ["jtfs_mean", "micro_mean", "mss_mean", "param_err_mean", "sec_per_epoch_mean"]
    assert np.isfinite(table[cols].to_numpy()).all()
    for synth in ("ftm", "amfm"):
        folds = pd.read_parquet(workdir / f"results/data/{synth}/params.parquet")["fold"]
        assert (table.loc[table["synth"] == synth, "n_test"] == (folds == "test").sum()).all()
    # a second run has nothing to do
    proc = snakemake(workdir, "--cores", "2", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr



def test_workflow_plans_one_job_per_shard(workdir):
    (workdir / "shards.yaml").write_text("jacobian: {shard_size: 300, folds: [train]}\n")
    proc = snakemake(workdir, "results/jacobian/ftm/train.summary.parquet", "-n",
                     "--configfile", "shards.yaml", "--quiet", "rules")
    counts = dict(line.split()[:2] for line in proc.stdout.splitlines()
                  if line.split()[:1] and line.split()[0].endswith("_jacobian"))
    # default FTM design: 4**5 − 2**5 − 64 = 928 train samples → ceil(928 / 300) = 4 shards
    assert counts == {"compute_jacobian": "4", "merge_jacobian": "1", "summarise_jacobian": "1"}


TINY = """
plugins: []
device: cpu
synths:
  amfm:
    type: amfm
    settings: {{sr: 8192, n_samples: 2048}}
    rescaling: {rescaling}
    dataset: {{bins: 3, val_margin: 1, n_test: 4, seed: 1, jitter: linear}}
    feature: {{type: mss, settings: {{n_ffts: [256, 64]}}}}
features: {{folds: [test], batch_size: 4}}
jacobian: {{folds: [test], shard_size: 100, batch_size: 2, threads: 1}}
"""


def test_rules_rerun_only_when_their_own_config_slice_changes(workdir):
    """Changing `rescaling` reruns the Jacobian jobs, not the dataset or feature jobs."""
    targets = ["results/jacobian/amfm/test.parquet", "results/features/amfm/test.pt"]
    (workdir / "config.yaml").write_text(TINY.format(rescaling="logminmax"))
    snakemake(workdir, "--cores", "2", *targets)
    again = snakemake(workdir, *targets, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr
    (workdir / "config.yaml").write_text(TINY.format(rescaling="minmax"))
    out = snakemake(workdir, *targets, "-n", "--quiet", "rules").stdout
    planned = {line.split()[0] for line in out.splitlines() if line.split()[1:2]
               and line.split()[1].isdigit()}
    assert {"compute_jacobian", "merge_jacobian"} <= planned, out
    assert not planned & {"make_dataset", "compute_features"}, out
