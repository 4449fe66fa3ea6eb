"""Format names ("name/version", checked by :func:`pnp_core.io.read_table`) of the tables
that one stage writes and later stages read; kept here so the readers need not import the
writer (and torch with it). The columns of each are documented by the writer's module."""

#: the params table: id, fold, bin code, θ (pnp_core.synth.datasets, ``pnp dataset``)
PARAMS_FORMAT = "pnp-params/1"
#: per-epoch training history (pnp_core.training.train)
HISTORY_FORMAT = "pnp-history/1"
#: per-sample test metrics of a run (pnp_core.evaluation.evaluate)
EVAL_FORMAT = "pnp-eval/1"
#: per-sample test predictions θ, θ̂ of a run (pnp_core.evaluation.evaluate)
PREDICTIONS_FORMAT = "pnp-predictions/1"
