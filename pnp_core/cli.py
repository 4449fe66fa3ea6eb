"""The ``pnp`` command line (also ``python -m pnp_core``): what workflow rules call.

Each subcommand lives in :mod:`pnp_core.commands` as a module with ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Run ``pnp <cmd> --help``.
Errors meant for the user (:class:`pnp_core.errors.PnpError`) print in one line
and exit with status 2; any other exception is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

#: subcommand name → module in pnp_core.commands
COMMANDS = {
    "info": "info",
    "check-config": "check_config",
    "dataset": "dataset",
    "features": "features",
    "jacobian": "jacobian",
    "merge-jacobian": "merge_jacobian",
    "jacobian-summary": "jacobian_summary",
    # DTFA: per-sound matching by gradient descent (pnp_core.matching.matchers, pnp_core.matching.dtfa)
    "match-grid": "match_grid",
    "dtfa-table": "dtfa_table",
    "dtfa-figure": "dtfa_figure",
    "match": "match",
    "train": "train",
    "diagnose": "diagnose",
    # evaluation and tables (pnp_core.evaluation.evaluate, pnp_core.evaluation.tables)
    "evaluate": "evaluate",
    "table1": "table1",
    "ablation-table": "ablation_table",
    # the paper's figures, listening material, report pages (docs/figures.md)
    "figure": "figure",
    "listen": "listen",
    "report-page": "report_page",
}


def build_parser() -> argparse.ArgumentParser:
    from pnp_core import __version__

    parser = argparse.ArgumentParser(
        prog="pnp",
        description="Perceptual–neural–physical sound matching: pipeline steps. "
                    "Snakemake rules call these; they also run by hand.",
    )
    parser.add_argument("--version", action="version", version=f"pnp_core {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"pnp_core.commands.{module}")  # a broken one fails here
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pnp_core.errors import PnpError

    try:
        return int(args._run(args) or 0)
    except PnpError as err:  # meant for the user: one line; anything else is a bug (traceback)
        print(f"pnp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
