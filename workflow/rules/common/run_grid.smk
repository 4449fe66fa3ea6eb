# The run grid (training): one pandas row per (synth, run), group 'table1' or 'ablation';
# the names of the runs and which table an ablation run belongs to.
import pandas as pd

from pnp_core.run_names import LOSS_NAMES, TABLE1_LOSSES

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


def ablation_axes():
    """The ablation tables' axes that the grid trains, in table order."""
    rows = RUNS[RUNS["group"] == "ablation"]
    have = {run_axis(r) for _, r in rows.iterrows()}
    return [a for a in ABLATION_TABLES if a in have]


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
