"""Listening material of trained runs.

``pnp listen --predictions P --out-dir D``: for a few test sounds of one run (evenly spaced
over the test ids, the same for every run), the target g(θ) and the match g(θ̂) as WAV files
``sound{k}_target.wav`` / ``sound{k}_match.wav`` (16-bit, the synthesizer's rate and
length, one gain per pair) and ``sounds.csv`` (k, id, θ and θ̂ with units).

``pnp listen --mushra --predictions P1 P2 … --labels L1 L2 … --out-dir D``: a MUSHRA
listening-test bundle of those runs (reference, hidden reference, anchor, one stimulus per
run, webMUSHRA and BeaqleJS configs, manifest.csv; docs/listening_test.md)."""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads

HELP = "WAV files of target and matched test sounds of a run, or a MUSHRA bundle of runs"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--predictions", required=True, nargs="+",
                        help="the run's predictions.parquet (pnp evaluate); with --mushra, "
                             "one per run")
    parser.add_argument("--mushra", action="store_true",
                        help="write a MUSHRA listening-test bundle of the runs given")
    parser.add_argument("--labels", nargs="+", default=None,
                        help="with --mushra: the method name of each run (e.g. PNP-JTFS)")
    parser.add_argument("--sounds", type=int, default=3, help="test sounds to write")
    parser.add_argument("--out-dir", required=True)
    add_threads_argument(parser)


def run(args) -> int:
    from pnp_core.commands import spec_from_args
    from pnp_core.errors import ConfigError

    apply_threads(args)
    spec = spec_from_args(args)
    if args.mushra:
        from pnp_core.evaluation.mushra import write_runs_bundle

        if args.labels is None:
            raise ConfigError("--mushra needs --labels: one method name per --predictions file")
        table = write_runs_bundle(spec, args.predictions, args.labels, args.sounds, args.out_dir)
        print(f"{table['trial'].nunique()} trial(s), {len(args.labels)} method(s)")
    else:
        from pnp_core.evaluation.listen import write_listening

        if len(args.predictions) != 1 or args.labels is not None:
            raise ConfigError("without --mushra, pnp listen takes one --predictions file and "
                              "no --labels")
        table = write_listening(spec, args.predictions[0], args.sounds, args.out_dir)
        print(table.to_string(index=False))
    print(f"→ {args.out_dir}")
    return 0
