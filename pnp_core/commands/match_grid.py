"""The DTFA experiment for one synthesizer: match seeded random (target, init) pairs of
the dataset by gradient descent (Adam in the box rescaling ν ∈ [−1, 1]^P) under each
loss, and write every pair's loss and normalised parameter error per iteration
(format pnp-dtfa-traces/1, see pnp_core.matching.dtfa)."""

from __future__ import annotations

import json

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads

HELP = "DTFA: match random dataset pairs by gradient descent under each loss (traces Parquet)"


def add_override_argument(parser) -> None:
    parser.add_argument("--override", type=json.loads, default={},
                        help="JSON merged into the entry (e.g. shorter sounds for the laptop)")


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    add_override_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    # checked in run(): importing pnp_core.matching.matchers here would load torch for every command
    parser.add_argument("--losses", nargs="+", default=None,
                        help="matchers to compare: jtfs, mss, p, pnp (Adam), jtfs_lm (default: all)")
    parser.add_argument("--pairs", type=int, default=16, help="(target, init) pairs (default 16)")
    parser.add_argument("--steps", type=int, default=60, help="Adam steps (default 60)")
    parser.add_argument("--lm-steps", type=int, default=30,
                        help="Levenberg–Marquardt trials of the jtfs_lm matcher (default 30)")
    parser.add_argument("--lr", type=float, default=0.05, help="Adam learning rate (default 0.05)")
    parser.add_argument("--lr-end", type=float, default=0.1,
                        help="learning rate decays geometrically to lr·lr_end (default 0.1)")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="success: final normalised parameter error below this (default 0.02)")
    parser.add_argument("--seed", type=int, default=0, help="pair draw seed (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per batch (default 16)")
    parser.add_argument("--pnp-damping", type=float, default=1e-3,
                        help="λ of the PNP loss relative to tr(M)/P (default 1e-3)")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True, help="traces (.parquet)")


def run(args) -> int:
    import time

    from pnp_core.matching.dtfa import TRACES_FORMAT, run_experiment, spec_with_override, summarise
    from pnp_core.errors import ConfigError
    from pnp_core.io import write_table
    from pnp_core.matching.matchers import MATCHERS

    args.losses = args.losses or list(MATCHERS)
    unknown = sorted(set(args.losses) - set(MATCHERS))
    if unknown:
        raise ConfigError(f"--losses: {unknown} are not among {list(MATCHERS)}")
    apply_threads(args)
    spec = spec_with_override(args.entry, args.override)
    t0 = time.perf_counter()
    traces = run_experiment(spec, spec.read_params(args.params), losses=args.losses,
                            n_pairs=args.pairs, steps=args.steps, lr=args.lr,
                            tolerance=args.tolerance, seed=args.seed,
                            batch_size=args.batch_size, pnp_damping=args.pnp_damping,
                            lr_end=args.lr_end, lm_steps=args.lm_steps,
                            progress=not args.no_progress)
    meta = {"provenance": spec.provenance(), "tolerance": args.tolerance, "lr": args.lr,
            "lr_end": args.lr_end,
            "steps": args.steps, "pairs": args.pairs, "seed": args.seed,
            "pnp_damping": args.pnp_damping, "lm_steps": args.lm_steps,
            "optimizer": "adam (jtfs_lm: levenberg-marquardt)", "rescaling": "box logminmax",
            "seconds": time.perf_counter() - t0}
    write_table(traces, args.out, TRACES_FORMAT, meta)
    print(summarise(traces, args.tolerance).to_string(index=False))
    print(f"{spec.name}: {args.pairs} pairs × {len(args.losses)} losses in "
          f"{meta['seconds']:.1f} s → {args.out}")
    return 0
