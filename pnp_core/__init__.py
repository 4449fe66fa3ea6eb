"""pnp_core: perceptual–neural–physical (PNP) sound matching library.

Synthesizers (:mod:`pnp_core.synth`), parameter spaces and datasets
(:mod:`pnp_core.params`, :mod:`pnp_core.synth.datasets`), auditory features
(:mod:`pnp_core.features`), and Jacobian/metric computation
(:mod:`pnp_core.metric.jacobian`). The library never imports Snakemake; the workflow
calls it through the ``pnp`` command line (:mod:`pnp_core.cli`).
"""

__version__ = "0.1.0"
