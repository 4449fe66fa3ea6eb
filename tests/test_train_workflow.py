"""The training rules: run grid and targets (the default trainings run end to end in
test_workflow.test_default_config_builds_everything)."""

from __future__ import annotations

import re

from test_workflow import snakemake

TABLE1 = ["p_seed0", "ddsp-mss_seed0", "ddsp-jtfs_seed0", "pnp-jtfs_seed0"]


def test_default_target_plans_the_table1_runs(workdir):
    out = snakemake(workdir, "-n").stdout
    for synth in ("ftm", "amfm"):
        for run in TABLE1:
            assert f"results/runs/{synth}/{run}/model.pt" in out
    assert "train                  8" in out or "train 8" in " ".join(out.split())


def test_ablation_target_plans_each_axis(workdir):
    out = snakemake(workdir, "-n", "ablations").stdout
    for run in ("p_rescale-raw_seed0", "pnp-jtfs_rescale-minmax_seed0", "p_opt-sophia_seed0",
                "pnp-jtfs_clip-norm_seed0", "pnp-jtfs_damp-constant_seed0",
                "pnp-jtfs_damp-scheduled_seed0", "pnp-jtfs_D-diag_seed0", "pnp-jtfs_D-mean_seed0",
                "pnp-mss_seed0", "p_pretrain_seed0", "pnp-jtfs_finetune_seed0",
                "ddsp-mss_finetune_seed0"):
        assert f"results/runs/ftm/{run}/model.pt" in out, run
    jobs = {re.split(r"[,\n]", job.split("output: ")[1])[0]: job
            for job in out.split("\nrule ")[1:] if "output: " in job}
    # pretraining is two rules: `train` (p_pretrain), then `finetune` consuming its model
    for run in ("pnp-jtfs_finetune_seed0", "ddsp-mss_finetune_seed0"):
        job = jobs[f"results/runs/ftm/{run}/model.pt"]
        assert job.startswith("finetune:"), job
        assert "results/runs/ftm/p_pretrain_seed0/model.pt" in job.split("output:")[0]
    assert jobs["results/runs/ftm/p_pretrain_seed0/model.pt"].startswith("train:")
    # the representation ablation: PNP on the MSS metric, computed beside the JTFS one
    job = jobs["results/runs/ftm/pnp-mss_seed0/model.pt"]
    assert "results/jacobian/ftm/mss/train.parquet" in job.split("output:")[0], job
    assert "results/jacobian/ftm/mss/train/shard-0000.parquet" in jobs
