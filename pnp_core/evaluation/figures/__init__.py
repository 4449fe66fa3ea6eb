"""The paper's figures (docs/figures.md): each ``figure_*`` reads its input files and
writes a PDF and a PNG; each ``plot_*`` draws from data in memory. Shared look in
:mod:`pnp_core.evaluation.figures.style`."""

from pnp_core.evaluation.figures.cqt import figure_cqt
from pnp_core.evaluation.figures.curves import figure_curves
from pnp_core.evaluation.figures.damping import figure_damping
from pnp_core.evaluation.figures.errors import figure_errors
from pnp_core.evaluation.figures.spectra import figure_spectra
from pnp_core.evaluation.figures.table1 import figure_table1

__all__ = ["figure_spectra", "figure_curves", "figure_damping", "figure_errors", "figure_cqt",
           "figure_table1"]
