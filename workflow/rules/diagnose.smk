# PNP diagnostics (pnp_core.evaluation.diagnose; docs/training.md "Why PNP lost to P-loss"): the
# first-order model √(ΔᵀMΔ) against the true JTFS distance, the learning dynamics of the
# first seed's P-loss and PNP-JTFS runs (they need training.keep_epochs: true, as in the
# evidence preset), and M under the paper preset's feature settings on a few test sounds.
# Not in the default target: `snakemake --cores all diagnostics`.


rule diagnose:
    input:
        unpack(diagnose_inputs),
    output:
        validity=R("diagnostics/{synth}/validity_summary.csv"),
        figure=R("diagnostics/{synth}/diagnostics.png"),
    log:
        LOG("diagnose/{synth}.log"),
    conda:
        "../../environment.yml"
    threads: 1
    params:
        entry=entry_json("train"),
        compare=diagnose_compare_json,
        runs=diagnose_run_flags,
        out_dir=lambda wc: R(f"diagnostics/{wc.synth}"),
    shell:
        "pnp diagnose --entry {params.entry:q} --params {input.params}"
        " --metric-test {input.metric_test} --metric-val {input.metric_val} {params.runs}"
        " --compare-entry {params.compare:q} --threads {threads} --no-progress"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule diagnostics:
    input:
        expand(R("diagnostics/{synth}/validity_summary.csv"), synth=SYNTHS),
