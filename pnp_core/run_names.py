"""Run names of the training grid: how they are built and read back.

The grid (``make_run_grid`` in workflow/rules/common.smk) names a run
``<prefix>[_<ablation value>…][_<stage>]_seed<k>``, the prefix being the loss part
(:data:`LOSS_NAMES`; PNP on another representation's metric: ``pnp-mss``). Tables,
figures and report pages read the method back from the name with :func:`parse_run`,
so one mapping here serves them all.
"""

from __future__ import annotations

import re

#: loss → the prefix of its run names
LOSS_NAMES = {"p": "p", "pnp": "pnp-jtfs", "ddsp_mss": "ddsp-mss", "ddsp_jtfs": "ddsp-jtfs"}
#: the losses of Table 1, in the table's row order
TABLE1_LOSSES = ("p", "ddsp_mss", "ddsp_jtfs", "pnp")
#: run-name prefix → readable method name
METHOD_LABELS = {"p": "P-loss", "ddsp-mss": "DDSP-MSS", "ddsp-jtfs": "DDSP-JTFS",
                 "pnp-jtfs": "PNP-JTFS", "pnp-mss": "PNP-MSS"}


def parse_run(name: str) -> tuple[str, str, int | None]:
    """A run name of the grid → (method, variant, seed).

    ``pnp-jtfs_seed0`` → ("PNP-JTFS", "", 0); ``pnp-jtfs_damp-constant_seed1`` →
    ("PNP-JTFS", "damp-constant", 1); an unknown prefix is kept as the method.
    """
    parts = str(name).split("_")
    seed = None
    if parts and re.fullmatch(r"seed\d+", parts[-1]):
        seed = int(parts.pop()[4:])
    prefix = parts[0] if parts else name
    return METHOD_LABELS.get(prefix, prefix), "_".join(parts[1:]), seed


def run_group(name: str) -> str:
    """The run name without its seed: ``pnp-jtfs_D-diag_seed3`` → ``pnp-jtfs_D-diag``."""
    return re.sub(r"_seed\d+$", "", str(name))


def run_label(name: str) -> str:
    """A readable label of a run or run group: its method, then its ablation values (no
    seed): ``pnp-jtfs_D-diag_seed2`` → ``PNP-JTFS (D-diag)``."""
    method, variant, _ = parse_run(name)
    return f"{method} ({variant.replace('_', ', ')})" if variant else method


__all__ = ["LOSS_NAMES", "TABLE1_LOSSES", "METHOD_LABELS", "parse_run", "run_group", "run_label"]
