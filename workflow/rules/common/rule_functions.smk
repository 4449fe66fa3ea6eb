# Input and params functions of the rules, by stage: the config slice each job depends on
# (as JSON for the CLI), and the files it reads, all named with R() (paths.smk).
import json

import pandas as pd

from pnp_core.metric.file import n_shards, shard_name
from pnp_core.run_names import run_label
from pnp_core.spec import RunSpec, entry_slice


def entry_json(stage):
    """Params function: the slice of synths.{synth} that `stage`'s outputs depend on
    (pnp_core.spec.SECTIONS), plus the plugins to import, as JSON for --entry. A rule
    reruns only when its own slice changes (Snakemake's params trigger)."""

    def slice_json(wildcards):
        entry = entry_slice(config["synths"][wildcards.synth], stage, config["plugins"])
        return json.dumps(entry, sort_keys=True)

    return slice_json


# -- metrics (workflow/rules/jacobian.smk) ------------------------------------------------------


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


def fold_size(synth, fold):
    """Samples in `fold` of `synth`, from the dataset design (no checkpoint needed)."""
    return RunSpec.from_config(config, synth).fold_sizes()[fold]


def jacobian_shards(wildcards):
    """Input function: the shard files of {synth}/{fold}, ceil(fold size / shard_size)."""
    size = fold_size(wildcards.synth, wildcards.fold)
    count = n_shards(size, config["jacobian"]["shard_size"])
    folder = R(f"jacobian/{wildcards.synth}/{wildcards.rep}{wildcards.fold}")
    return [f"{folder}/{shard_name(k)}" for k in range(count)]


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


# -- training (workflow/rules/train.smk) ----------------------------------------------------------


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
    inputs = {"params": R(f"data/{synth}/params.parquet")}
    if row["loss"] == "pnp":
        rep = None if pd.isna(row["representation"]) else row["representation"]
        inputs["metric_train"] = metric_path(synth, "train", rep)
        inputs["metric_val"] = metric_path(synth, "val", rep)
    return inputs


def pretrained_model(wildcards):
    """Input function of the finetune rule: model.pt of the run's pretraining run."""
    return R(f"runs/{wildcards.synth}/{run_row(wildcards)['init']}/model.pt")


def optional_input_flags(flags):
    """Params function: `<flag> <path>` for each optional named input the job has, e.g.
    {"metric_train": "--metric-train"} gives "--metric-train results/…" for PNP runs only."""

    def args(wildcards, input):
        return " ".join(
            f"{flag} {input[key]}" for key, flag in flags.items() if key in input.keys()
        )

    return args


# -- evaluation and tables (workflow/rules/evaluate.smk) ------------------------------------------


def table_entry(row, **extra):
    """One run of a run list (pnp_core.evaluation.tables): identity and the files a table reads."""
    s, n = row["synth"], row["name"]
    return {
        "synth": s,
        "name": n,
        "loss": row["loss"],
        "seed": int(row["seed"]),
        "metrics": R(f"eval/{s}/{n}/metrics.parquet"),
        "history": R(f"runs/{s}/{n}/history.parquet"),
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


def evaluate_inputs(wildcards):
    """Input function of the evaluate rule: model, params, test features, test metrics."""
    row = run_row(wildcards)
    synth = wildcards.synth
    inputs = {
        "params": R(f"data/{synth}/params.parquet"),
        "model": R(f"runs/{synth}/{wildcards.run}/model.pt"),
        "features": R(f"features/{synth}/test.pt"),
    }
    if "test" in config["jacobian"]["folds"]:
        inputs["metric"] = metric_path(synth, "test")
        if row["loss"] == "pnp" and isinstance(row["representation"], str):
            inputs["loss_metric"] = metric_path(synth, "test", row["representation"])
    return inputs


# -- diagnostics (workflow/rules/diagnose.smk) ----------------------------------------------------


def diagnose_inputs(wildcards):
    s = wildcards.synth
    inputs = {
        "params": R(f"data/{s}/params.parquet"),
        "metric_test": metric_path(s, "test"),
        "metric_val": metric_path(s, "val"),
    }
    for label, name in diagnose_runs(s).items():
        inputs[f"model_{name}"] = R(f"runs/{s}/{name}/model.pt")
    return inputs


def diagnose_run_flags(wildcards):
    return " ".join(
        f"--run {label.replace(' ', '')}={R(f'runs/{wildcards.synth}/{name}')}"
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


# -- figures, listening, report pages (workflow/rules/figures.smk) --------------------------------

FIGURE_SOUNDS = config["figures"]["sounds"]


def damping_histories(wildcards):
    """Input function of the λ figure: history.parquet of the PNP runs of Table 1
    (group 'table1'), plus those of the damping ablations (group 'ablation')."""
    keep = (RUNS["loss"] == "pnp") & (RUNS["group"] == "table1")
    if wildcards.group == "ablation":
        damp = RUNS["damping"].notna() | RUNS["damping_matrix"].notna()
        keep |= (RUNS["loss"] == "pnp") & damp
    rows = RUNS[keep]
    return [R(f"runs/{s}/{n}/history.parquet") for s, n in zip(rows.synth, rows.name)]


def table1_files(filename, first_seed=False):
    """Input function: a per-run file (`filename` with {synth} and {run}, under results_dir)
    of each Table-1 run, of the job's {synth} wildcard when it has one, else of every synth."""

    def files(wildcards):
        synths = [wildcards.synth] if "synth" in wildcards.keys() else SYNTHS
        return [filename.format(synth=s, run=r) for s in synths for r in table1_runs(s, first_seed)]

    return files


def listen_page_inputs(wildcards):
    """Input function of a listening page: sounds.csv and WAV files of the synth's
    Table-1 runs (first seed)."""
    files = []
    for run in table1_runs(wildcards.synth, first_seed=True):
        folder = R(f"listen/{wildcards.synth}/{run}")
        files += [f"{folder}/sounds.csv"]
        files += [f"{folder}/{f}" for f in listen_files(["target", "match"])]
    return files


def mushra_inputs(wildcards):
    """Input function of the MUSHRA bundle: predictions of the synth's Table-1 runs (first seed)."""
    return [
        R(f"eval/{wildcards.synth}/{r}/predictions.parquet")
        for r in table1_runs(wildcards.synth, True)
    ]


def mushra_labels(wildcards):
    """Params function: the method name of each of those runs, shell-quoted."""
    import shlex

    return " ".join(shlex.quote(run_label(r)) for r in table1_runs(wildcards.synth, True))


def listen_dirs(wildcards):
    """Params function: the listening folders of the synth's Table-1 runs (first seed)."""
    return [R(f"listen/{wildcards.synth}/{r}") for r in table1_runs(wildcards.synth, True)]


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
    """Input function of a report table page: {results_dir}/table1.csv or
    {results_dir}/tables/<name>.csv."""
    if wildcards.table == "table1":
        return R("table1.csv")
    return R(f"tables/{wildcards.table}.csv")
