# The paper's figures (PDF + PNG, {results_dir}/figures/), listening WAVs ({results_dir}/listen/)
# and the HTML pages of the report ({results_dir}/report/). Inputs: metric summaries, training
# histories, evaluation outputs ({results_dir}/eval/{synth}/{run}/), {results_dir}/table1.csv.
# docs/figures.md. results_dir is results/ for the laptop default:
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
        expand(R("jacobian/{synth}/train.summary.parquet"), synth=SYNTHS),
    output:
        pdf=R("figures/spectra.pdf"),
        png=report(
            R("figures/spectra.png"),
            caption="../report/spectra.rst",
            category="2. Figures",
            subcategory="metric",
        ),
    log:
        LOG("figure/spectra.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure spectra {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_curves:
    input:
        table1_files(R("runs/{synth}/{run}/history.parquet")),
    output:
        pdf=R("figures/curves.pdf"),
        png=report(
            R("figures/curves.png"),
            caption="../report/curves.rst",
            category="2. Figures",
            subcategory="training",
        ),
    log:
        LOG("figure/curves.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure curves {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_damping:
    input:
        damping_histories,
    output:
        pdf=R("figures/damping_{group}.pdf"),
        png=report(
            R("figures/damping_{group}.png"),
            caption="../report/damping.rst",
            category="2. Figures",
            subcategory="training",
        ),
    log:
        LOG("figure/damping_{group}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure damping {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_errors:
    input:
        table1_files(R("eval/{synth}/{run}/metrics.parquet")),
    output:
        pdf=R("figures/errors_{synth}.pdf"),
        png=report(
            R("figures/errors_{synth}.png"),
            caption="../report/errors.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        LOG("figure/errors_{synth}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure errors {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule figure_cqt:
    input:
        table1_files(R("eval/{synth}/{run}/predictions.parquet"), first_seed=True),
    output:
        pdf=R("figures/cqt_{synth}.pdf"),
        png=report(
            R("figures/cqt_{synth}.png"),
            caption="../report/cqt.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        LOG("figure/cqt_{synth}.log"),
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
        R("table1.csv"),
    output:
        pdf=R("figures/table1.pdf"),
        png=report(
            R("figures/table1.png"),
            caption="../report/table1_figure.rst",
            category="2. Figures",
            subcategory="evaluation",
        ),
    log:
        LOG("figure/table1.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp figure table1 {input} --pdf {output.pdf} --png {output.png} > {log} 2>&1"


rule listen:
    input:
        R("eval/{synth}/{run}/predictions.parquet"),
    output:
        [
            report(
                R(f"listen/{{synth}}/{{run}}/sound{k}_{role}.wav"),
                caption="../report/wav.rst",
                category="3. Listening",
                subcategory="{synth} WAV files",
                labels=listen_labels(k, role),
            )
            for k in range(1, FIGURE_SOUNDS + 1)
            for role in ("target", "match")
        ],
        sounds=R("listen/{synth}/{run}/sounds.csv"),
    log:
        LOG("listen/{synth}/{run}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    threads: config["figures"]["threads"]
    params:
        entry=entry_json("train"),
        sounds=FIGURE_SOUNDS,
        out_dir=R("listen/{synth}/{run}"),
    shell:
        "pnp listen --entry {params.entry:q} --predictions {input} --sounds {params.sounds}"
        " --threads {threads} --out-dir {params.out_dir} > {log} 2>&1"


# A MUSHRA listening test of Table 1's methods for a lab (webMUSHRA/BeaqleJS configs,
# reference, hidden reference, low-pass anchor, one stimulus per method; docs/listening_test.md).
rule mushra:
    input:
        mushra_inputs,
    output:
        config=R("listen/{synth}/mushra/config.yaml"),
        manifest=R("listen/{synth}/mushra/manifest.csv"),
    log:
        LOG("listen/{synth}/mushra.log"),
    localrule: True
    conda:
        "../../environment.yml"
    threads: config["figures"]["threads"]
    params:
        entry=entry_json("train"),
        labels=mushra_labels,
        sounds=FIGURE_SOUNDS,
        out_dir=R("listen/{synth}/mushra"),
    shell:
        "pnp listen --mushra --entry {params.entry:q} --predictions {input}"
        " --labels {params.labels} --sounds {params.sounds} --threads {threads}"
        " --out-dir {params.out_dir} > {log} 2>&1"


rule listen_page:
    input:
        listen_page_inputs,
    output:
        report(
            R("report/listen_{synth}.html"),
            caption="../report/listen.rst",
            category="3. Listening",
            subcategory="{synth}",
        ),
    log:
        LOG("report_page/listen_{synth}.log"),
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
            R("report/tables/{table}.html"),
            caption="../report/table.rst",
            category="1. Tables",
            labels={"table": "{table}"},
        ),
    log:
        LOG("report_page/{table}.log"),
    localrule: True
    conda:
        "../../environment.yml"
    shell:
        "pnp report-page table {input} --title {wildcards.table} --out {output} > {log} 2>&1"
