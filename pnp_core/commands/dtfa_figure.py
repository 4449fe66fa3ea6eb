"""DTFA figures: ``landscape`` (MSS and JTFS over a 2-D slice of ν around the dataset
sound nearest the box centre, with Adam paths from a few inits on the slice),
``timeshift`` (loss of the target against its delayed copy, 0 … max ms) and
``convergence`` (median/IQR of the normalised parameter error per iteration, from
match-grid traces). Each writes a PDF and a PNG."""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads
from pnp_core.commands.match_grid import add_override_argument

HELP = "DTFA figures: loss landscape, time-shift sensitivity, convergence (PDF + PNG)"


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="<kind>")
    land = sub.add_parser("landscape", help="loss landscapes with gradient-descent paths")
    shift = sub.add_parser("timeshift", help="loss against a time shift of the target")
    conv = sub.add_parser("convergence", help="convergence curves from match-grid traces")
    for p in (land, shift):
        add_entry_argument(p)
        add_override_argument(p)
        p.add_argument("--params", required=True, help="params.parquet (the target is its "
                       "row nearest the box centre)")
        p.add_argument("--losses", nargs="+", default=["mss", "jtfs"], choices=["mss", "jtfs"])
        add_threads_argument(p)
    land.add_argument("--axes", nargs=2, default=None,
                      help="the two parameters of the slice (default: the last two)")
    land.add_argument("--points", type=int, default=15, help="grid points per axis (odd)")
    land.add_argument("--paths", type=int, default=4, help="Adam paths drawn per panel")
    land.add_argument("--steps", type=int, default=60)
    land.add_argument("--lr", type=float, default=0.05)
    land.add_argument("--seed", type=int, default=0, help="seed of the paths' starting points")
    shift.add_argument("--max-ms", type=float, default=300.0)
    shift.add_argument("--points", type=int, default=31)
    conv.add_argument("traces", nargs="+", help="match-grid traces (.parquet)")
    for p in (land, shift, conv):
        p.add_argument("--pdf", required=True)
        p.add_argument("--png", required=True)


def run(args) -> int:
    import numpy as np
    import torch

    from pnp_core.matching import dtfa, dtfa_figures

    apply_threads(args)
    if args.kind == "convergence":
        import pandas as pd

        from pnp_core.io import read_table

        tables = [read_table(p, dtfa.TRACES_FORMAT, what="DTFA traces") for p in args.traces]
        traces = pd.concat([t.data for t in tables], ignore_index=True)
        dtfa_figures.plot_convergence(traces, float(tables[0].meta["tolerance"]),
                                      args.pdf, args.png)
    else:
        spec = dtfa.spec_with_override(args.entry, args.override)
        params = spec.read_params(args.params)
        target = dtfa.central_target(spec, params)
        if args.kind == "timeshift":
            shifts = np.linspace(0.0, args.max_ms / 1000.0, args.points)
            curves = {loss: dtfa.time_shift_curve(spec, target, shifts, loss)
                      for loss in args.losses}
            dtfa_figures.plot_time_shift(shifts, curves, args.pdf, args.png)
            for loss, c in curves.items():
                print(f"{loss}: relative loss at {args.max_ms:g} ms = {c[-1]:.3f}")
        else:
            names = spec.space.names
            axes = args.axes or names[-2:]
            cols = tuple(names.index(a) if a in names else _bad_axis(a, names) for a in axes)
            rng = np.random.default_rng(args.seed)
            scaler = dtfa.box_scaler(spec.space)
            nu_t = scaler.forward(torch.as_tensor(target)[None]).numpy()
            nu0 = np.repeat(nu_t, args.paths, axis=0)
            nu0[:, cols] = rng.uniform(-0.9, 0.9, (args.paths, 2))
            inits = scaler.inverse(torch.as_tensor(nu0)).numpy()
            panels = []
            for loss in args.losses:
                ga, gb, vals = dtfa.landscape(spec, target, loss, cols, n=args.points)
                paths = dtfa.slice_paths(spec, target, inits, loss, cols, steps=args.steps,
                                         lr=args.lr)
                panels.append({"loss": loss, "grid_a": ga, "grid_b": gb, "values": vals,
                               "paths": paths})
            dtfa_figures.plot_landscapes(panels, spec.space, cols, target, args.pdf, args.png)
    print(f"{args.kind} → {args.pdf}, {args.png}")
    return 0


def _bad_axis(name, names):
    from pnp_core.errors import ConfigError

    raise ConfigError(f"--axes: unknown parameter {name!r}; choose among {names}")
