"""Stage 4, training: an encoder f_W fitted with one loss (P, PNP, DDSP-MSS, DDSP-JTFS).

Takes the params table, the train/val features (encoder input), the metric files of
stage 3 (PNP) and a run's settings; gives ``results/runs/{synth}/{run}/model.pt`` and
``history.parquet`` (resumable through ``checkpoint/``).

* :mod:`~pnp_core.training.losses`: the losses, on θ̂ and θ (and M);
* :mod:`~pnp_core.training.damping`: the Levenberg–Marquardt schedules of λ;
* :mod:`~pnp_core.training.encoders`: CQT front end, EfficientNet-B0 and the small CPU encoder;
* :mod:`~pnp_core.training.train`: the loop, checkpoints, history.
"""
