"""Compute the metric M(θ) = JᵀJ of one shard of a fold (format: pnp_core.metric_io).

J is the Jacobian of ν ↦ Φ(g(h⁻¹(ν))) at ν = h(θ), by forward-mode autodiff
(pnp_core.jacobian). h is the entry's rescaling, fitted on the **train** fold
of the params file whatever fold is computed. Shard k holds rows
[k·shard_size, (k+1)·shard_size) of the fold sorted by id. The shard is
written atomically; NaN/Inf in J or M stops the job, naming the sample ids,
and writes nothing.
"""

from __future__ import annotations

from pnp_core.commands import add_device_argument, add_entry_argument, entry_from_args

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
    parser.add_argument("--synth-tangents", default="analytic", choices=["analytic", "autodiff"],
                        help="synthesizer derivatives: analytic where available (FTM), else "
                             "autodiff (default analytic; both agree to ~1e-12)")
    add_device_argument(parser)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--out", required=True, help="output shard path (.parquet)")


def run(args) -> int:
    import json
    import logging
    import time

    import torch

    import pnp_core
    from pnp_core.config import build_feature, build_synth, resolve_device
    from pnp_core.datasets import load_params
    from pnp_core.jacobian import JacobianComputer, compute_metrics
    from pnp_core.metric_io import n_shards, shard_slice, write_metric
    from pnp_core.params import Scaler

    if args.threads:
        torch.set_num_threads(args.threads)
    entry = entry_from_args(args)
    synth = build_synth(entry)
    feature = build_feature(entry, synth)
    space = synth.space
    train = load_params(args.params, "train")
    kind = entry["rescaling"]
    if kind in ("minmax", "logminmax") and train.empty:
        raise ValueError(f"{args.params}: the train fold is empty, cannot fit the {kind!r} rescaling")
    scaler = Scaler.fit(space, kind, train[space.names].to_numpy())

    fold = load_params(args.params, args.fold)
    size = args.shard_size or max(len(fold), 1)
    rows = shard_slice(len(fold), size, args.shard)
    df = fold.iloc[rows]
    device = resolve_device(args.device)
    computer = JacobianComputer(synth, feature, scaler, method=args.method,
                                memory_budget_mb=args.memory_budget_mb, device=device,
                                dtype=getattr(torch, args.dtype),
                                analytic_synth=args.synth_tangents == "analytic")
    t0 = time.perf_counter()
    ids, M, eig = compute_metrics(df, computer, batch_size=args.batch_size,
                                  progress=not args.no_progress,
                                  desc=f"{synth.name}/{args.fold} shard {args.shard} jacobian")
    seconds = time.perf_counter() - t0
    cal = computer.calibration
    meta = {
        "synth": synth.name, "synth_settings": synth.settings(),
        "feature": entry["feature"]["type"], "feature_settings": entry["feature"]["settings"],
        "feature_dim": int(feature.n_coefficients), "rescaling": scaler.state(),
        "fold": args.fold, "shard": args.shard, "n_shards": n_shards(len(fold), size),
        "shard_size": size, "param_names": space.names, "method": computer.chosen_method,
        "auto_trials": cal.trials if cal else None, "dtype": args.dtype, "device": str(device),
        "batch_size": args.batch_size, "seconds": seconds,
        "synth_tangents": "analytic" if computer.analytic_synth else "autodiff", "pnp_core_version": pnp_core.__version__,
    }
    write_metric(args.out, ids, M, eig, meta)
    per = seconds / max(len(ids), 1)
    logging.getLogger("pnp.jacobian").info("auto trials: %s", json.dumps(meta["auto_trials"]))
    print(f"{synth.name}/{args.fold} shard {args.shard}: {len(ids)} metrics "
          f"({computer.chosen_method}, {device}, {args.dtype}) in {seconds:.1f} s "
          f"({per:.3g} s/sample) → {args.out}")
    return 0
