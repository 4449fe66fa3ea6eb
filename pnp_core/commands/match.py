"""Match a sound file with a synthesizer: load (mono by averaging channels, resampled to
the synthesizer's rate, trimmed or zero-padded to its length; every conversion is
printed), every candidate brought to the file's RMS level (--level), coarse grid search
under JTFS (and, with --model, a trained encoder's
prediction as one more start), refinement of the JTFS loss by Levenberg–Marquardt (default)
or Adam. Writes
<out>/<stem>.theta.csv/.json (θ̂ with units), <stem>.match.wav (the resynthesis) and
<stem>.spectrograms.pdf/.png (target vs match)."""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads

HELP = ("find synthesizer parameters for a sound file (grid search, then Levenberg–Marquardt "
        "or Adam on the JTFS distance)")


def add_arguments(parser) -> None:
    parser.add_argument("target", help="the sound file (WAV, FLAC, OGG, …)")
    add_entry_argument(parser)
    parser.add_argument("--grid", type=int, default=5,
                        help="coarse-search points per parameter (default 5)")
    parser.add_argument("--starts", type=int, default=4,
                        help="best grid points refined by gradient descent (default 4; 0 with "
                             "--model: refine the encoder's prediction only)")
    parser.add_argument("--model", default=None,
                        help="a trained run's model.pt (results/runs/{synth}/{run}/model.pt): "
                             "its prediction is one more start")
    parser.add_argument("--optimizer", choices=["lm", "adam"], default="lm",
                        help="lm: Levenberg–Marquardt with forward-mode JTFS Jacobians "
                             "(default); adam: gradient descent through the JTFS")
    parser.add_argument("--steps", type=int, default=None,
                        help="refinement steps (default 30 for lm, 100 for adam)")
    parser.add_argument("--level", choices=["match", "synth"], default="match",
                        help="match (default): compare every candidate at the file's RMS "
                             "level (a file's gain is arbitrary); synth: at the "
                             "synthesizer's own level")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="Adam learning rate (default 0.05; adam only)")
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", required=True, help="output folder")


def run(args) -> int:
    from pathlib import Path

    from pnp_core.commands import spec_from_args
    from pnp_core.matching.match_audio import match_file, write_match

    apply_threads(args)
    spec = spec_from_args(args)
    result = match_file(spec, args.target, grid=args.grid, starts=args.starts, steps=args.steps,
                        lr=args.lr, progress=not args.no_progress,
                        model=args.model, optimizer=args.optimizer, level=args.level)
    for note in result["notes"]:
        print(f"{args.target}: {note}")
    paths = write_match(spec, result, args.out, Path(args.target).stem, str(args.target))
    for p, v in zip(spec.space, result["theta"]):
        print(f"{p.name} = {v:.6g} {p.unit}")
    starts = []
    if result["encoder_loss"] is not None:
        starts.append(f"{result['encoder_loss']:.4g} (encoder)")
    if result["grid_loss"] is not None:
        starts.append(f"{result['grid_loss']:.4g} (best grid point)")
    level = (f"at the file's level (the synthesizer's sound × {result['gain']:.4g})"
             if result["level"] == "match" else "at the synthesizer's own level")
    print(f"JTFS loss {', '.join(starts)} → {result['loss']:.4g} (from the {result['start']} "
          f"start; compared {level}); wrote {', '.join(str(p) for p in paths)}")
    return 0
