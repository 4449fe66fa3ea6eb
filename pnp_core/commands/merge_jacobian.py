"""Merge the metric shards of a fold into one file (format: pnp_core.metric.file).

Checks, each failing with an error that names the file or the ids: every shard
is readable and intact (Parquet page checksums and a SHA-256 of the data), all
shards come from the same settings (and match --entry), every id of the fold
(from the params table) is present exactly once, no id is foreign to the fold,
and the shard indices are 0…n−1. The merged file is sorted by id.
"""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, spec_from_args

HELP = "merge and validate the metric shards of a fold"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--fold", required=True, choices=["train", "val", "test"])
    parser.add_argument("--out", required=True, help="merged output path (.parquet)")
    parser.add_argument("shards", nargs="*", help="shard files")


def run(args) -> int:
    from pnp_core.metric.file import merge_fold, write_metric

    spec = spec_from_args(args)
    table = merge_fold(spec, spec.read_params(args.params), args.fold, args.shards)
    write_metric(args.out, table.ids, table.M, table.eig, table.meta)
    print(f"{spec.name}/{args.fold}: {len(table)} metrics from {len(args.shards)} shard(s) "
          f"→ {args.out}")
    return 0
