"""The paper's figures, each a PDF and a PNG of the same drawing (docs/figures.md):

  spectra   eigenvalue spectra of M across a fold (metric summaries)
  curves    validation loss and P-loss per epoch per method (training histories)
  damping   λ per epoch of PNP runs (training histories)
  errors    per-parameter squared error vs M_pp, log–log (evaluation metrics)
  cqt       target vs matched CQTs of a few test sounds (evaluation predictions)
  table1    Table 1 as bar charts with error bars (results/table1.csv)

Per-run inputs must sit at …/{synth}/{run}/<file>: the synth and run (method, seed) are
read from the path."""

from __future__ import annotations

from pnp_core.commands import add_entry_argument, add_threads_argument, apply_threads

HELP = "the paper's figures: spectra, curves, damping, errors, cqt, table1 (PDF + PNG)"

KINDS = {
    "spectra": ("eigenvalue spectra of M", "metric summaries ({fold}.summary.parquet)"),
    "curves": ("learning curves per method", "training histories (history.parquet)"),
    "damping": ("λ per epoch of PNP runs", "training histories of PNP runs"),
    "errors": ("squared error vs M_pp per parameter", "evaluation metrics (metrics.parquet)"),
    "cqt": ("target vs matched CQTs", "evaluation predictions (predictions.parquet)"),
    "table1": ("Table 1 as bar charts", "results/table1.csv"),
}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="kind", required=True, metavar="<kind>")
    for kind, (help_, inputs) in KINDS.items():
        p = sub.add_parser(kind, help=help_)
        if kind == "table1":
            p.add_argument("inputs", nargs=1, metavar="TABLE1_CSV", help=inputs)
        else:
            p.add_argument("inputs", nargs="+", metavar="FILE", help=inputs)
        if kind == "cqt":
            add_entry_argument(p)
            p.add_argument("--sounds", type=int, default=3, help="test sounds drawn (rows)")
            add_threads_argument(p)
        p.add_argument("--pdf", required=True)
        p.add_argument("--png", required=True)


def run(args) -> int:
    from pnp_core.evaluation import figures

    if args.kind == "cqt":
        from pnp_core.commands import spec_from_args

        apply_threads(args)
        ids = figures.figure_cqt(spec_from_args(args), args.inputs, args.sounds, args.pdf,
                                 args.png)
        print(f"test ids drawn: {ids}")
    elif args.kind == "table1":
        figures.figure_table1(args.inputs[0], args.pdf, args.png)
    else:
        draw = {"spectra": figures.figure_spectra, "curves": figures.figure_curves,
                "damping": figures.figure_damping, "errors": figures.figure_errors}[args.kind]
        draw(args.inputs, args.pdf, args.png)
    print(f"{args.kind} → {args.pdf}, {args.png}")
    return 0
