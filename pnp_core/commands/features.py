"""Compute the feature map Φ(g(θ)) of every sample of one fold and store it
(format: pnp_core.features.fold). Used for evaluation and as DDSP targets."""

from __future__ import annotations

from pnp_core.commands import add_device_argument, add_entry_argument, spec_from_args

HELP = "compute Φ(g(θ)) for a fold of a dataset (torch file)"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--fold", required=True, choices=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    add_device_argument(parser)
    parser.add_argument("--out", required=True, help="output .pt path")


def run(args) -> int:
    import torch

    from pnp_core.config import resolve_device
    from pnp_core.features.fold import fold_features, save_fold_features

    spec = spec_from_args(args)
    df = spec.read_params(args.params, args.fold)
    S = fold_features(df, spec.synth, spec.feature, batch_size=args.batch_size,
                      device=resolve_device(args.device), dtype=getattr(torch, args.dtype),
                      desc=f"{spec.name}/{args.fold} features", fold=args.fold)
    save_fold_features(args.out, df["id"].to_numpy(), S, provenance=spec.provenance(),
                       fold=args.fold)
    print(f"{len(df)} × {S.shape[1]} features ({args.dtype}) → {args.out}")
    return 0
