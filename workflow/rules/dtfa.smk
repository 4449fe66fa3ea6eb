# DTFA: sound matching by gradient descent (no network), per loss; named target `dtfa`.
#   snakemake --cores 2 dtfa
rule dtfa:
    input:
        dtfa_targets(),


rule match_grid:
    input:
        R("data/{synth}/params.parquet"),
    output:
        R("dtfa/{synth}/traces.parquet"),
    log:
        LOG("match_grid/{synth}.log"),
    benchmark:
        R("benchmarks/rules/match_grid/{synth}.tsv")
    conda:
        "../../environment.yml"
    threads: config["dtfa"]["threads"]
    resources:
        mem_mb=4000,
        runtime=120,
    params:
        entry=entry_json("dtfa"),
        override=dtfa_override_json,
        losses=" ".join(config["dtfa"]["losses"]),
        d=config["dtfa"],
    shell:
        "pnp match-grid --entry {params.entry:q} --override {params.override:q}"
        " --params {input} --losses {params.losses} --pairs {params.d[pairs]}"
        " --steps {params.d[steps]} --lm-steps {params.d[lm_steps]} --lr {params.d[lr]} --lr-end {params.d[lr_end]}"
        " --tolerance {params.d[tolerance]} --seed {params.d[seed]}"
        " --batch-size {params.d[batch_size]} --pnp-damping {params.d[pnp_damping]}"
        " --threads {threads} --no-progress --out {output} > {log} 2>&1"


rule dtfa_table:
    input:
        expand(R("dtfa/{synth}/traces.parquet"), synth=config["dtfa"]["synths"]),
    output:
        R("tables/dtfa.csv"),
    log:
        LOG("dtfa_table.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp dtfa-table {input} --out {output} > {log} 2>&1"


rule dtfa_convergence_figure:
    input:
        expand(R("dtfa/{synth}/traces.parquet"), synth=config["dtfa"]["synths"]),
    output:
        pdf=R("figures/dtfa_convergence.pdf"),
        png=R("figures/dtfa_convergence.png"),
    log:
        LOG("dtfa_figure/convergence.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp dtfa-figure convergence {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule dtfa_landscape_figure:
    input:
        R(f"data/{config['dtfa']['landscape']['synth']}/params.parquet"),
    output:
        pdf=R("figures/dtfa_landscape.pdf"),
        png=R("figures/dtfa_landscape.png"),
    log:
        LOG("dtfa_figure/landscape.log"),
    conda:
        "../../environment.yml"
    threads: config["dtfa"]["threads"]
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        entry=dtfa_figure_entry("landscape"),
        override=dtfa_figure_override("landscape"),
        axes=" ".join(config["dtfa"]["landscape"]["axes"]),
        d=config["dtfa"],
    shell:
        "pnp dtfa-figure landscape --entry {params.entry:q} --override {params.override:q}"
        " --params {input} --axes {params.axes} --points {params.d[landscape][points]}"
        " --paths {params.d[landscape][paths]} --steps {params.d[landscape][steps]}"
        " --lr {params.d[lr]} --seed {params.d[seed]} --threads {threads}"
        " --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule dtfa_timeshift_figure:
    input:
        R(f"data/{config['dtfa']['time_shift']['synth']}/params.parquet"),
    output:
        pdf=R("figures/dtfa_timeshift.pdf"),
        png=R("figures/dtfa_timeshift.png"),
    log:
        LOG("dtfa_figure/timeshift.log"),
    conda:
        "../../environment.yml"
    threads: config["dtfa"]["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        entry=dtfa_figure_entry("time_shift"),
        override=dtfa_figure_override("time_shift"),
        d=config["dtfa"],
    shell:
        "pnp dtfa-figure timeshift --entry {params.entry:q} --override {params.override:q}"
        " --params {input} --max-ms {params.d[time_shift][max_ms]}"
        " --points {params.d[time_shift][points]} --threads {threads}"
        " --pdf {output.pdf} --png {output.png} > {log} 2>&1"
