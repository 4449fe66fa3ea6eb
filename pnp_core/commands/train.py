"""Train one encoder run (loss × ablation values × seed) and write model.pt + history.parquet.

The run's settings come from one row of the run grid (``--run`` JSON: loss, rescaling,
optimizer, clip, damping, damping_matrix, epochs, seed) and the config's ``training``
section (``--training`` JSON). Checkpoints go to ``<out-dir>/checkpoint/`` (last.pt every
epoch, best.pt); a restarted job with the same settings resumes from last.pt. Outputs:
``<out-dir>/model.pt`` (best weights by validation loss) and ``<out-dir>/history.parquet``
(one row per epoch). See pnp_core.training.train and docs/training.md.
"""

from __future__ import annotations

import json

from pnp_core.commands import (add_device_argument, add_entry_argument, add_threads_argument,
                               apply_threads, spec_from_args)

HELP = "train one encoder run and write model.pt and history.parquet (resumable)"


def add_arguments(parser) -> None:
    add_entry_argument(parser)
    parser.add_argument("--params", required=True, help="params.parquet of the synthesizer")
    parser.add_argument("--run", type=json.loads, required=True,
                        help="the run row as JSON (loss, rescaling, optimizer, clip, damping, "
                             "damping_matrix, epochs, seed)")
    parser.add_argument("--training", type=json.loads, required=True,
                        help="the config's `training` section as JSON (validated)")
    parser.add_argument("--metric-train", default=None, help="merged train-fold metric (PNP)")
    parser.add_argument("--metric-val", default=None, help="merged val-fold metric (PNP)")
    parser.add_argument("--init-model", default=None,
                        help="model.pt to start from (fine-tuning after pretraining)")
    add_device_argument(parser)
    add_threads_argument(parser)
    parser.add_argument("--stop-after-epoch", type=int, default=None,
                        help="stop after this epoch's checkpoint, writing no final outputs "
                             "(simulates an interrupted job)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    parser.add_argument("--out-dir", required=True, help="the run folder (results/runs/…)")


def run(args) -> int:
    from pnp_core.config import resolve_device
    from pnp_core.training.train import Run, train_run

    apply_threads(args)
    spec = spec_from_args(args)
    metrics = {k: v for k, v in (("train", args.metric_train), ("val", args.metric_val)) if v}
    run_obj = Run(spec, spec.read_params(args.params), args.run, args.training, metrics,
                  device=resolve_device(args.device))
    history = train_run(run_obj, args.out_dir, init_model=args.init_model,
                        stop_after_epoch=args.stop_after_epoch, progress=not args.no_progress)
    if history is None:
        print(f"stopped after epoch {args.stop_after_epoch}; checkpoint in {args.out_dir}/checkpoint")
        return 0
    last = history.iloc[-1]
    print(f"{spec.name} {args.run.get('name', run_obj.run['loss'])}: {len(history)} epochs, "
          f"val loss {last['val_loss']:.4g} (P-loss {last['val_ploss']:.4g}), "
          f"{history['seconds'].sum():.1f} s → {args.out_dir}")
    return 0
