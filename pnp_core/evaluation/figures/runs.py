"""Per-run tables (histories, evaluation metrics) stacked into one long DataFrame.

Each file lives at ``…/{synth}/{run}/<file>`` (``results/runs``, ``results/eval``); the
stacked table gains ``synth``, ``run``, ``method``, ``variant`` and ``seed`` columns
(:func:`pnp_core.evaluation.figures.style.parse_run`).
"""

from __future__ import annotations

import pandas as pd

from pnp_core.evaluation.figures.style import parse_run, run_of_path
from pnp_core.formats import EVAL_FORMAT


def stack_runs(paths, fmt: str, what: str) -> pd.DataFrame:
    """Read every per-run table of ``fmt`` and stack them, labelled by synth and run."""
    from pnp_core.io import read_table

    parts = []
    for path in paths:
        df = read_table(path, fmt, what=what).data
        synth, run = run_of_path(path)
        method, variant, seed = parse_run(run)
        parts.append(df.assign(synth=synth, run=run, method=method, variant=variant,
                               seed=seed))
    if not parts:
        raise ValueError(f"no {what} given")
    return pd.concat(parts, ignore_index=True)


def read_histories(paths) -> pd.DataFrame:
    from pnp_core.formats import HISTORY_FORMAT

    return stack_runs(paths, HISTORY_FORMAT, "the training history (pnp train)")


def read_metrics(paths) -> pd.DataFrame:
    return stack_runs(paths, EVAL_FORMAT, "the per-sample metrics (pnp evaluate)")


__all__ = ["stack_runs", "read_histories", "read_metrics", "EVAL_FORMAT"]
