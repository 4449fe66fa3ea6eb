"""Beside the pipeline, per-sound matching: θ̂ found for one sound, no training.

Takes a synth entry and target sounds (test-fold ids or a user's WAV file, optionally a
trained encoder's prediction as the start); gives matched parameters, their sounds,
the DTFA experiment's table and figures.

* :mod:`~pnp_core.matching.matchers`: gradient descent (Adam) and Levenberg–Marquardt on a
  feature distance, multi-start, projected to the box;
* :mod:`~pnp_core.matching.dtfa`: the differentiable time–frequency analysis experiment
  (success rates of the matchers on pairs of sounds);
* :mod:`~pnp_core.matching.dtfa_figures`: its figures;
* :mod:`~pnp_core.matching.match_audio`: ``pnp match`` on a user's WAV file.
"""
