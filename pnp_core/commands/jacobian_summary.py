"""Figure-ready summary of a merged metric file: per-sample eigenvalue spectra and
condition numbers (λ_max/λ_min, λ_max/λ_2, log10 values), and their quantiles.
Formats: pnp_core.metric.summary."""

from __future__ import annotations

HELP = "eigenvalue spectra and condition numbers of a merged metric file (Parquet)"


def add_arguments(parser) -> None:
    parser.add_argument("metric", help="merged metric file (.parquet)")
    parser.add_argument("--out", required=True, help="per-sample summary (.parquet)")
    parser.add_argument("--quantiles-out", required=True, help="quantile table (.parquet)")


def run(args) -> int:
    import numpy as np

    from pnp_core.metric.file import read_metric
    from pnp_core.metric.summary import condition_numbers, write_summaries

    table = read_metric(args.metric)
    write_summaries(table, args.out, args.quantiles_out, source=args.metric)
    if len(table):
        c2 = np.log10(condition_numbers(table.eig)[1])
        print(f"{args.metric}: {len(table)} samples; median log10 λ_max/λ_2 = "
              f"{np.median(c2):.2f} → {args.out}, {args.quantiles_out}")
    else:
        print(f"{args.metric}: empty → {args.out}, {args.quantiles_out}")
    return 0
