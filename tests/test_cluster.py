"""The SLURM profile against a real SLURM: a one-node cluster on this machine
(tests/slurm_cluster.py; root + Debian, installs slurmctld/slurmd/munge when missing) runs a
tiny config through `snakemake --workflow-profile tests/data/slurm_profile` (the cluster
profile's settings without GPUs). A running Jacobian shard is cancelled (`scancel`):
Snakemake resubmits that shard alone. One training is preempted (`scontrol requeue`: SLURM
restarts it under the same job id) and then cancelled (Snakemake resubmits it); each time it
resumes from checkpoint/last.pt. Run with `pytest -m cluster` (~5 min on 2 busy cores).
The test fails, never skips, when SLURM cannot be started.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from slurm_cluster import LocalSlurm, SlurmError

pytestmark = pytest.mark.cluster

BIN = Path(sys.executable).parent
PROFILE = Path(__file__).parent / "data" / "slurm_profile"
TABLE1 = ["p_seed0", "ddsp-mss_seed0", "ddsp-jtfs_seed0", "pnp-jtfs_seed0"]
# What the cluster run builds: Table 1 of the tiny config (dataset, Jacobians, the four
# trainings, test features, evaluations, the table).
TARGETS = ["results/table1.csv"]
# cancelled while running; the wildcards are synth, rep ("" = the JTFS metric), fold, shard
SHARD = "rule_compute_jacobian_wildcards_amfm__train_0001"
VICTIM = "ddsp-jtfs_seed0"  # the slowest training per epoch (~3 s): preempted, then cancelled
# 10 epochs: the requeue and the scancel must each land with epochs left to resume; with 6,
# a CI run once requeued the victim as it was finishing and it never resumed
EPOCHS = 10

# One small synth, a small JTFS, 3 Jacobian shards (52 train sounds in 2, 8 val in 1),
# 10-epoch small-CNN trainings.
CONFIG = f"""
plugins: []
device: cpu
synths:
  amfm:
    type: amfm
    settings: {{sr: 8192, n_samples: 4096}}
    rescaling: logminmax
    dataset: {{bins: 4, val_margin: 1, n_test: 4, seed: 1, jitter: linear}}
    feature:
      type: jtfs
      settings: {{J: 6, Q: [8, 1], Q_fr: 1, F: 2, T: global, log_eps: 0.001}}
    cqt: {{octaves: 4, hop_length: 256}}
features: {{folds: [test], batch_size: 4}}
jacobian: {{folds: [train, val], shard_size: 26, batch_size: 4, threads: 1,
           mem_mb: 1000, runtime: 10}}
training:
  encoder: {{type: small_cnn, channels: [4, 8]}}
  epochs: {EPOCHS}
  samples_per_epoch: 16
  batch_size: {{p: 8, pnp: 8, ddsp_mss: 4, ddsp_jtfs: 4}}
  val_batch_size: 8
  mss: {{n_ffts: [256, 64]}}
  cache_inputs: true
  seeds: [0]
  threads: 1
  ablations: []
  mem_mb: 1000
  runtime: 10
"""


@pytest.fixture(scope="session")
def slurm():
    """A running one-node SLURM cluster; its daemons are stopped by pid afterwards."""
    cluster = LocalSlurm(Path(tempfile.mkdtemp(prefix="pnp-slurm-")))
    try:
        try:
            cluster.start()
        except SlurmError as err:
            pytest.fail(f"SLURM could not be started: {err}")
        yield cluster
    finally:
        _cancel_all(cluster)
        cluster.stop()
        shutil.rmtree(cluster.root, ignore_errors=True)  # failures quote the daemon logs


def _cancel_all(cluster: LocalSlurm) -> None:
    """scancel every job left in this (private) cluster's queue, by id."""
    if not cluster.conf.exists():
        return
    ids = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()
    if ids:
        cluster.run("scancel", *ids, check=False)
    deadline = time.time() + 60
    while ids and time.time() < deadline:
        time.sleep(1)
        ids = cluster.run("squeue", "-h", "-o", "%i", check=False).stdout.split()


def _wait(what: str, condition, proc: subprocess.Popen, log: Path, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what} (snakemake rc {proc.poll()}):\n"
                         f"{log.read_text()[-6000:]}")


def _epochs_done(last: Path) -> int:
    """Epochs in the checkpoint (written atomically after every epoch), 0 if none yet."""
    try:
        return len(torch.load(last, map_location="cpu", weights_only=False)["history"])
    except (OSError, EOFError, RuntimeError, KeyError):
        return 0


def _resumed_from(train_log: Path) -> int | None:
    """The epoch `pnp train` says it resumed from, or None."""
    text = train_log.read_text() if train_log.exists() else ""
    found = re.findall(r"resuming \S+ from epoch (\d+)", text)
    return int(found[-1]) if found else None


def test_tiny_config_through_slurm_survives_requeue_and_scancel(slurm, workdir):
    start = time.time()
    (workdir / "config.yaml").write_text(CONFIG)
    env = {**slurm.env, "PATH": f"{BIN}{os.pathsep}{slurm.env['PATH']}"}
    cmd = [str(BIN / "snakemake"), *TARGETS, "--workflow-profile", str(PROFILE)]
    out = workdir / "snakemake.out"
    last = workdir / f"results/runs/amfm/{VICTIM}/checkpoint/last.pt"
    train_log = workdir / f"logs/train/amfm/{VICTIM}.log"

    with open(out, "w") as sink:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=sink,
                                stderr=subprocess.STDOUT)
    try:
        def job_of(wildcards):
            lines = slurm.run("squeue", "-h", "-o", "%i %t %k").stdout.splitlines()
            return [ln.split()[:2] for ln in lines if ln.endswith(wildcards)]

        def running(wildcards):
            return [j for j, state in job_of(wildcards) if state == "R"]

        # 0. a running Jacobian shard is cancelled: Snakemake resubmits it (retries: 1)
        shard_job = _wait("the running shard job", lambda: running(SHARD), proc, out)[0]
        slurm.run("scancel", shard_job)

        # 1. preemption: once an epoch is checkpointed, SLURM requeues the running job
        k1 = _wait("the first checkpoint", lambda: _epochs_done(last), proc, out)
        job = _wait("the training job running", lambda: running(f"amfm_{VICTIM}"), proc,
                    out)[0]
        assert k1 <= EPOCHS - 3, f"the victim ran {k1} of {EPOCHS} epochs before the requeue"
        slurm.run("scontrol", "requeue", job)
        k = _wait("the requeued job to resume", lambda: _resumed_from(train_log), proc, out)
        assert k >= k1 >= 1, (k, k1)

        # 2. cancellation: scancel after a further epoch; Snakemake resubmits (retries: 1)
        _wait("an epoch after resuming", lambda: _epochs_done(last) > k, proc, out)
        slurm.run("scancel", job)
        k2 = _wait("the resubmitted job to resume",
                   lambda: (_resumed_from(train_log) or 0) > k and _resumed_from(train_log),
                   proc, out)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.terminate()  # Snakemake cancels its SLURM jobs on SIGTERM
            proc.wait(timeout=120)
    text = out.read_text()
    assert proc.returncode == 0, text[-6000:]
    duration = time.time() - start

    # the jobs went through SLURM: a job id per job, in Snakemake's log and in slurmctld's
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)",
                           text)
    rules = [re.search(r"slurm_logs/rule_(\w+?)/", log).group(1) for _, log in submitted]
    assert sorted(set(rules)) == ["compute_features", "compute_jacobian", "evaluate",
                                  "make_dataset", "merge_jacobian", "table1", "train"]
    shards = [log for _, log in submitted if "rule_compute_jacobian" in log]
    assert sorted(Path(log).parent.name for log in shards) == [
        "amfm__train_0000", "amfm__train_0001", "amfm__train_0001", "amfm__val_0000"]
    assert f"SLURM-job '{shard_job}' failed, SLURM status is: 'CANCELLED'" in text
    assert rules.count("train") == len(TABLE1) + 1  # the cancelled run once more
    ctld = (slurm.root / "slurmctld.log").read_text()
    for job_id, _ in submitted:
        assert f"JobId={job_id} " in ctld, job_id
    assert re.search(rf"[Rr]equeu\w* JobId={job}\b", ctld)
    assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in text

    # the victim resumed twice and its history is whole
    assert k2 > k >= 1
    hist = pd.read_parquet(workdir / f"results/runs/amfm/{VICTIM}/history.parquet")
    assert hist["epoch"].tolist() == list(range(1, EPOCHS + 1))
    table = pd.read_csv(workdir / "results/table1.csv")
    assert len(table) == len(TABLE1) and (table["n_test"] == 4).all()
    assert table[["jtfs_mean", "mss_mean", "param_err_mean"]].notna().all().all()

    # a second run has nothing to do
    again = subprocess.run(cmd + ["-n"], cwd=workdir, env=env, capture_output=True, text=True,
                           timeout=300)
    assert "Nothing to be done" in again.stdout + again.stderr
    print(f"\ncluster run: {duration:.0f} s, SLURM jobs {[j for j, _ in submitted]}, "
          f"shard job {shard_job} cancelled and resubmitted, {VICTIM} requeued at epoch {k}, cancelled and resumed at epoch {k2}")
