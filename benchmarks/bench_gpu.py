"""The GPU check: the three costs a cluster user plans with, at the paper's settings, on CUDA.

    python benchmarks/bench_gpu.py [--device cuda] [--shard-size 1000] [--epoch-samples 25600]
        [--eval-sounds 256] [--parts jacobian train eval] [--batch B]
        [--out results/benchmarks/gpu.csv]

(``benchmarks/gpu.sh`` runs it after checking for a GPU.) The settings are those of
``config.yaml`` merged with ``workflow/presets/paper.yaml`` (FTM drum, 2^16 samples, JTFS
J = 13, EfficientNet-B0, paper batch sizes):

* ``jacobian``: M and eigenvalues of one train-fold shard (``jacobian.shard_size`` samples,
  the preset's 1000) through :func:`pnp_core.metric.jacobian.compute_shard`, as
  ``pnp jacobian`` computes it (float64, the preset's batch size);
* ``train``: one epoch per loss (P, PNP, DDSP-MSS, DDSP-JTFS): ``--epoch-samples`` / batch
  full training steps of ``benchmarks/bench_train_step.py`` (synthesis on the fly, CQT,
  encoder, loss, backward, Adam) at the loss's paper batch size;
* ``eval``: ``--eval-sounds`` test sounds as ``pnp evaluate`` treats them: g(θ), encoder
  forward in float64, g(θ̂), the JTFS and MSS distances and the audio metrics
  (:mod:`pnp_core.evaluation.audio_metrics`, on the CPU), in batches of the preset's
  ``evaluation.batch_size``.

Each row: part, loss, samples, batch, seconds, samples_per_second, peak_gpu_mib
(``torch.cuda.max_memory_allocated``, reset before each part; NaN on a CPU), device,
gpu_name. On a CPU it runs too (``--device cpu``, slowly: use small sizes), which is how
the script is tested where no GPU is lent.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_train_step import step_call  # noqa: E402  (same-folder benchmark)

from pnp_core.config import load_yaml, merge, synth_entry, validate_config  # noqa: E402
from pnp_core.io import write_csv  # noqa: E402
from pnp_core.spec import RunSpec  # noqa: E402
from pnp_core.synth.datasets import make_grid_dataset  # noqa: E402

LOSSES = ("p", "pnp", "ddsp_mss", "ddsp_jtfs")


def paper_config() -> dict:
    config = merge(load_yaml(ROOT / "config.yaml"), load_yaml(ROOT / "workflow/presets/paper.yaml"))
    return validate_config(config)


class Peak:
    """Wall time and peak GPU memory of a block (CUDA synchronised at both ends)."""

    def __init__(self, device: torch.device):
        self.device = device

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak_mib = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            self.peak_mib = float("nan")
        self.seconds = time.perf_counter() - self.t0


def bench_jacobian(spec, params, config, shard_size, device) -> dict:
    from pnp_core.metric.jacobian import compute_shard

    jac = config["jacobian"]
    with Peak(device) as peak:
        table = compute_shard(spec, params, "train", 0, shard_size, batch_size=jac["batch_size"],
                              device=device, progress=True)
    n = len(table.ids)
    return {"part": "jacobian", "loss": "", "samples": n, "batch": jac["batch_size"],
            "seconds": peak.seconds, "peak_gpu_mib": peak.peak_mib}


def bench_train(loss, config, epoch_samples, device, batch=None) -> dict:
    batch = int(batch or config["training"]["batch_size"][loss])
    steps = max(1, epoch_samples // batch)
    call = step_call("paper", loss, batch, device)
    call()  # warm-up (cuDNN autotuning, filter caches)
    with Peak(device) as peak:
        for _ in range(steps):
            call()
    return {"part": "train_epoch", "loss": loss, "samples": steps * batch, "batch": batch,
            "seconds": peak.seconds, "peak_gpu_mib": peak.peak_mib}


def bench_eval(spec, params, config, n_sounds, device, batch=None) -> dict:
    from pnp_core.evaluation.audio_metrics import audio_metrics
    from pnp_core.evaluation.evaluate import COMPUTE_DTYPE, mss_distance
    from pnp_core.training.encoders import Encoder, cqt_settings
    from pnp_core.training.losses import clamp_theta

    batch = int(batch or config["evaluation"]["batch_size"])
    synth, feature, space = spec.synth, spec.feature, spec.space
    scaler = spec.fit_scaler(params)
    test = params[params["fold"] == "test"].sort_values("id").head(n_sounds)
    theta = torch.as_tensor(test[space.names].to_numpy(np.float64), dtype=COMPUTE_DTYPE)
    torch.manual_seed(0)
    enc = config["training"]["encoder"]
    # an untrained encoder of the paper's shape: the cost of evaluation does not depend on
    # the weights
    model = Encoder(cqt_settings(spec.entry.get("cqt", {}), synth.sr), len(space),
                    scaler.kind, enc["type"], channels=list(enc["channels"]))
    model = model.to(device=device, dtype=COMPUTE_DTYPE).eval()
    with Peak(device) as peak, torch.no_grad():
        for start in range(0, len(theta), batch):
            th = theta[start:start + batch].to(device)
            x = synth(th)
            th_hat = clamp_theta(scaler.inverse(model(x)), space)
            x_hat = synth(th_hat)
            torch.linalg.vector_norm(feature(x_hat) - feature(x), dim=-1).cpu()
            mss_distance(x_hat, x)
            audio_metrics(x_hat.cpu().numpy(), x.cpu().numpy(), synth.sr)
    return {"part": "eval", "loss": "", "samples": len(theta), "batch": batch,
            "seconds": peak.seconds, "peak_gpu_mib": peak.peak_mib}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shard-size", type=int, default=None,
                    help="Jacobian shard size (default: the preset's jacobian.shard_size)")
    ap.add_argument("--epoch-samples", type=int, default=None,
                    help="samples per epoch (default: the preset's training.samples_per_epoch)")
    ap.add_argument("--eval-sounds", type=int, default=256)
    ap.add_argument("--batch", type=int, default=None,
                    help="one batch size for training and evaluation instead of the preset's "
                         "(to test the script on a CPU)")
    ap.add_argument("--parts", nargs="+", default=["jacobian", "train", "eval"],
                    choices=["jacobian", "train", "eval"])
    ap.add_argument("--losses", nargs="+", default=list(LOSSES), choices=LOSSES)
    ap.add_argument("--out", default="results/benchmarks/gpu.csv")
    args = ap.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu (and small sizes) to test")
    config = paper_config()
    spec = RunSpec.from_entry(synth_entry(config, "ftm"))
    params = make_grid_dataset(spec.space, spec.design)  # the paper's 100k θ: seconds
    shard = args.shard_size or int(config["jacobian"]["shard_size"])
    epoch = args.epoch_samples or int(config["training"]["samples_per_epoch"])
    rows = []
    if "jacobian" in args.parts:
        rows.append(bench_jacobian(spec, params, config, shard, device))
        print(rows[-1], flush=True)
    if "train" in args.parts:
        for loss in args.losses:
            rows.append(bench_train(loss, config, epoch, device, args.batch))
            print(rows[-1], flush=True)
    if "eval" in args.parts:
        rows.append(bench_eval(spec, params, config, args.eval_sounds, device, args.batch))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df["samples_per_second"] = df["samples"] / df["seconds"]
    df["device"] = str(device)
    df["gpu_name"] = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    write_csv(df, ROOT / args.out if not Path(args.out).is_absolute() else args.out)
    print(df.to_string(index=False))
    print(f"→ {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
