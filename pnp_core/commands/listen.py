"""Listening material of one trained run: for a few test sounds (evenly spaced over the
test ids, the same for every run), the target g(θ) and the match g(θ̂) as WAV files
``sound{k}_target.wav`` / ``sound{k}_match.wav`` (16-bit, the synthesizer's rate and
length, one gain per pair) and ``sounds.csv`` (k, id, θ and θ̂ with units)."""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads

HELP = "WAV files of target and matched test sounds of a run (+ sounds.csv)"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--predictions", required=True,
                        help="the run's predictions.parquet (pnp evaluate)")
    parser.add_argument("--sounds", type=int, default=3, help="test sounds to write")
    parser.add_argument("--out-dir", required=True)
    add_threads_argument(parser)


def run(args) -> int:
    from pnp_core.commands import spec_from_args
    from pnp_core.listen import write_listening

    apply_threads(args)
    table = write_listening(spec_from_args(args), args.predictions, args.sounds, args.out_dir)
    print(table.to_string(index=False))
    print(f"→ {args.out_dir}")
    return 0
