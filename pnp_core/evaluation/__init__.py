"""Stage 5, evaluation and what people look at: metrics, tables, figures, sounds.

Takes the trained runs of stage 4 and the test fold (params, features, metric files);
gives ``results/eval/{synth}/{run}/metrics.parquet`` and ``predictions.parquet`` per run,
then Table 1 and the ablation tables (``results/table1.csv``, ``results/tables/``), the
paper's figures (``results/figures/``), listening WAVs and a MUSHRA bundle
(``results/listen/``) and the report's pages.

* :mod:`~pnp_core.evaluation.evaluate`: per-sample metrics of one run on the test fold;
* :mod:`~pnp_core.evaluation.tables`, :mod:`~pnp_core.evaluation.stats`: aggregation,
  paired tests;
* :mod:`~pnp_core.evaluation.figures`: the paper's figures;
* :mod:`~pnp_core.evaluation.listen`: target and matched sounds as WAV files;
* :mod:`~pnp_core.evaluation.report_pages`: pages of ``snakemake --report``;
* :mod:`~pnp_core.evaluation.diagnose`: why PNP does (not) beat P-loss, measured on the trained
  runs: quadratic-model validity, ranking, damping per epoch.
"""
