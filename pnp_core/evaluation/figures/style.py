"""Shared look of the paper's figures: theme, method names and colours, saving, run names.

Every figure module draws with :func:`pyplot` (Agg backend, the seaborn theme applied
once) and writes with :func:`save_figure` (PDF and PNG, atomically). A method keeps
its colour and name in every figure (:data:`METHODS`).
"""

from __future__ import annotations

from pathlib import Path

from pnp_core.run_names import METHOD_LABELS, parse_run, run_label

#: run-name prefix (pnp_core.run_names) → (method name, colour)
METHODS = {prefix: (METHOD_LABELS[prefix], colour) for prefix, colour in (
    ("p", "tab:green"), ("ddsp-mss", "tab:orange"), ("ddsp-jtfs", "tab:blue"),
    ("pnp-jtfs", "tab:red"), ("pnp-mss", "tab:purple"))}
#: Table-1 order of the methods
METHOD_ORDER = [label for label, _ in METHODS.values()]
COLOURS = {label: colour for label, colour in METHODS.values()}

_THEMED = False


def pyplot():
    """matplotlib.pyplot on the Agg backend, with the project's seaborn theme."""
    global _THEMED
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not _THEMED:
        import seaborn as sns

        sns.set_theme(context="paper", style="whitegrid", font_scale=1.1,
                      rc={"figure.dpi": 100, "axes.titlesize": 10, "legend.fontsize": 8,
                          "legend.title_fontsize": 8})
        _THEMED = True
    return plt


def save_figure(fig, pdf, png, dpi: int = 150) -> None:
    """Write ``fig`` to ``pdf`` and ``png`` atomically, then close it."""
    import matplotlib.pyplot as plt

    from pnp_core.io import atomic_path

    for path, fmt in ((pdf, "pdf"), (png, "png")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    plt.close(fig)


def log_axis(ax, which: str = "y", plain: bool = False) -> None:
    """Log scale on ``which`` axis; a range under two decades (or ``plain``) gets
    plain-number tick labels (0.2, 0.3, …; 100, 200, 500 Hz) instead of 2×10⁻¹, 10²."""
    import matplotlib.ticker as mt

    axis = ax.yaxis if which == "y" else ax.xaxis
    (ax.set_yscale if which == "y" else ax.set_xscale)("log")
    lo, hi = (ax.get_ylim() if which == "y" else ax.get_xlim())
    if plain or (lo > 0 and hi / lo < 100):
        plain = mt.FuncFormatter(lambda v, _: f"{v:.4g}")
        axis.set_major_locator(mt.LogLocator(subs=(1.0, 2.0, 3.0, 5.0)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(mt.NullFormatter())


def colour(method: str, default: str = "tab:gray") -> str:
    return COLOURS.get(method, default)


def run_of_path(path) -> tuple[str, str]:
    """(synth, run) of a per-run file ``…/{synth}/{run}/<file>`` (results/runs, results/eval):
    the output paths are the interface between the rules."""
    p = Path(path)
    return p.parent.parent.name, p.parent.name


__all__ = ["METHODS", "METHOD_ORDER", "COLOURS", "pyplot", "save_figure", "log_axis", "parse_run",
           "run_label", "colour", "run_of_path"]
