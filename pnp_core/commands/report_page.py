"""HTML pages for the Snakemake report (which shows HTML inline, CSV and WAV files only
as downloads): ``table`` renders a results CSV (mean ± std columns); ``listen`` puts a
synth's target and matched sounds side by side as playable audio."""

from __future__ import annotations

HELP = "HTML pages for the report: a results table, or a synth's listening page"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="<kind>")
    table = sub.add_parser("table", help="a results CSV as an HTML table")
    table.add_argument("csv")
    table.add_argument("--title", default=None)
    listen = sub.add_parser("listen", help="target and matches of a synth as playable audio")
    listen.add_argument("run_dirs", nargs="+", help="folders written by pnp listen")
    listen.add_argument("--synth", required=True)
    for p in (table, listen):
        p.add_argument("--out", required=True, help="the page (.html)")


def run(args) -> int:
    from pnp_core.evaluation import report_pages

    if args.kind == "table":
        report_pages.write_table_page(args.csv, args.out, args.title)
    else:
        report_pages.write_listening_page(args.synth, args.run_dirs, args.out)
    print(f"→ {args.out}")
    return 0
