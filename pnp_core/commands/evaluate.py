"""Evaluate one trained run on every sample of the test fold and write per-sample metrics
(JTFS distance, micro weight √(σ₁σ₂), auraloss MSS distance, parameter errors, the run's
own test loss, diag M) and predictions (θ, θ̂ in physical units). See pnp_core.evaluation.evaluate
and docs/evaluation.md.
"""

from __future__ import annotations

import json

from pnp_core.commands import (add_device_argument, add_entry_argument, add_threads_argument,
                               apply_threads, spec_from_args)

HELP = "evaluate a trained run on the test fold (metrics.parquet, predictions.parquet)"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--model", required=True, help="the run's model.pt")
    parser.add_argument("--features", required=True,
                        help="Φ(g(θ)) of the test fold (results/features/{synth}/test.pt)")
    parser.add_argument("--metric", default=None,
                        help="merged test-fold metric of the synth's feature (micro weight, "
                             "diag M); without it those columns are NaN")
    parser.add_argument("--loss-metric", default=None,
                        help="test-fold metric of a PNP run's objective (default: --metric)")
    parser.add_argument("--training", type=json.loads, default=None,
                        help="the config's `training` section as JSON (DDSP-MSS runs: its mss "
                             "settings)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="samples per forward pass (changes no value)")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--metrics-out", required=True, help="output metrics.parquet")
    parser.add_argument("--predictions-out", required=True, help="output predictions.parquet")


def run(args) -> int:
    from pathlib import Path

    from pnp_core.config import resolve_device
    from pnp_core.evaluation.evaluate import EvalInputs, evaluate_run, write_evaluation
    from pnp_core.evaluation.tables import micro_mean

    apply_threads(args)
    spec = spec_from_args(args)
    inputs = EvalInputs(model=Path(args.model), features=Path(args.features),
                        metric=Path(args.metric) if args.metric else None,
                        loss_metric=Path(args.loss_metric) if args.loss_metric else None)
    metrics, preds, meta = evaluate_run(
        spec, spec.read_params(args.params), inputs, args.training, batch_size=args.batch_size,
        device=resolve_device(args.device), progress=not args.no_progress,
        desc=f"{spec.name}/{meta_name(args.model)} evaluate")
    write_evaluation(metrics, preds, meta, args.metrics_out, args.predictions_out)
    print(f"{spec.name} {meta['run'].get('name') or meta['loss']}: {len(metrics)} test samples, "
          f"JTFS {metrics['jtfs_dist'].mean():.4g} (micro "
          f"{micro_mean(metrics['jtfs_dist'], metrics['micro_weight']):.4g}), "
          f"MSS {metrics['mss_dist'].mean():.4g}, param err {metrics['param_err'].mean():.4g}, "
          f"test loss {metrics['test_loss'].mean():.4g}, {meta['n_clamped']} θ̂ clamped "
          f"→ {args.metrics_out}")
    return 0


def meta_name(model_path: str) -> str:
    """The run folder's name (results/runs/{synth}/{run}/model.pt → run), for progress lines."""
    from pathlib import Path

    return Path(model_path).parent.name
