"""Stage 3, the perceptual metric: Jacobians J = ∂Φ(g(h⁻¹(ν)))/∂ν and M = JᵀJ.

Takes a synth entry (synthesizer g, feature Φ, rescaling h) and the params table of
stage 1; gives one metric file per fold (``results/jacobian/{synth}/{fold}.parquet``:
id, M (P×P float64), eigenvalues), merged from shards, and its summaries.

* :mod:`~pnp_core.metric.jacobian`: batched forward-mode Jacobians, M, eigenvalues, shards;
* :mod:`~pnp_core.metric.file`: the metric file format, shard names, merge, re-expression of
  M in another rescaling;
* :mod:`~pnp_core.metric.summary`: per-fold statistics of M (conditioning, spectra).
"""
