rule make_dataset:
    output:
        R("data/{synth}/params.parquet"),
    log:
        LOG("make_dataset/{synth}.log"),
    conda:
        "../../environment.yml"
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        entry=entry_json("dataset"),
    shell:
        "pnp dataset --entry {params.entry:q} --out {output} > {log} 2>&1"
