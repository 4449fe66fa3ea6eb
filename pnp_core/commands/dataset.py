"""Build a synthesizer's stratified jittered-grid dataset: one params table with
columns id, fold, bin_code and θ in physical units (format: pnp_core.synth.datasets.write_params).

The design (bins, val margin, test size, seed, jitter) comes from the entry's
``dataset`` section; the same entry always gives the same file.
"""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, spec_from_args

HELP = "build the parameter table (id, fold, bin code, θ) of a synthesizer"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--out", required=True, help="output Parquet path")


def run(args) -> int:
    from pnp_core.synth.datasets import make_grid_dataset, write_params

    spec = spec_from_args(args)
    df = make_grid_dataset(spec.space, spec.design)
    write_params(df, args.out, spec.provenance(), {p.name: p.unit for p in spec.space})
    sizes = df["fold"].value_counts().reindex(["train", "val", "test"], fill_value=0)
    print(f"{spec.name}: {len(df)} samples → {args.out} "
          f"(train {sizes['train']}, val {sizes['val']}, test {sizes['test']})")
    return 0
