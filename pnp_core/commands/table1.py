"""Table 1: one row per synth × method (P-loss, DDSP-MSS, DDSP-JTFS, PNP-JTFS), mean ± std
over seeds of each run's test-fold mean JTFS distance (macro and micro), MSS distance,
parameter error, the box-centre chance line and seconds per epoch and per step, with
bootstrap intervals, and PNP-JTFS's tests against each method, written as CSV and Markdown
(pnp_core.evaluation.tables)."""

from __future__ import annotations

from pnp_core.commands import parse_entry

HELP = "aggregate the Table-1 runs' evaluations into table1.csv and table1.md"


def add_run_list_argument(parser) -> None:
    parser.add_argument("--runs", type=parse_entry, required=True,
                        help='run list as JSON (or @file): {"runs": [{"synth", "name", "loss", '
                             '"seed", "metrics", "history", …}, …]} (pnp_core.evaluation.tables)')


def add_arguments(parser) -> None:
    add_run_list_argument(parser)
    parser.add_argument("--csv", required=True, help="output CSV")
    parser.add_argument("--md", required=True, help="output Markdown")
    parser.add_argument("--tests-csv", default=None,
                        help="also write PNP-JTFS's tests against each method here "
                             "(pnp_core.evaluation.tables.table1_tests; they are in the Markdown too)")


def run(args) -> int:
    from pnp_core.evaluation.tables import table1, table1_tests, write_tables

    df = table1(args.runs["runs"])
    tests = table1_tests(args.runs["runs"])
    write_tables(df, args.csv, args.md, "Table 1: sound matching on the test fold", tests,
                 args.tests_csv)
    print(f"{len(df)} rows → {args.csv}, {args.md}")
    return 0
