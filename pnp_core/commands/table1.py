"""Table 1: one row per synth × method (P-loss, DDSP-MSS, DDSP-JTFS, PNP-JTFS), mean ± std
over seeds of each run's test-fold mean JTFS distance (macro and micro), MSS distance,
parameter error and seconds per epoch, written as CSV and Markdown (pnp_core.tables)."""

from __future__ import annotations

from pnp_core.commands import parse_entry

HELP = "aggregate the Table-1 runs' evaluations into table1.csv and table1.md"


def add_run_list_argument(parser) -> None:
    parser.add_argument("--runs", type=parse_entry, required=True,
                        help='run list as JSON (or @file): {"runs": [{"synth", "name", "loss", '
                             '"seed", "metrics", "history", …}, …]} (pnp_core.tables)')


def add_arguments(parser) -> None:
    add_run_list_argument(parser)
    parser.add_argument("--csv", required=True, help="output CSV")
    parser.add_argument("--md", required=True, help="output Markdown")


def run(args) -> int:
    from pnp_core.tables import table1, write_tables

    df = table1(args.runs["runs"])
    write_tables(df, args.csv, args.md, "Table 1: sound matching on the test fold")
    print(f"{len(df)} rows → {args.csv}, {args.md}")
    return 0
