# Shared helpers: wildcard constraints, the validated per-synth entries, targets.
import json

from pnp_core.config import synth_entry

SYNTHS = list(config["synths"])
FOLDS = ["train", "val", "test"]


wildcard_constraints:
    synth="|".join(SYNTHS),
    fold="|".join(FOLDS),
    shard=r"\d{4}",


def entry_json(wildcards):
    """The validated config entry of {synth} (+ the plugins to import), as JSON for --entry."""
    entry = {**synth_entry(config, wildcards.synth), "plugins": config["plugins"]}
    return json.dumps(entry, sort_keys=True)


def all_targets():
    """Everything `snakemake` builds by default: datasets, features, metrics."""
    targets = expand("results/data/{synth}/params.parquet", synth=SYNTHS)
    targets += expand(
        "results/features/{synth}/{fold}.pt", synth=SYNTHS, fold=config["features"]["folds"]
    )
    targets += expand(
        "results/jacobian/{synth}/{fold}{ext}",
        synth=SYNTHS,
        fold=config["jacobian"]["folds"],
        ext=[".parquet", ".summary.parquet", ".quantiles.parquet"],
    )
    return targets
