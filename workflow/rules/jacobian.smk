# The metric M(θ) = JᵀJ of every sample: sharded forward-mode Jacobians, merge, summary.
# Shard counts follow from the dataset design (no checkpoint): ceil(fold size / shard_size).
# {rep} is "" for the synth entry's own feature (JTFS) and "mss/" for the MSS metric of the
# representation ablation (common/paths.smk: METRIC_REPS), e.g.
# results/jacobian/ftm/mss/train.parquet.
rule compute_jacobian:
    input:
        R("data/{synth}/params.parquet"),
    output:
        R("jacobian/{synth}/{rep}{fold}/shard-{shard}.parquet"),
    log:
        LOG("compute_jacobian/{synth}/{rep}{fold}/shard-{shard}.log"),
    benchmark:
        R("benchmarks/rules/compute_jacobian/{synth}/{rep}{fold}/shard-{shard}.tsv")
    conda:
        "../../environment.yml"
    threads: config["jacobian"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["jacobian"]["mem_mb"],
        runtime=config["jacobian"]["runtime"],
    params:
        entry=metric_entry_json,
        shard_size=config["jacobian"]["shard_size"],
        batch_size=config["jacobian"]["batch_size"],
        method=config["jacobian"]["method"],
        budget=config["jacobian"]["memory_budget_mb"],
        dtype=config["jacobian"]["dtype"],
        device=config["device"],
    shell:
        "pnp jacobian --entry {params.entry:q} --params {input} --fold {wildcards.fold}"
        " --shard {wildcards.shard} --shard-size {params.shard_size}"
        " --batch-size {params.batch_size} --method {params.method}"
        " --memory-budget-mb {params.budget} --dtype {params.dtype} --device {params.device}"
        " --threads {threads} --out {output} > {log} 2>&1"


rule merge_jacobian:
    input:
        params=R("data/{synth}/params.parquet"),
        shards=jacobian_shards,
    output:
        R("jacobian/{synth}/{rep}{fold}.parquet"),
    log:
        LOG("merge_jacobian/{synth}/{rep}{fold}.log"),
    benchmark:
        R("benchmarks/rules/merge_jacobian/{synth}/{rep}{fold}.tsv")
    conda:
        "../../environment.yml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        entry=metric_entry_json,
    shell:
        "pnp merge-jacobian --entry {params.entry:q} --params {input.params}"
        " --fold {wildcards.fold} --out {output} {input.shards} > {log} 2>&1"


rule summarise_jacobian:
    input:
        R("jacobian/{synth}/{rep}{fold}.parquet"),
    output:
        summary=R("jacobian/{synth}/{rep}{fold}.summary.parquet"),
        quantiles=R("jacobian/{synth}/{rep}{fold}.quantiles.parquet"),
    log:
        LOG("summarise_jacobian/{synth}/{rep}{fold}.log"),
    benchmark:
        R("benchmarks/rules/summarise_jacobian/{synth}/{rep}{fold}.tsv")
    localrule: True
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "pnp jacobian-summary {input} --out {output.summary}"
        " --quantiles-out {output.quantiles} > {log} 2>&1"
