"""One ablation table (axis: rescaling, pretraining, representation, optimizer, damping):
each baseline row and its variants, the Table-1 columns, and a paired test of each
variant against its baseline (pnp_core.evaluation.tables)."""

from __future__ import annotations

from pnp_core.commands.table1 import add_run_list_argument

HELP = "aggregate one ablation axis's runs into a CSV and Markdown table with paired tests"


def add_arguments(parser) -> None:
    parser.add_argument("--axis", required=True, help="the ablation axis (its runs' `axis`)")
    add_run_list_argument(parser)
    parser.add_argument("--csv", required=True, help="output CSV")
    parser.add_argument("--md", required=True, help="output Markdown")


def run(args) -> int:
    from pnp_core.evaluation.tables import ablation_table, write_tables

    df = ablation_table(args.runs["runs"], args.axis)
    write_tables(df, args.csv, args.md, f"Ablation: {args.axis}")
    print(f"{len(df)} rows → {args.csv}, {args.md}")
    return 0
