# Target lists: the default target (rule all) and the named targets ablations, dtfa,
# figures, all under results_dir (paths.smk: R).


def run_targets(group):
    """model.pt and history.parquet of the grid's runs in `group`."""
    rows = RUNS[RUNS["group"] == group]
    return [
        R(f"runs/{s}/{n}/{f}")
        for s, n in zip(rows["synth"], rows["name"])
        for f in ("model.pt", "history.parquet")
    ]


def ablation_table_targets():
    """{results_dir}/tables/ablation_{axis}.csv and .md of every axis the grid trains."""
    return expand(R("tables/ablation_{axis}.{ext}"), axis=ablation_axes(), ext=["csv", "md"])


def figure_targets(ablations=False):
    """The figures, listening WAVs and report pages of the default target (docs/figures.md).
    `ablations`: also the λ figure of the damping ablation runs and the ablation tables'
    report pages."""
    first = [(s, r) for s in SYNTHS for r in table1_runs(s, first_seed=True)]
    names = ["spectra", "curves", "damping_table1", "table1"]
    names += [f"{kind}_{s}" for kind in ("errors", "cqt") for s in SYNTHS]
    names += ["damping_ablation"] if ablations else []
    targets = expand(R("figures/{name}.{ext}"), name=names, ext=["pdf", "png"])
    targets += [
        R(f"listen/{s}/{r}/{f}") for s, r in first for f in listen_files(["target", "match"])
    ]
    targets += expand(R("report/listen_{synth}.html"), synth=SYNTHS)
    targets += expand(R("listen/{synth}/mushra/config.yaml"), synth=SYNTHS)
    tables = ["table1"] + ([f"ablation_{axis}" for axis in ablation_axes()] if ablations else [])
    targets += expand(R("report/tables/{table}.html"), table=tables)
    return targets


def dtfa_targets():
    """The named target `dtfa`: table, traces and figures."""
    d = config["dtfa"]
    targets = [R("tables/dtfa.csv")]
    targets += expand(R("dtfa/{synth}/traces.parquet"), synth=d["synths"])
    targets += expand(
        R("figures/dtfa_{name}.{ext}"),
        name=["landscape", "timeshift", "convergence"],
        ext=["pdf", "png"],
    )
    return targets


def all_targets():
    """Everything `snakemake` builds by default: datasets, features, metrics, Table-1 runs."""
    targets = expand(R("data/{synth}/params.parquet"), synth=SYNTHS)
    targets += expand(
        R("features/{synth}/{fold}.pt"), synth=SYNTHS, fold=config["features"]["folds"]
    )
    targets += expand(
        R("jacobian/{synth}/{fold}{ext}"),
        synth=SYNTHS,
        fold=config["jacobian"]["folds"],
        ext=[".parquet", ".summary.parquet", ".quantiles.parquet"],
    )
    targets += run_targets("table1")  # the trainings Table 1 needs (run_grid.smk)
    targets += [R("table1.csv"), R("table1.md")]  # evaluate.smk
    targets += figure_targets()  # figures.smk: figures, listening WAVs, report pages
    return targets
