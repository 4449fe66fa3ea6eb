# Evaluation of every trained run on the whole test fold, then Table 1 and the ablation
# tables (pnp_core.evaluation.evaluate, pnp_core.evaluation.tables; docs/evaluation.md).
# Which runs a table holds comes from the run grid (common/rule_functions.smk: table_runs)
# and is passed to the command as JSON.


wildcard_constraints:
    axis="|".join(ABLATION_TABLES),


rule evaluate:
    input:
        unpack(evaluate_inputs),
    output:
        metrics=R("eval/{synth}/{run}/metrics.parquet"),
        predictions=R("eval/{synth}/{run}/predictions.parquet"),
    log:
        LOG("evaluate/{synth}/{run}.log"),
    benchmark:
        R("benchmarks/rules/evaluate/{synth}/{run}.tsv")
    conda:
        "../../environment.yml"
    threads: config["evaluation"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["evaluation"]["mem_mb"],
        runtime=config["evaluation"]["runtime"],
    params:
        entry=entry_json("train"),
        training=training_json,
        extra=optional_input_flags({"metric": "--metric", "loss_metric": "--loss-metric"}),
        batch_size=config["evaluation"]["batch_size"],
        device=config["device"],
    shell:
        "pnp evaluate --entry {params.entry:q} --params {input.params} --model {input.model}"
        " --features {input.features} {params.extra} --training {params.training:q}"
        " --batch-size {params.batch_size} --device {params.device} --threads {threads}"
        " --no-progress --metrics-out {output.metrics}"
        " --predictions-out {output.predictions} > {log} 2>&1"


rule table1:
    input:
        unpack(table_inputs("table1")),
    output:
        csv=R("table1.csv"),
        md=R("table1.md"),
        tests=R("table1_tests.csv"),
    log:
        LOG("table1.log"),
    conda:
        "../../environment.yml"
    params:
        runs=table_runs_json("table1"),
    shell:
        "pnp table1 --runs {params.runs:q} --csv {output.csv} --md {output.md}"
        " --tests-csv {output.tests} > {log} 2>&1"


rule ablation_table:
    input:
        unpack(table_inputs(None)),
    output:
        csv=R("tables/ablation_{axis}.csv"),
        md=R("tables/ablation_{axis}.md"),
    log:
        LOG("ablation_table/{axis}.log"),
    conda:
        "../../environment.yml"
    params:
        runs=table_runs_json(None),
    shell:
        "pnp ablation-table --axis {wildcards.axis} --runs {params.runs:q} --csv {output.csv}"
        " --md {output.md} > {log} 2>&1"
