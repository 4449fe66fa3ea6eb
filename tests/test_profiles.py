"""The workflow profiles resolve the paper grid (dry runs; no SLURM needed): GPU requests on
the GPU rules only, the config's runtime/memory, the site values left to the user. The real
SLURM run is tests/test_cluster.py (`pytest -m cluster`)."""

from __future__ import annotations

import os
import re

import yaml

from test_workflow import snakemake


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, resources) of every job in a `snakemake -n` listing."""
    jobs = []
    for block in re.split(r"\n(?=rule \w+:)", output):
        rule = re.match(r"rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res:
            pairs = (kv.split("=", 1) for kv in res.group(1).split(", "))
            jobs.append((rule.group(1), dict(pairs)))
    return jobs


def dry_run(workdir, monkeypatch, profile, *args):
    for key in [k for k in os.environ if k.startswith("SLURM_")]:  # no cluster leaks in
        monkeypatch.delenv(key)
    proc = snakemake(workdir, "-n", "--workflow-profile", f"workflow/profiles/{profile}", *args)
    return proc.stdout + proc.stderr


def test_slurm_profile_requests_gpus_and_config_resources_at_paper_scale(workdir, monkeypatch):
    out = dry_run(workdir, monkeypatch, "slurm", "--configfile", "workflow/presets/paper.yaml")
    jobs = planned_jobs(out)
    counts = {}
    for rule, _ in jobs:
        counts[rule] = counts.get(rule, 0) + 1
    # FTM shards 83 + 8 + 10, AM/FM 22 + 3 + 3 (1000 per shard); 2 synths × 4 methods × 5 seeds
    assert counts["compute_jacobian"] == 129 and counts["train"] == 40, counts
    assert counts["evaluate"] == 40 and counts["table1"] == 1, counts
    paper = yaml.safe_load((workdir / "workflow/presets/paper.yaml").read_text())
    expect = {"compute_jacobian": paper["jacobian"], "train": paper["training"]}
    for rule, res in jobs:
        assert res["slurm_partition"] == "SITE-set-this", (rule, res)
        if rule in ("compute_jacobian", "train", "finetune", "compute_features", "evaluate"):
            assert res.get("gpu") == "1", (rule, res)
        else:
            assert "gpu" not in res, (rule, res)
        if rule in expect:
            assert int(res["runtime"]) == expect[rule]["runtime"], (rule, res)
            assert int(res["mem_mb"]) == expect[rule]["mem_mb"], (rule, res)


def test_local_profile_plans_the_default_config(workdir, monkeypatch):
    out = dry_run(workdir, monkeypatch, "local")
    assert "Using workflow specific profile workflow/profiles/local" in out
    assert re.search(r"train\s+8\b", out), out[-3000:]
