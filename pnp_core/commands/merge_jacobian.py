"""Merge the metric shards of a fold into one file (format: pnp_core.metric_io).

Checks, each failing with an error that names the file or the ids: every shard
is readable and intact (Parquet page checksums and a SHA-256 of the data), all
shards come from the same settings (and match --entry), every id of the fold
(from params.parquet) is present exactly once, no id is foreign to the fold,
and the shard indices are 0…n−1. The merged file is sorted by id.
"""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, entry_from_args

HELP = "merge and validate the metric shards of a fold"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--fold", required=True, choices=["train", "val", "test"])
    parser.add_argument("--out", required=True, help="merged output path (.parquet)")
    parser.add_argument("shards", nargs="*", help="shard files")


def run(args) -> int:
    from pnp_core.config import build_feature, build_synth
    from pnp_core.datasets import load_params
    from pnp_core.metric_io import merge_metric_shards, write_metric

    entry = entry_from_args(args)
    synth = build_synth(entry)
    fold = load_params(args.params, args.fold)
    expect = {"synth": synth.name, "synth_settings": synth.settings(),
              "feature": entry["feature"]["type"], "feature_settings": entry["feature"]["settings"],
              "fold": args.fold, "rescaling_kind": entry["rescaling"],
              "param_names": synth.space.names, "n_params": len(synth.space)}
    table = merge_metric_shards(args.shards, fold["id"].to_numpy(), expect)
    meta = table.meta
    if not args.shards:  # an empty fold: describe it from the entry
        meta = {k: v for k, v in expect.items() if k != "rescaling_kind"}
        meta.update(shard="merged", n_shards=0, shard_files=[], rescaling={"kind": entry["rescaling"]},
                    feature_dim=int(build_feature(entry, synth).n_coefficients))
    write_metric(args.out, table.ids, table.M, table.eig, meta)
    print(f"{synth.name}/{args.fold}: {len(table)} metrics from {len(args.shards)} shard(s) "
          f"→ {args.out}")
    return 0
