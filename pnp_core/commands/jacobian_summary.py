"""Figure-ready summary of a merged metric file: per-sample eigenvalue spectra and
condition numbers (λ_max/λ_min, λ_max/λ_2, log10 values), and their quantiles.
Formats: pnp_core.metric_io.summarise."""

from __future__ import annotations

HELP = "eigenvalue spectra and condition numbers of a merged metric file (Parquet)"


def add_arguments(parser) -> None:
    parser.add_argument("metric", help="merged metric file (.parquet)")
    parser.add_argument("--out", required=True, help="per-sample summary (.parquet)")
    parser.add_argument("--quantiles-out", required=True, help="quantile table (.parquet)")


def run(args) -> int:
    import numpy as np

    from pnp_core.metric_io import read_metric, summarise, write_table

    table = read_metric(args.metric)
    per_sample, quantiles = summarise(table)
    keep = ("synth", "synth_settings", "feature", "feature_settings", "rescaling", "fold",
            "n_params", "param_names", "eigenvalue_order")
    meta = {k: table.meta[k] for k in keep if k in table.meta}
    meta.update(source=str(args.metric), n_samples=len(table))
    write_table(per_sample, args.out, meta)
    write_table(quantiles, args.quantiles_out, meta)
    if len(table):
        c2 = np.log10(per_sample.column("cond2").to_numpy())
        print(f"{args.metric}: {len(table)} samples; median log10 λ_max/λ_2 = "
              f"{np.median(c2):.2f} → {args.out}, {args.quantiles_out}")
    else:
        print(f"{args.metric}: empty → {args.out}, {args.quantiles_out}")
    return 0
