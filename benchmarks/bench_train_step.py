"""Seconds per training step for P, PNP, DDSP-MSS and DDSP-JTFS (same encoder, same batch).

    python benchmarks/bench_train_step.py [--settings laptop paper] [--batch-laptop 8]
        [--batch-paper 2] [--repeats 5] [--threads 1] [--device cpu]
        [--out results/benchmarks/train_step.csv]

One training step, as ``pnp_core.training.train`` runs it without the input cache: synthesise the
batch's target sounds x = g(θ) on the fly, the encoder's CQT input, encoder forward, the loss,
backward (through the synthesizer and Φ for DDSP), optimizer step (Adam). PNP uses a
(B, P, P) float64 M batch (values do not change the cost); DDSP-JTFS computes the target's
Φ(x) without gradient and Φ(g(h⁻¹(ν̂))) with it.

Settings (FTM drum, logminmax):

* ``laptop``: config.yaml (n_samples 8192, JTFS J=8, Q=(12,1); small CNN; CQT 7 octaves);
* ``paper``: the paper preset (n_samples 65536, JTFS J=13, Q=(12,1); EfficientNet-B0;
  CQT 10 octaves from 8.6 Hz). The batch is small on CPU (``--batch-paper``): DDSP-JTFS at
  the paper's batch 64 would take many minutes per step here; the cost of every loss is
  close to linear in the batch, so the ratios carry over.

Two modes (``mode`` column):

* ``step``: the whole training step above;
* ``loss_only``: the loss alone, no CQT and no encoder: ν̂ is a leaf tensor (the batch's ν
  plus a fixed perturbation) and one call is the loss (synthesis and Φ of g(h⁻¹(ν̂)) for DDSP)
  and its backward to ν̂. On a CPU the CQT and EfficientNet dominate the full step, so the
  ratio DDSP-JTFS / PNP of the full step understates what the loss itself costs; this mode
  gives that ratio.

The time is the median of ``--repeats`` calls after one warm-up call (DDSP-JTFS at the
paper setting: ``max(1, repeats // 3)``). Columns: setting, mode, loss, encoder, batch,
n_samples, seconds_per_step, ratio_to_p, ratio_to_pnp (within the same setting and mode),
overhead_vs_p_s (seconds the loss adds to the P-loss call), repeats, threads, device.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pnp_core.training.encoders import Encoder, cqt_settings
from pnp_core.features import get_feature
from pnp_core.io import atomic_path
from pnp_core.training.losses import ddsp_loss, p_loss, pnp_loss
from pnp_core.params import Scaler
from pnp_core.synth import get_synth

SETTINGS = {
    "laptop": {"n_samples": 8192, "J": 8, "encoder": "small_cnn", "octaves": 7},
    "paper": {"n_samples": 65536, "J": 13, "encoder": "efficientnet_b0", "octaves": 10},
}
MSS_FFTS = (2048, 1024, 512, 256, 128, 64)


def _median_seconds(call, n: int, device: torch.device) -> float:
    """Median wall time of ``n`` calls after one untimed warm-up call (filter caches, allocator)."""
    def timed():
        t0 = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0
    timed()
    return statistics.median(timed() for _ in range(n))


class Case:
    """The fixed batch of one setting: synthesizer, features, θ, ν, a PSD M, targets."""

    def __init__(self, setting: str, batch: int, device: torch.device):
        s = SETTINGS[setting]
        self.setting, self.batch, self.device, self.settings = setting, batch, device, s
        self.synth = synth = get_synth("ftm", sr=22050, n_samples=s["n_samples"], modes=10)
        space = synth.space
        self.jtfs = get_feature("jtfs", n_samples=s["n_samples"], J=s["J"], Q=(12, 1), Q_fr=1,
                                F=2, T="global")
        self.mss = get_feature("mss", n_samples=s["n_samples"], n_ffts=MSS_FFTS)
        lo, hi = space.to_natural(space.low), space.to_natural(space.high)
        rng = np.random.default_rng(0)
        theta_np = space.from_natural(lo + rng.uniform(0.1, 0.9, size=(batch, len(space)))
                                      * (hi - lo))
        self.scaler = Scaler.fit(space, "logminmax", np.stack([space.low, space.high]))
        self.theta = torch.as_tensor(theta_np, dtype=torch.float32, device=device)
        self.nu = self.scaler.forward(self.theta.double()).float()
        A = torch.randn(batch, len(space), len(space), dtype=torch.float64, device=device)
        self.M = A @ A.transpose(1, 2)
        self.cqt = cqt_settings({"octaves": s["octaves"]}, synth.sr)
        self.x_target = synth(self.theta).detach()
        with torch.no_grad():
            self.jtfs_target = self.jtfs(self.x_target)

    def loss_value(self, loss, nu_hat, x, target_jtfs):
        if loss == "p":
            return p_loss(nu_hat, self.nu)
        if loss == "pnp":
            return pnp_loss(nu_hat, self.nu, self.M, lam=1e-3)
        if loss == "ddsp_mss":
            return ddsp_loss(nu_hat, x, self.synth, self.scaler, self.mss)
        return ddsp_loss(nu_hat, x, self.synth, self.scaler, self.jtfs, target_jtfs)

    def step_call(self, loss: str):
        """One full training step of ``loss`` (a fresh encoder and Adam), as a callable."""
        torch.manual_seed(0)
        model = Encoder(self.cqt, len(self.synth.space), "logminmax", self.settings["encoder"],
                        spectral=loss.startswith("ddsp")).to(self.device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def call():
            x = self.synth(self.theta)
            with torch.no_grad():
                inputs = model.features(x)
                target = self.jtfs(x) if loss == "ddsp_jtfs" else None
            value = self.loss_value(loss, model.from_features(inputs), x, target)
            opt.zero_grad(set_to_none=True)
            value.backward()
            opt.step()
        return call

    def loss_only_call(self, loss: str):
        """The loss alone and its backward to a leaf ν̂ (ν + a fixed perturbation)."""
        nu_leaf = (self.nu + 0.05 * torch.randn(self.nu.shape,
                                                generator=torch.Generator().manual_seed(1))
                   .to(self.device)).clamp(0, 1).requires_grad_(True)

        def call():
            nu_leaf.grad = None
            self.loss_value(loss, nu_leaf, self.x_target, self.jtfs_target).backward()
        return call


def step_call(setting: str, loss: str, batch: int, device: torch.device):
    """One full training step of ``loss`` at ``setting`` and ``batch`` (for bench_gpu.py)."""
    return Case(setting, batch, device).step_call(loss)


def bench(setting: str, batch: int, repeats: int, device: torch.device,
          modes=("step", "loss_only")) -> list[dict]:
    case = Case(setting, batch, device)
    s = case.settings
    rows = []
    for mode in modes:
        for loss in ("p", "pnp", "ddsp_mss", "ddsp_jtfs"):
            call = case.step_call(loss) if mode == "step" else case.loss_only_call(loss)
            n = max(1, repeats // 3) if (setting == "paper" and loss == "ddsp_jtfs") else repeats
            sec = _median_seconds(call, n, device)
            print(f"{setting:>6} {mode:>9} {loss:>9}: {sec:.4g} s (batch {batch}, {n} repeats)",
                  flush=True)
            rows.append({"setting": setting, "mode": mode, "loss": loss,
                         "encoder": s["encoder"] if mode == "step" else "none", "batch": batch,
                         "n_samples": s["n_samples"], "seconds_per_step": sec, "repeats": n})
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=["laptop", "paper"], choices=list(SETTINGS))
    ap.add_argument("--batch-laptop", type=int, default=8)
    ap.add_argument("--batch-paper", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="results/benchmarks/train_step.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    for setting in args.settings:
        batch = args.batch_laptop if setting == "laptop" else args.batch_paper
        rows += bench(setting, batch, args.repeats, device)
    df = pd.DataFrame(rows)
    for _, grp in df.groupby(["setting", "mode"]):
        p = grp.loc[grp["loss"] == "p", "seconds_per_step"].iloc[0]
        pnp = grp.loc[grp["loss"] == "pnp", "seconds_per_step"].iloc[0]
        df.loc[grp.index, "ratio_to_p"] = grp["seconds_per_step"] / p
        df.loc[grp.index, "ratio_to_pnp"] = grp["seconds_per_step"] / pnp
        # what the loss adds on top of the shared part (synthesis of x, CQT, encoder, Adam)
        df.loc[grp.index, "overhead_vs_p_s"] = grp["seconds_per_step"] - p
    df["threads"], df["device"] = args.threads, str(device)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
    print(df.to_string(index=False))
    print(f"→ {out}")


if __name__ == "__main__":
    main()
