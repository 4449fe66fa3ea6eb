"""Summarise DTFA traces (pnp match-grid) into one CSV: per synth and loss, the success
rate (final normalised parameter error below the tolerance stored in the traces), the
median iterations and seconds (amortised per pair) to success, the median final error."""

from __future__ import annotations

HELP = "DTFA summary table (CSV) from match-grid traces"


def add_arguments(parser) -> None:
    parser.add_argument("traces", nargs="+", help="traces files (.parquet) of pnp match-grid")
    parser.add_argument("--out", required=True, help="summary table (.csv)")


def run(args) -> int:
    import pandas as pd

    from pnp_core.matching.dtfa import TRACES_FORMAT, summarise
    from pnp_core.io import write_csv
    from pnp_core.io import read_table

    parts = []
    for path in args.traces:
        table = read_table(path, TRACES_FORMAT, what="DTFA traces (pnp match-grid)")
        parts.append(summarise(table.data, float(table.meta["tolerance"])))
    out = pd.concat(parts, ignore_index=True)
    write_csv(out, args.out)
    print(out.to_string(index=False))
    print(f"→ {args.out}")
    return 0
