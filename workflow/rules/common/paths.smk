# Where outputs and logs go, the synths, the wildcard constraints. Every rule names its
# files with R() and LOG(), so a preset's results_dir / logs_dir (paper: results/paper,
# logs/paper) keeps its run apart from the laptop default's results/ and logs/.
from pnp_core.synth.datasets import FOLDS

RESULTS = config["results_dir"]
LOGS = config["logs_dir"]


def R(path):
    """`path` under results_dir: R("data/{synth}/params.parquet") is
    "results/data/{synth}/params.parquet" for the laptop default (wildcards kept)."""
    return f"{RESULTS}/{path}"


def LOG(path):
    """`path` under logs_dir: LOG("train/{synth}/{run}.log")."""
    return f"{LOGS}/{path}"


SYNTHS = list(config["synths"])


#: the metric's representation, as a path part of {results_dir}/jacobian/{synth}/{rep}{fold}…:
#: "" = the entry's own feature (JTFS), "mss/" = the MSS of training.mss (metric_feature)
METRIC_REPS = {"": None, "mss/": "mss"}


wildcard_constraints:
    synth="|".join(SYNTHS),
    fold="|".join(FOLDS),
    shard=r"\d{4}",
    rep="|".join(f"(?:{r})" for r in METRIC_REPS),


def metric_path(synth, fold, representation=None):
    """The merged metric of `fold` in `representation` (None: the entry's own feature)."""
    rep = {v: k for k, v in METRIC_REPS.items()}[representation]
    return R(f"jacobian/{synth}/{rep}{fold}.parquet")
