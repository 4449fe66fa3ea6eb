# Shared helpers: wildcard constraints, per-rule config slices, targets.
import json

import pandas as pd

from pnp_core.synth.datasets import FOLDS
from pnp_core.metric.file import n_shards, shard_name
from pnp_core.run_names import LOSS_NAMES, TABLE1_LOSSES, run_label
from pnp_core.spec import RunSpec, entry_slice

SYNTHS = list(config["synths"])


#: the metric's representation, as a path part of results/jacobian/{synth}/{rep}{fold}…:
#: "" = the entry's own feature (JTFS), "mss/" = the MSS of training.mss (metric_feature)
METRIC_REPS = {"": None, "mss/": "mss"}


wildcard_constraints:
    synth="|".join(SYNTHS),
    fold="|".join(FOLDS),
    shard=r"\d{4}",
    rep="|".join(f"(?:{r})" for r in METRIC_REPS),


def entry_json(stage):
    """Params function: the slice of synths.{synth} that `stage`'s outputs depend on
    (pnp_core.spec.SECTIONS), plus the plugins to import, as JSON for --entry. A rule
    reruns only when its own slice changes (Snakemake's params trigger)."""

    def slice_json(wildcards):
        entry = entry_slice(config["synths"][wildcards.synth], stage, config["plugins"])
        return json.dumps(entry, sort_keys=True)

    return slice_json


def metric_feature(rep):
    """The feature entry of the metric representation `rep` (None: the synth entry's own)."""
    if METRIC_REPS[rep] == "mss":  # the MSS the DDSP-MSS loss uses, so PNP-MSS and DDSP-MSS agree
        return {"type": "mss", "settings": config["training"]["mss"]}
    return None


def metric_entry_json(wildcards):
    """Params function: entry_json("jacobian"), with the feature of representation {rep}."""
    entry = entry_slice(config["synths"][wildcards.synth], "jacobian", config["plugins"])
    feature = metric_feature(wildcards.rep)
    if feature is not None:
        entry["feature"] = feature
    return json.dumps(entry, sort_keys=True)


def metric_path(synth, fold, representation=None):
    """The merged metric of `fold` in `representation` (None: the entry's own feature)."""
    rep = {v: k for k, v in METRIC_REPS.items()}[representation]
    return f"results/jacobian/{synth}/{rep}{fold}.parquet"


def fold_size(synth, fold):
    """Samples in `fold` of `synth`, from the dataset design (no checkpoint needed)."""
    return RunSpec.from_config(config, synth).fold_sizes()[fold]


def jacobian_shards(wildcards):
    """Input function: the shard files of {synth}/{fold}, ceil(fold size / shard_size)."""
    size = fold_size(wildcards.synth, wildcards.fold)
    count = n_shards(size, config["jacobian"]["shard_size"])
    folder = f"results/jacobian/{wildcards.synth}/{wildcards.rep}{wildcards.fold}"
    return [f"{folder}/{shard_name(k)}" for k in range(count)]


def all_targets():
    """Everything `snakemake` builds by default: datasets, features, metrics, Table-1 runs."""
    targets = expand("results/data/{synth}/params.parquet", synth=SYNTHS)
    targets += expand(
        "results/features/{synth}/{fold}.pt", synth=SYNTHS, fold=config["features"]["folds"]
    )
    targets += expand(
        "results/jacobian/{synth}/{fold}{ext}",
        synth=SYNTHS,
        fold=config["jacobian"]["folds"],
        ext=[".parquet", ".summary.parquet", ".quantiles.parquet"],
    )
    targets += run_targets("table1")  # the trainings Table 1 needs (run grid below)
    targets += ["results/table1.csv", "results/table1.md"]  # evaluate.smk
    targets += figure_targets()  # figures.smk: figures, listening WAVs, report pages
    return targets


# -- DTFA (workflow/rules/dtfa.smk) ------------------------------------------------------------


def dtfa_override_json(wildcards):
    """Params function: dtfa.overrides.{synth} as JSON for --override."""
    return json.dumps(config["dtfa"]["overrides"].get(wildcards.synth, {}), sort_keys=True)


def dtfa_figure_entry(kind):
    """Params function: the entry slice and override of the synth a DTFA figure uses."""

    def entry(wildcards):
        synth = config["dtfa"][kind]["synth"]
        return json.dumps(entry_slice(config["synths"][synth], "dtfa", config["plugins"]))

    return entry


def dtfa_figure_override(kind):
    def override(wildcards):
        synth = config["dtfa"][kind]["synth"]
        return json.dumps(config["dtfa"]["overrides"].get(synth, {}), sort_keys=True)

    return override


def dtfa_targets():
    """The named target `dtfa`: table, traces and figures."""
    d = config["dtfa"]
    targets = ["results/tables/dtfa.csv"]
    targets += expand("results/dtfa/{synth}/traces.parquet", synth=d["synths"])
    targets += expand(
        "results/figures/dtfa_{name}.{ext}",
        name=["landscape", "timeshift", "convergence"],
        ext=["pdf", "png"],
    )
    return targets


# -- the run grid (training) ----------------------------------------------------------------------

#: run-row columns that are ablation values (None = the config's default)
RUN_AXES = [
    "rescaling",
    "optimizer",
    "clip",
    "damping",
    "damping_matrix",
    "pnp_form",
    "representation",
]
SUFFIX = {
    "rescaling": "rescale",
    "optimizer": "opt",
    "clip": "clip",
    "damping": "damp",
    "damping_matrix": "D",
    "pnp_form": "form",
    "representation": "rep",
}


def run_name(loss, seed, stage=None, **axes):
    """A readable, stable run name: loss, the non-default ablation values, stage, seed,
    e.g. pnp-jtfs_seed0, pnp-jtfs_D-diag_seed0, p_pretrain_seed0; PNP with the MSS metric
    is pnp-mss_seed0."""
    axes = dict(axes)
    if loss == "pnp" and axes.get("representation") is not None:
        parts = [f"pnp-{axes.pop('representation')}"]
    else:
        parts = [LOSS_NAMES[loss]]
    parts += [f"{SUFFIX[k]}-{axes[k]}" for k in RUN_AXES if axes.get(k) is not None]
    parts += [stage] if stage else []
    return "_".join(parts + [f"seed{seed}"])


def make_run_grid(config):
    """The run grid: one row per (synth, run); group 'table1' or 'ablation'.

    Table 1: P-loss, DDSP-MSS, DDSP-JTFS and PNP-JTFS (adaptive damping) per synth and
    seed. Ablations (the axes in training.ablations), each one value changed from the
    Table-1 run: rescaling (other three) for P and PNP; Sophia and global-norm clipping
    for P and PNP; damping constant (λ = 0, undamped) and scheduled; D = diag(M) and mean M;
    pretraining: P-loss for half the epochs, then PNP or DDSP-MSS fine-tuning from it.
    """
    tr = config["training"]
    half = max(1, tr["epochs"] // 2)
    # the PNP-form ablation trains the form that Table 1 does not use
    other_form = "squared" if tr["pnp_form"] == "norm" else "norm"
    rows = []
    for synth, entry in config["synths"].items():
        for seed in tr["seeds"]:

            def add(group, loss, stage=None, init=None, epochs=None, **axes):
                row = {
                    "synth": synth,
                    "group": group,
                    "loss": loss,
                    "seed": seed,
                    "init": init,
                    "stage": stage,
                    "epochs": epochs,
                    **{k: axes.get(k) for k in RUN_AXES},
                }
                row["name"] = run_name(loss, seed, stage, **axes)
                rows.append(row)
                return row["name"]

            for loss in TABLE1_LOSSES:
                add("table1", loss)
            axes = tr["ablations"]
            if "rescaling" in axes:
                for kind in ("raw", "log", "minmax", "logminmax"):
                    if kind != entry.get("rescaling", "logminmax"):
                        add("ablation", "p", rescaling=kind)
                        add("ablation", "pnp", rescaling=kind)
            for axis, value, losses in (
                ("optimizer", "sophia", ("p", "pnp")),
                ("clip", "norm", ("p", "pnp")),
                ("damping", "constant", ("pnp",)),
                ("damping", "scheduled", ("pnp",)),
                ("damping_matrix", "diag", ("pnp",)),
                ("damping_matrix", "mean", ("pnp",)),
                ("pnp_form", other_form, ("pnp",)),
                ("representation", "mss", ("pnp",)),
            ):
                if axis in axes:
                    for loss in losses:
                        add("ablation", loss, **{axis: value})
            if "pretraining" in axes:
                pre = add("ablation", "p", stage="pretrain", epochs=half)
                for loss in ("pnp", "ddsp_mss"):
                    add("ablation", loss, stage="finetune", init=pre, epochs=half)
    grid = pd.DataFrame(rows)
    dup = grid[grid.duplicated(["synth", "name"])]
    if len(dup):
        raise ValueError(f"duplicate run names in the grid: {dup['name'].tolist()}")
    return grid.set_index(["synth", "name"], drop=False).sort_index()


RUNS = make_run_grid(config)


def run_row(wildcards):
    return RUNS.loc[(wildcards.synth, wildcards.run)]


def run_json(wildcards):
    """Params function: the run row as JSON for pnp train --run (ablation values, seed)."""
    row = run_row(wildcards)
    keep = ["name", "loss", "seed", "epochs", *RUN_AXES]
    return json.dumps(
        {k: (None if pd.isna(row[k]) else row[k]) for k in keep}, default=int, sort_keys=True
    )


#: training keys that do not change the numbers (resources, the grid itself)
TRAINING_NOT_NUMERIC = ("ablations", "seeds", "threads", "mem_mb", "runtime")


def training_json(wildcards):
    tr = {k: v for k, v in config["training"].items() if k not in TRAINING_NOT_NUMERIC}
    return json.dumps(tr, sort_keys=True)


def train_inputs(wildcards):
    """Input function of the train and finetune rules: params, merged metrics (PNP runs)."""
    row = run_row(wildcards)
    synth = wildcards.synth
    inputs = {"params": f"results/data/{synth}/params.parquet"}
    if row["loss"] == "pnp":
        rep = None if pd.isna(row["representation"]) else row["representation"]
        inputs["metric_train"] = metric_path(synth, "train", rep)
        inputs["metric_val"] = metric_path(synth, "val", rep)
    return inputs


def pretrained_model(wildcards):
    """Input function of the finetune rule: model.pt of the run's pretraining run."""
    return f"results/runs/{wildcards.synth}/{run_row(wildcards)['init']}/model.pt"


def optional_input_flags(flags):
    """Params function: `<flag> <path>` for each optional named input the job has, e.g.
    {"metric_train": "--metric-train"} gives "--metric-train results/…" for PNP runs only."""

    def args(wildcards, input):
        return " ".join(
            f"{flag} {input[key]}" for key, flag in flags.items() if key in input.keys()
        )

    return args


def run_targets(group):
    """model.pt and history.parquet of the grid's runs in `group`."""
    rows = RUNS[RUNS["group"] == group]
    return [
        f"results/runs/{s}/{n}/{f}"
        for s, n in zip(rows["synth"], rows["name"])
        for f in ("model.pt", "history.parquet")
    ]


# -- evaluation and tables (workflow/rules/evaluate.smk) ------------------------------------------

#: ablation table of a grid column: a run belongs to the axis of its first non-default value
TABLE_AXES = {
    "representation": "representation",
    "rescaling": "rescaling",
    "optimizer": "optimizer",
    "clip": "optimizer",
    "damping": "damping",
    "damping_matrix": "damping",
    "pnp_form": "damping",
}
#: order of the ablation tables
ABLATION_TABLES = ["rescaling", "pretraining", "representation", "optimizer", "damping"]


def run_axis(row):
    """The ablation table of an ablation run: its changed grid column, or pretraining."""
    for col, axis in TABLE_AXES.items():
        if not pd.isna(row[col]):
            return axis
    if isinstance(row["stage"], str):
        return "pretraining"
    raise ValueError(f"run {row['synth']}/{row['name']}: no ablation axis")


def baseline_row(row):
    """The Table-1 run an ablation run is compared with: same synth, seed and loss (or
    loss family: pnp for a pnp_* loss)."""
    same = (
        (RUNS["group"] == "table1")
        & (RUNS["synth"] == row["synth"])
        & (RUNS["seed"] == row["seed"])
    )
    for loss in (row["loss"], row["loss"].split("_")[0]):
        rows = RUNS[same & (RUNS["loss"] == loss)]
        if len(rows):
            return rows.iloc[0]
    raise ValueError(f"run {row['synth']}/{row['name']}: no Table-1 run to compare with")


def table_entry(row, **extra):
    """One run of a run list (pnp_core.evaluation.tables): identity and the files a table reads."""
    s, n = row["synth"], row["name"]
    return {
        "synth": s,
        "name": n,
        "loss": row["loss"],
        "seed": int(row["seed"]),
        "metrics": f"results/eval/{s}/{n}/metrics.parquet",
        "history": f"results/runs/{s}/{n}/history.parquet",
        **extra,
    }


def table_runs(kind):
    """The run list of Table 1 (kind 'table1') or of one ablation table (kind = axis)."""
    if kind == "table1":
        return [table_entry(r) for _, r in RUNS[RUNS["group"] == "table1"].iterrows()]
    runs, seen = [], set()
    for _, row in RUNS[RUNS["group"] == "ablation"].iterrows():
        if run_axis(row) != kind:
            continue
        base = baseline_row(row)
        group = base["name"].rsplit("_seed", 1)[0]
        if (base["synth"], base["name"]) not in seen:
            seen.add((base["synth"], base["name"]))
            runs.append(table_entry(base, axis=kind, role="baseline", baseline=group))
        runs.append(table_entry(row, axis=kind, role="variant", baseline=group))
    return runs


def table_runs_json(kind):
    """Params function: the run list of a table as JSON for --runs."""

    def runs_json(wildcards):
        return json.dumps({"runs": table_runs(wildcards.get("axis", kind))}, sort_keys=True)

    return runs_json


def table_inputs(kind):
    """Input function: the evaluations and histories a table reads."""

    def inputs(wildcards):
        runs = table_runs(wildcards.get("axis", kind))
        return {"metrics": [r["metrics"] for r in runs], "histories": [r["history"] for r in runs]}

    return inputs


def ablation_axes():
    """The ablation tables' axes that the grid trains, in table order."""
    rows = RUNS[RUNS["group"] == "ablation"]
    have = {run_axis(r) for _, r in rows.iterrows()}
    return [a for a in ABLATION_TABLES if a in have]


def ablation_table_targets():
    """results/tables/ablation_{axis}.csv and .md of every axis the grid trains."""
    return expand("results/tables/ablation_{axis}.{ext}", axis=ablation_axes(), ext=["csv", "md"])


def evaluate_inputs(wildcards):
    """Input function of the evaluate rule: model, params, test features, test metrics."""
    row = run_row(wildcards)
    synth = wildcards.synth
    inputs = {
        "params": f"results/data/{synth}/params.parquet",
        "model": f"results/runs/{synth}/{wildcards.run}/model.pt",
        "features": f"results/features/{synth}/test.pt",
    }
    if "test" in config["jacobian"]["folds"]:
        inputs["metric"] = metric_path(synth, "test")
        if row["loss"] == "pnp" and isinstance(row["representation"], str):
            inputs["loss_metric"] = metric_path(synth, "test", row["representation"])
    return inputs


# -- figures, listening, report pages (workflow/rules/figures.smk) --------------------------------

FIGURE_SOUNDS = config["figures"]["sounds"]


def table1_runs(synth, first_seed=False):
    """Names of the Table-1 runs of `synth` (all seeds, or only the first seed)."""
    rows = RUNS[(RUNS["synth"] == synth) & (RUNS["group"] == "table1")]
    if first_seed:
        rows = rows[rows["seed"] == min(config["training"]["seeds"])]
    return list(rows["name"])


def diagnose_runs(synth):
    """The runs `pnp diagnose` follows: the first seed's P-loss and PNP-JTFS of Table 1."""
    seed = min(config["training"]["seeds"])
    return {"P-loss": run_name("p", seed), "PNP-JTFS": run_name("pnp", seed)}


def diagnose_inputs(wildcards):
    s = wildcards.synth
    inputs = {
        "params": f"results/data/{s}/params.parquet",
        "metric_test": metric_path(s, "test"),
        "metric_val": metric_path(s, "val"),
    }
    for label, name in diagnose_runs(s).items():
        inputs[f"model_{name}"] = f"results/runs/{s}/{name}/model.pt"
    return inputs


def diagnose_run_flags(wildcards):
    return " ".join(
        f"--run {label.replace(' ', '')}=results/runs/{wildcards.synth}/{name}"
        for label, name in diagnose_runs(wildcards.synth).items()
    )


def diagnose_compare_json(wildcards):
    """The synth entry with the paper preset's settings and feature (same dataset)."""
    paper = load_yaml(f"{workflow.basedir}/workflow/presets/paper.yaml")["synths"]
    entry = json.loads(entry_json("train")(wildcards))
    over = paper.get(wildcards.synth, {})
    for key in ("settings", "feature"):
        if key in over:
            entry[key] = over[key]
    return json.dumps(entry, sort_keys=True)


def damping_histories(wildcards):
    """Input function of the λ figure: history.parquet of the PNP runs of Table 1
    (group 'table1'), plus those of the damping ablations (group 'ablation')."""
    keep = (RUNS["loss"] == "pnp") & (RUNS["group"] == "table1")
    if wildcards.group == "ablation":
        damp = RUNS["damping"].notna() | RUNS["damping_matrix"].notna()
        keep |= (RUNS["loss"] == "pnp") & damp
    rows = RUNS[keep]
    return [f"results/runs/{s}/{n}/history.parquet" for s, n in zip(rows.synth, rows.name)]


def table1_files(filename, first_seed=False):
    """Input function: a per-run file (`filename` with {synth} and {run}) of each Table-1
    run, of the job's {synth} wildcard when it has one, else of every synth."""

    def files(wildcards):
        synths = [wildcards.synth] if "synth" in wildcards.keys() else SYNTHS
        return [filename.format(synth=s, run=r) for s in synths for r in table1_runs(s, first_seed)]

    return files


def listen_page_inputs(wildcards):
    """Input function of a listening page: sounds.csv and WAV files of the synth's
    Table-1 runs (first seed)."""
    files = []
    for run in table1_runs(wildcards.synth, first_seed=True):
        folder = f"results/listen/{wildcards.synth}/{run}"
        files += [f"{folder}/sounds.csv"]
        files += [f"{folder}/{f}" for f in listen_files(["target", "match"])]
    return files


def listen_dirs(wildcards):
    """Params function: the listening folders of the synth's Table-1 runs (first seed)."""
    return [f"results/listen/{wildcards.synth}/{r}" for r in table1_runs(wildcards.synth, True)]


def listen_files(role_names):
    """The WAV file names of one listening job: sound{k}_{role}.wav, k = 1 … figures.sounds."""
    return [f"sound{k}_{role}.wav" for k in range(1, FIGURE_SOUNDS + 1) for role in role_names]


def listen_labels(k, role):
    """Report labels of a listening WAV: synth, method, test sound k, target or match."""

    def labels(wildcards):
        return {
            "method": run_label(wildcards.run),
            "run": wildcards.run,
            "sound": str(k),
            "file": role,
        }

    return labels


def table_csv(wildcards):
    """Input function of a report table page: results/table1.csv or results/tables/<name>.csv."""
    if wildcards.table == "table1":
        return "results/table1.csv"
    return f"results/tables/{wildcards.table}.csv"


def figure_targets(ablations=False):
    """The figures, listening WAVs and report pages of the default target (docs/figures.md).
    `ablations`: also the λ figure of the damping ablation runs and the ablation tables'
    report pages."""
    first = [(s, r) for s in SYNTHS for r in table1_runs(s, first_seed=True)]
    names = ["spectra", "curves", "damping_table1", "table1"]
    names += [f"{kind}_{s}" for kind in ("errors", "cqt") for s in SYNTHS]
    names += ["damping_ablation"] if ablations else []
    targets = expand("results/figures/{name}.{ext}", name=names, ext=["pdf", "png"])
    targets += [
        f"results/listen/{s}/{r}/{f}" for s, r in first for f in listen_files(["target", "match"])
    ]
    targets += expand("results/report/listen_{synth}.html", synth=SYNTHS)
    tables = ["table1"] + ([f"ablation_{axis}" for axis in ablation_axes()] if ablations else [])
    targets += expand("results/report/tables/{table}.html", table=tables)
    return targets
