"""Build a synthesizer's stratified jittered-grid dataset: one Parquet file with
columns id, fold, bin_code and θ in physical units (one column per parameter).

The design (bins, val margin, test size, seed, jitter) comes from the entry's
``dataset`` section; the same entry always gives the same file.
"""

from __future__ import annotations

import json

from pnp_core.commands import add_entry_argument, entry_from_args

HELP = "build the parameter table (id, fold, bin code, θ) of a synthesizer"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--out", required=True, help="output Parquet path")


def run(args) -> int:
    from pnp_core.config import build_design, build_synth
    from pnp_core.datasets import make_grid_dataset
    from pnp_core.io import write_parquet

    entry = entry_from_args(args)
    synth = build_synth(entry)
    design = build_design(entry)
    df = make_grid_dataset(synth.space, design)
    write_parquet(df, args.out, synth=synth.name, synth_settings=json.dumps(synth.settings()),
                  design=json.dumps(design.__dict__),
                  units=json.dumps({p.name: p.unit for p in synth.space}))
    sizes = df["fold"].value_counts().reindex(["train", "val", "test"], fill_value=0)
    print(f"{synth.name}: {len(df)} samples → {args.out} "
          f"(train {sizes['train']}, val {sizes['val']}, test {sizes['test']})")
    return 0
