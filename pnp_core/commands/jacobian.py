"""Compute the metric M(θ) = JᵀJ of one shard of a fold (format: pnp_core.metric.file).

J is the Jacobian of ν ↦ Φ(g(h⁻¹(ν))) at ν = h(θ), by forward-mode autodiff
(pnp_core.metric.jacobian). h is the entry's rescaling, fitted on the **train** fold
of the params file whatever fold is computed. Shard k holds rows
[k·shard_size, (k+1)·shard_size) of the fold sorted by id. The shard is
written atomically; NaN/Inf in J or M stops the job, naming the sample ids,
and writes nothing.
"""

from __future__ import annotations

from pnp_core.commands import (add_device_argument, add_entry_argument, add_threads_argument,
                               apply_threads, spec_from_args)

HELP = "compute M = JᵀJ and its eigenvalues for one shard of a fold (Parquet)"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--fold", required=True, choices=["train", "val", "test"])
    parser.add_argument("--shard", type=int, default=0, help="shard index (default 0)")
    parser.add_argument("--shard-size", type=int, default=None,
                        help="samples per shard (default: the whole fold in one shard)")
    parser.add_argument("--batch-size", type=int, default=4,
                        help="samples per forward-mode pass (default 4)")
    parser.add_argument("--method", default="auto", choices=["auto", "jvp", "vmap"],
                        help="forward-mode strategy (default auto: measure both on the first batch)")
    parser.add_argument("--memory-budget-mb", type=float, default=2000,
                        help="memory budget of the auto choice (default 2000)")
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                        help="precision of J (M is always float64; default float64)")
    parser.add_argument("--synth-tangents", default="own", choices=["own", "autodiff"],
                        help="synthesizer derivatives: the synthesizer's own (analytic for the "
                             "FTM drum) or autodiff (default own; both agree to ~1e-12)")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log) and no progress lines (terminal)")
    parser.add_argument("--out", required=True, help="output shard path (.parquet)")


def run(args) -> int:
    import torch

    from pnp_core.config import resolve_device
    from pnp_core.metric.jacobian import compute_shard
    from pnp_core.metric.file import write_metric

    apply_threads(args)
    spec = spec_from_args(args)
    table = compute_shard(spec, spec.read_params(args.params), args.fold, args.shard,
                          args.shard_size, batch_size=args.batch_size, method=args.method,
                          memory_budget_mb=args.memory_budget_mb,
                          dtype=getattr(torch, args.dtype), device=resolve_device(args.device),
                          analytic_synth=args.synth_tangents == "own",
                          progress=not args.no_progress)
    write_metric(args.out, table.ids, table.M, table.eig, table.meta)
    meta = table.meta
    print(f"{spec.name}/{args.fold} shard {args.shard}: {len(table)} metrics ({meta['method']}, "
          f"{meta['device']}, {args.dtype}) in {meta['seconds']:.1f} s "
          f"({meta['seconds'] / max(len(table), 1):.3g} s/sample; auto trials "
          f"{meta['auto_trials']}) → {args.out}")
    return 0
