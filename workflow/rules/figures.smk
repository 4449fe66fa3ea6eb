# The paper's figures (PDF + PNG, results/figures/), listening WAVs (results/listen/) and the
# HTML pages of the report (results/report/). Inputs: metric summaries, training histories,
# evaluation outputs (results/eval/{synth}/{run}/), results/table1.csv. docs/figures.md.
#   snakemake --cores all && snakemake --report results/report.html


wildcard_constraints:
    group="table1|ablation",
    table=r"[A-Za-z0-9_.-]+",


# Named target: the figures, WAVs and report pages of Table 1 (part of the default target).
rule figures:
    input:
        figure_targets(),


rule figure_spectra:
    input:
        expand("results/jacobian/{synth}/train.summary.parquet", synth=SYNTHS),
    output:
        pdf="results/figures/spectra.pdf",
        png=report(
            "results/figures/spectra.png",
            caption="../report/spectra.rst",
            category="2. Figures",
            subcategory="metric",
        ),
    log:
        "logs/figure/spectra.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure spectra {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_curves:
    input:
        table1_files("results/runs/{synth}/{run}/history.parquet"),
    output:
        pdf="results/figures/curves.pdf",
        png=report(
            "results/figures/curves.png",
            caption="../report/curves.rst",
            category="2. Figures",
            subcategory="training",
        ),
    log:
        "logs/figure/curves.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure curves {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_damping:
    input:
        damping_histories,
    output:
        pdf="results/figures/damping_{group}.pdf",
        png=report(
            "results/figures/damping_{group}.png",
            caption="../report/damping.rst",
            category="2. Figures",
            subcategory="training",
        ),
    log:
        "logs/figure/damping_{group}.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure damping {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_errors:
    input:
        table1_files("results/eval/{synth}/{run}/metrics.parquet"),
    output:
        pdf="results/figures/errors_{synth}.pdf",
        png=report(
            "results/figures/errors_{synth}.png",
            caption="../report/errors.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        "logs/figure/errors_{synth}.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure errors {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_cqt:
    input:
        table1_files("results/eval/{synth}/{run}/predictions.parquet", first_seed=True),
    output:
        pdf="results/figures/cqt_{synth}.pdf",
        png=report(
            "results/figures/cqt_{synth}.png",
            caption="../report/cqt.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        "logs/figure/cqt_{synth}.log",
    localrule: True
    conda:
        "../../environment.yml"
    threads: config["figures"]["threads"]
    params:
        entry=entry_json("train"),
        sounds=FIGURE_SOUNDS,
    shell:
        "pnp figure cqt {input} --entry {params.entry:q} --sounds {params.sounds}"
        " --threads {threads} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_table1:
    input:
        "results/table1.csv",
    output:
        pdf="results/figures/table1.pdf",
        png=report(
            "results/figures/table1.png",
            caption="../report/table1_figure.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        "logs/figure/table1.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure table1 {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule listen:
    input:
        "results/eval/{synth}/{run}/predictions.parquet",
    output:
        [
            report(
                f"results/listen/{{synth}}/{{run}}/sound{k}_{role}.wav",
                caption="../report/wav.rst",
                category="3. Listening",
                subcategory="{synth} WAV files",
                labels=listen_labels(k, role),
            )
            for k in range(1, FIGURE_SOUNDS + 1)
            for role in ("target", "match")
        ],
        sounds="results/listen/{synth}/{run}/sounds.csv",
    log:
        "logs/listen/{synth}/{run}.log",
    localrule: True
    conda:
        "../../environment.yml"
    threads: config["figures"]["threads"]
    params:
        entry=entry_json("train"),
        sounds=FIGURE_SOUNDS,
        out_dir="results/listen/{synth}/{run}",
    shell:
        "pnp listen --entry {params.entry:q} --predictions {input} --sounds {params.sounds}"
        " --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


rule listen_page:
    input:
        listen_page_inputs,
    output:
        report(
            "results/report/listen_{synth}.html",
            caption="../report/listen.rst",
            category="3. Listening",
            subcategory="{synth}",
        ),
    log:
        "logs/report_page/listen_{synth}.log",
    localrule: True
    conda:
        "../../environment.yml"
    params:
        dirs=listen_dirs,
    shell:
        "pnp report-page listen {params.dirs} --synth {wildcards.synth} --out {output}"
        " > {log} 2>&1"


rule table_page:
    input:
        table_csv,
    output:
        report(
            "results/report/tables/{table}.html",
            caption="../report/table.rst",
            category="1. Tables",
            labels={"table": "{table}"},
        ),
    log:
        "logs/report_page/{table}.log",
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp report-page table {input} --title {wildcards.table} --out {output} > {log} 2>&1"
