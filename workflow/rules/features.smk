rule compute_features:
    input:
        R("data/{synth}/params.parquet"),
    output:
        R("features/{synth}/{fold}.pt"),
    log:
        LOG("compute_features/{synth}/{fold}.log"),
    benchmark:
        R("benchmarks/rules/compute_features/{synth}/{fold}.tsv")
    conda:
        "../../environment.yml"
    threads: 2
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    params:
        entry=entry_json("features"),
        batch_size=config["features"]["batch_size"],
        dtype=config["features"]["dtype"],
        device=config["device"],
    shell:
        "pnp features --entry {params.entry:q} --params {input} --fold {wildcards.fold}"
        " --batch-size {params.batch_size} --dtype {params.dtype} --device {params.device}"
        " --out {output} > {log} 2>&1"
