# Training: one job per run of the grid (common/run_grid.smk: make_run_grid). Checkpoints in
# {results_dir}/runs/{synth}/{run}/checkpoint/ are not outputs, so Snakemake never deletes them
# and a restarted job resumes from checkpoint/last.pt.
#
# Pretraining is two rules: `train` runs p_pretrain_seed{k} (P-loss, half the epochs) like
# any run, and `finetune` (the same command, plus --init-model) trains *_finetune_seed{k}
# from that run's model.pt.


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",


rule train:
    input:
        unpack(train_inputs),
    output:
        model=R("runs/{synth}/{run}/model.pt"),
        history=R("runs/{synth}/{run}/history.parquet"),
    log:
        LOG("train/{synth}/{run}.log"),
    benchmark:
        R("benchmarks/rules/train/{synth}/{run}.tsv")
    conda:
        "../../environment.yml"
    threads: config["training"]["threads"]
    resources:
        gpu=1,
        mem_mb=config["training"]["mem_mb"],
        runtime=config["training"]["runtime"],
    params:
        entry=entry_json("train"),
        run=run_json,
        training=training_json,
        extra=optional_input_flags(
            {
                "metric_train": "--metric-train",
                "metric_val": "--metric-val",
                "init": "--init-model",
            }
        ),
        device=config["device"],
        out_dir=lambda wc: R(f"runs/{wc.synth}/{wc.run}"),
    shell:
        "pnp train --entry {params.entry:q} --params {input.params} --run {params.run:q}"
        " --training {params.training:q} {params.extra} --device {params.device}"
        " --threads {threads} --no-progress --out-dir {params.out_dir} > {log} 2>&1"


use rule train as finetune with:
    input:
        unpack(train_inputs),
        init=pretrained_model,
    log:
        LOG("finetune/{synth}/{run}.log"),
    benchmark:
        R("benchmarks/rules/finetune/{synth}/{run}.tsv")
    wildcard_constraints:
        run=r"[A-Za-z0-9][A-Za-z0-9_.-]*_finetune_seed\d+",


ruleorder: finetune > train


rule ablations:
    input:
        run_targets("ablation"),
        ablation_table_targets(),
        figure_targets(ablations=True),
