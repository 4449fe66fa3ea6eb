# Shared helpers: wildcard constraints, per-rule config slices, targets.
import json

from pnp_core.metric_file import n_shards, shard_name
from pnp_core.spec import RunSpec, entry_slice

SYNTHS = list(config["synths"])
FOLDS = ["train", "val", "test"]


wildcard_constraints:
    synth="|".join(SYNTHS),
    fold="|".join(FOLDS),
    shard=r"\d{4}",


def entry_json(stage):
    """Params function: the slice of synths.{synth} that `stage`'s outputs depend on
    (pnp_core.spec.SECTIONS), plus the plugins to import, as JSON for --entry. A rule
    reruns only when its own slice changes (Snakemake's params trigger)."""

    def slice_json(wildcards):
        entry = entry_slice(config["synths"][wildcards.synth], stage, config["plugins"])
        return json.dumps(entry, sort_keys=True)

    return slice_json


def fold_size(synth, fold):
    """Samples in `fold` of `synth`, from the dataset design (no checkpoint needed)."""
    return RunSpec.from_config(config, synth).fold_sizes()[fold]


def jacobian_shards(wildcards):
    """Input function: the shard files of {synth}/{fold}, ceil(fold size / shard_size)."""
    size = fold_size(wildcards.synth, wildcards.fold)
    count = n_shards(size, config["jacobian"]["shard_size"])
    folder = f"results/jacobian/{wildcards.synth}/{wildcards.fold}"
    return [f"{folder}/{shard_name(k)}" for k in range(count)]


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


# -- DTFA (workflow/rules/dtfa.smk) ------------------------------------------------------------


def dtfa_override_json(wildcards):
    """Params function: dtfa.overrides.{synth} as JSON for --override."""
    return json.dumps(config["dtfa"]["overrides"].get(wildcards.synth, {}), sort_keys=True)


def dtfa_figure_entry(kind):
    """Params function: the entry slice and override of the synth a DTFA figure uses."""

    def entry(wildcards):
        synth = config["dtfa"][kind]["synth"]
        return json.dumps(entry_slice(config["synths"][synth], "dtfa", config["plugins"]))

    return entry


def dtfa_figure_override(kind):
    def override(wildcards):
        synth = config["dtfa"][kind]["synth"]
        return json.dumps(config["dtfa"]["overrides"].get(synth, {}), sort_keys=True)

    return override


def dtfa_targets():
    """The named target `dtfa`: table, traces and figures."""
    d = config["dtfa"]
    targets = ["results/tables/dtfa.csv"]
    targets += expand("results/dtfa/{synth}/traces.parquet", synth=d["synths"])
    targets += expand(
        "results/figures/dtfa_{name}.{ext}",
        name=["landscape", "timeshift", "convergence"],
        ext=["pdf", "png"],
    )
    return targets
