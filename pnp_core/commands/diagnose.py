"""Diagnostics of the PNP loss for one synth (pnp_core.evaluation.diagnose; docs/training.md).

Writes under ``--out-dir``: ``validity.parquet`` and ``validity_summary.csv`` (the first-order
model √(ΔᵀMΔ) against the true JTFS distance at random and at the network's errors),
``dynamics.parquet`` and ``rank_agreement.csv`` (per epoch of each ``--run``: val/test
objectives and JTFS distance, Spearman over epochs), ``settings.parquet`` (M under the
``--compare-entry`` feature settings, e.g. the paper's) and ``diagnostics.pdf|png``.
"""

from __future__ import annotations

from pnp_core.commands import (add_entry_argument, add_threads_argument, apply_threads,
                               parse_entry, spec_from_args)

HELP = "PNP diagnostics: validity of the quadratic model, learning dynamics, JTFS settings"


def _named_run(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        import argparse

        raise argparse.ArgumentTypeError(f"--run must be NAME=RUN_DIR, got {text!r}")
    return name, path


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--metric-test", required=True, help="merged test-fold metric")
    parser.add_argument("--metric-val", default=None,
                        help="merged val-fold metric (needed with --run)")
    parser.add_argument("--run", type=_named_run, action="append", default=[],
                        help="NAME=RUN_DIR of a run trained with training.keep_epochs "
                             "(repeatable; the first one's test errors enter the validity table)")
    parser.add_argument("--compare-entry", type=parse_entry, default=None,
                        help="the same synth under other settings (JSON or @file), e.g. the "
                             "paper's JTFS, to compare M on the same sounds")
    parser.add_argument("--sounds", type=int, default=32, help="test sounds of the validity table")
    parser.add_argument("--compare-sounds", type=int, default=6,
                        help="test sounds for --compare-entry (a paper-setting Jacobian costs "
                             "~30 s per FTM sound on 2 CPU cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random error directions")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--out-dir", required=True, help="folder of the outputs")


def run(args) -> int:
    from pnp_core.evaluation.diagnose import write_diagnostics
    from pnp_core.errors import ConfigError
    from pnp_core.spec import RunSpec

    apply_threads(args)
    spec = spec_from_args(args)
    if args.run and args.metric_val is None:
        raise ConfigError("--run needs --metric-val (the dynamics are measured on the val fold)")
    metrics = {"test": args.metric_test}
    if args.metric_val:
        metrics["val"] = args.metric_val
    other = RunSpec.from_entry(args.compare_entry) if args.compare_entry else None
    out = write_diagnostics(spec, spec.read_params(args.params), metrics, args.out_dir,
                            runs=dict(args.run), other_spec=other, n_sounds=args.sounds,
                            n_compare=args.compare_sounds, seed=args.seed,
                            progress=not args.no_progress)
    v = out["validity"]
    for _, row in v.iterrows():
        print(f"{row['source']:>7} ‖Δ‖/√P ≈ {row['radius']:.3g}: √(ΔᵀMΔ)/‖ΔΦ‖ median "
              f"{row['ratio_median']:.3g} [{row['ratio_q25']:.3g}, {row['ratio_q75']:.3g}], "
              f"Spearman {row['spearman_lin_true']:.2f}")
    if out["rank"] is not None:
        print(out["rank"].to_string(index=False))
    print(f"→ {args.out_dir}")
    return 0
