"""Speed and memory of the Jacobian / metric stage, against one JTFS forward.

    python benchmarks/bench_jacobian.py [--full] [--threads N] [--out results/benchmarks/jacobian.csv]

Settings (FTM drum, logminmax rescaling, float64 Jacobian as in config.yaml):

* ``laptop``: n_samples 8192 (sr 22050), JTFS J=8, Q=(12, 1), Q_fr=1, F=2, T='global';
  methods jvp and vmap, batch sizes 1 and 4.
* ``paper``: n_samples 65536, JTFS J=13, Q=(12, 1), Q_fr=1, F=2, T='global'; batch 1
  (and 2 for vmap with --full), one or two sounds per method (minutes on 2 CPU cores).
* ``laptop-amfm`` (with --full only): AM/FM n_samples 16384 (sr 8192), same JTFS as laptop.

Every (setting, method, batch size) runs in a **fresh child process**, so that caches and
the memory high-water mark of one case do not leak into the next. In the child:

1. warm-up: one Jacobian of one sound (filter caches, torch.func first-call state) and
   one JTFS forward; not timed;
2. the Jacobians of ``n`` sounds in batches (J, M = JᵀJ and eigenvalues, as the pipeline
   does), timed; the memory peak is measured around this loop;
3. the JTFS forward Φ(x) of the same sounds (x = g(θ) precomputed), one sound per call,
   in the Jacobian's dtype and in float32, and in batches of the Jacobian's batch size
   (median of 3 repeats).

``jac_seconds_per_sample`` is the median over batches of (batch seconds / batch size),
robust to a neighbour's burst on a shared machine; ``jac_seconds_per_sample_mean`` is
total seconds / sounds.

Memory: ``jac_peak_mem_mb`` is the transient memory of the Jacobian loop, the process's
resident high-water mark (VmHWM, reset through /proc/self/clear_refs just before the loop)
minus its resident size before the loop (the synth, the JTFS filters, the warm-up's
caches); on CUDA it is torch.cuda.max_memory_allocated minus the allocated memory before.
``peak_rss_mb`` is the child's absolute high-water mark (ru_maxrss) over its whole life.

Feature part: ``feature_jac_seconds_per_sample`` times ``feature.jacobian_columns(x, dx)`` alone
(one sound per call, best of 3), with the P synth tangents dx computed once beforehand by
``torch.func.jvp`` of the synth; ``feature_jac_ratio_to_fwd_b1`` divides it by the forward of
one sound in the same dtype (issue #8's target: ≤ 4 at paper settings, float64).

Interleaved (the most robust ratio on a shared machine): the whole Jacobian stage of one
sound (``computer.metric``: synth tangents, J, M = JᵀJ, eigenvalues) and one forward Φ(g(θ))
of the same sound (synth + JTFS, no grad) alternate for ``interleaved_rounds`` rounds (5);
``ratio_interleaved`` = median / median (issue #19's target: ≤ 4 at paper settings, float64).

Ratios: ``ratio_to_fwd_b1`` = Jacobian seconds per sample / seconds of one JTFS forward of
one sound in the same dtype (the target: ≤ 6); ``ratio_to_fwd_batched`` divides by the
per-sound forward time at the Jacobian's batch size instead (batching amortises per-call
overheads, which dominate at laptop size). The reference (kymatio PR #674 JTFS,
functorch.jacfwd) took ≈ 26.1 s per paper-setting drum on this kind of 2-core CPU
(measured for this project on a 2-core CPU, float32): ``speedup_vs_reference`` for the paper rows.

The machine may be shared: the 1-minute load average before and after each case is in
the CSV. The CSV is written atomically.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_PAPER_SECONDS = 26.1  # PR #674 + functorch.jacfwd per drum (2-core CPU, float32)
TARGET_RATIO = 6.0
#: issue #8: the feature part of the Jacobian (5 tangents) ≤ 4 JTFS forwards at paper settings
FEATURE_TARGET_RATIO = 4.0
#: issue #19: the whole Jacobian (synth tangents, J, M and its eigenvalues) ≤ 4 forwards of Φ∘g
INTERLEAVED_TARGET_RATIO = 4.0

JTFS_LAPTOP = dict(J=8, Q=[12, 1], Q_fr=1, F=2, T="global", include_s0=True, log_eps=1e-3)
JTFS_PAPER = dict(J=13, Q=[12, 1], Q_fr=1, F=2, T="global", include_s0=True, log_eps=1e-3)
SETTINGS = {
    "laptop": dict(synth="ftm", synth_settings=dict(sr=22050, n_samples=8192),
                   feature_settings=JTFS_LAPTOP),
    "paper": dict(synth="ftm", synth_settings=dict(sr=22050, n_samples=65536),
                  feature_settings=JTFS_PAPER),
    "laptop-amfm": dict(synth="amfm", synth_settings=dict(sr=8192, n_samples=16384),
                        feature_settings=JTFS_LAPTOP),
}


def cases(quick: bool) -> list[dict]:
    out = []
    for method in ("jvp", "vmap"):
        for batch in (1, 4):
            out.append(dict(setting="laptop", method=method, batch_size=batch,
                            n_sounds=4 if quick else 8))
    for method in ("jvp", "vmap"):
        out.append(dict(setting="paper", method=method, batch_size=1, n_sounds=1 if quick else 2))
    if not quick:
        out.append(dict(setting="paper", method="vmap", batch_size=2, n_sounds=2))
        for method in ("jvp", "vmap"):
            out.append(dict(setting="laptop-amfm", method=method, batch_size=4, n_sounds=8))
    return out


# ----------------------------------------------------------------------------------------------
# child


def _sounds(space, n: int):
    """n physical θ (n, P), float64: a fixed, spread-out draw from the stratified grid."""
    import numpy as np

    from pnp_core.synth.datasets import GridDesign, make_grid_dataset

    df = make_grid_dataset(space, GridDesign(bins=3, val_margin=1, n_test=0, seed=0))
    rows = np.random.default_rng(0).choice(len(df), size=n, replace=False)
    return df.iloc[np.sort(rows)][space.names].to_numpy(), df


def run_case(case: dict) -> dict:
    import numpy as np
    import torch

    from pnp_core.features import get_feature
    from pnp_core.metric.jacobian import JacobianComputer, PeakMemory, metric_from_jacobian
    from pnp_core.params import Scaler
    from pnp_core.synth import get_synth

    torch.set_num_threads(case["threads"])
    device = torch.device(case["device"])
    dtype = getattr(torch, case["dtype"])
    spec = SETTINGS[case["setting"]]
    synth = get_synth(spec["synth"], **spec["synth_settings"])
    feature = get_feature("jtfs", n_samples=synth.n_samples, **spec["feature_settings"])
    theta_np, df = _sounds(synth.space, case["n_sounds"])
    scaler = Scaler.fit(synth.space, "logminmax", df[synth.space.names].to_numpy())
    computer = JacobianComputer(synth, feature, scaler, method=case["method"], device=device,
                                dtype=dtype)
    theta = torch.as_tensor(theta_np, dtype=torch.float64)
    B, n = case["batch_size"], len(theta)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    load0 = os.getloadavg()[0]
    computer.metric(theta[:1])  # warm-up
    batch_seconds, jac_seconds = [], 0.0  # seconds per sample of each batch; total
    with PeakMemory(device) as mem:
        for s in range(0, n, B):
            t0 = time.perf_counter()
            J, M, eig = computer.metric(theta[s:s + B])
            sync()
            dt = time.perf_counter() - t0
            jac_seconds += dt
            batch_seconds.append(dt / len(theta[s:s + B]))

    x = synth(theta.to(device=device, dtype=dtype))
    x32 = x.float()

    def per_sound(xx, batch, repeat=3):
        """Median over repeats of (seconds for all n sounds in calls of ``batch``) / n."""
        feature(xx[:batch])  # warm-up (float32 filters are built on first use)
        runs = []
        for _ in range(repeat):
            sync()
            t = time.perf_counter()
            for s in range(0, n, batch):
                feature(xx[s:s + batch])
            sync()
            runs.append((time.perf_counter() - t) / n)
        return float(np.median(runs))

    with torch.no_grad():
        with PeakMemory(device) as fmem:
            fwd_b1 = per_sound(x, 1)
        fwd_b1_32 = per_sound(x32, 1)
        fwd_batched = per_sound(x, B)

    # the feature part alone: Feature.jacobian_columns(x, dx) for the P synth tangents,
    # dx from autodiff of the synth (torch.func.jvp), one sound per call
    th = theta.to(device=device, dtype=dtype)
    eye = torch.eye(len(synth.space), dtype=dtype, device=device)
    dx = torch.stack([torch.func.jvp(synth, (th,), (e.expand_as(th),))[1] for e in eye]).detach()
    xd = x.detach()
    feature.jacobian_columns(xd[:1], dx[:, :1])  # warm-up
    feat_runs = []
    for _ in range(3):
        sync()
        t = time.perf_counter()
        for s in range(n):
            feature.jacobian_columns(xd[s:s + 1], dx[:, s:s + 1])
        sync()
        feat_runs.append((time.perf_counter() - t) / n)
    feat_jac = float(min(feat_runs))

    # interleaved: Jacobian + metric of one sound, then one forward of Φ∘g of the same sound,
    # alternating, so that a neighbour's burst on a shared machine hits both alike (the
    # sequential numbers above can drift apart by ±20 % on a shared 2-core machine)
    inter = {"jac": [], "fwd": []}
    th1 = theta[:1]
    for _ in range(case.get("interleaved_rounds", 5)):
        sync()
        t = time.perf_counter()
        computer.metric(th1)
        sync()
        inter["jac"].append(time.perf_counter() - t)
        with torch.no_grad():
            t = time.perf_counter()
            feature(synth(th1.to(device=device, dtype=dtype)))
            sync()
            inter["fwd"].append(time.perf_counter() - t)
    inter_jac, inter_fwd = (float(np.median(v)) for v in (inter["jac"], inter["fwd"]))
    load1 = os.getloadavg()[0]

    import resource

    # median over batches: robust to a neighbour's burst on a shared machine
    per_sample = float(np.median(batch_seconds))
    return {
        "setting": case["setting"], "synth": spec["synth"],
        "n_samples": synth.n_samples, "feature": "jtfs",
        "feature_settings": json.dumps(spec["feature_settings"]),
        "K": int(feature.n_coefficients), "P": len(synth.space),
        "method": case["method"], "batch_size": B, "dtype": case["dtype"],
        "device": str(device), "threads": case["threads"], "n_sounds": n,
        "jac_seconds_total": round(jac_seconds, 4),
        "jac_seconds_per_sample": round(per_sample, 4),
        "jac_seconds_per_sample_mean": round(jac_seconds / n, 4),
        "jac_samples_per_second": round(1.0 / per_sample, 4),
        "jac_peak_mem_mb": None if mem.mb is None else round(mem.mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "fwd_seconds_b1": round(fwd_b1, 4),
        "fwd_seconds_b1_float32": round(fwd_b1_32, 4),
        "fwd_seconds_per_sample_batched": round(fwd_batched, 4),
        "fwd_peak_mem_mb": None if fmem.mb is None else round(fmem.mb, 1),
        "ratio_to_fwd_b1": round(per_sample / fwd_b1, 2),
        "ratio_to_fwd_b1_float32": round(per_sample / fwd_b1_32, 2),
        "ratio_to_fwd_batched": round(per_sample / fwd_batched, 2),
        "feature_jac_seconds_per_sample": round(feat_jac, 4),
        "feature_jac_ratio_to_fwd_b1": round(feat_jac / fwd_b1, 2),
        "feature_target_ratio": FEATURE_TARGET_RATIO,
        "interleaved_jac_seconds": round(inter_jac, 4),
        "interleaved_fwd_seconds": round(inter_fwd, 4),
        "ratio_interleaved": round(inter_jac / inter_fwd, 2),
        "interleaved_target_ratio": INTERLEAVED_TARGET_RATIO,
        "target_ratio": TARGET_RATIO,
        "meets_target": bool(per_sample / fwd_b1 <= TARGET_RATIO),
        "reference_seconds_per_sample": REFERENCE_PAPER_SECONDS if case["setting"] == "paper" else None,
        "speedup_vs_reference": (round(REFERENCE_PAPER_SECONDS / per_sample, 2)
                                 if case["setting"] == "paper" else None),
        "max_abs_eig": float(np.abs(eig.numpy()).max()),
        "load_avg_start": round(load0, 2), "load_avg_end": round(load1, 2),
    }


# ----------------------------------------------------------------------------------------------
# parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="every case and more sounds (tens of minutes on 2 cores); default: "
                             "the quick grid, a few minutes")
    parser.add_argument("--threads", default=None,
                        help="torch threads per child, or a comma list to run every case with "
                             "each (default: all cores)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    parser.add_argument("--only", default=None, help="run only this setting (laptop, paper, …)")
    parser.add_argument("--out", default="results/benchmarks/jacobian.csv")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        print("RESULT " + json.dumps(run_case(json.loads(args.child))), flush=True)
        return 0

    import pandas as pd
    import torch

    from pnp_core.config import resolve_device
    from pnp_core.io import atomic_path

    device = str(resolve_device(args.device))
    threads = [int(t) for t in str(args.threads).split(",")] if args.threads else \
        [os.cpu_count() or 1]
    rows = []
    todo = [{**c, "threads": t} for t in threads for c in cases(not args.full)
            if args.only in (None, c["setting"])]
    for i, case in enumerate(todo, 1):
        case = {**case, "device": device, "dtype": args.dtype}
        print(f"[{i}/{len(todo)}] {case['setting']} {case['method']} batch {case['batch_size']} "
              f"× {case['n_sounds']} sounds, {case['threads']} thread(s) …", flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)],
                              capture_output=True, text=True)
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"case {case} failed (exit {proc.returncode})")
        row = json.loads(line[0][len("RESULT "):])
        row.update(torch_version=torch.__version__, cpu=platform.processor() or platform.machine(),
                   timestamp=datetime.datetime.now().isoformat(timespec="seconds"))
        rows.append(row)
        print(f"    {row['jac_seconds_per_sample']:.3f} s/sample, "
              f"{row['jac_peak_mem_mb']} MB; JTFS forward {row['fwd_seconds_b1']:.3f} s "
              f"(float32 {row['fwd_seconds_b1_float32']:.3f} s, batched "
              f"{row['fwd_seconds_per_sample_batched']:.3f} s/sound) → ratio "
              f"{row['ratio_to_fwd_b1']} (batched {row['ratio_to_fwd_batched']}); feature part "
              f"{row['feature_jac_seconds_per_sample']:.3f} s = {row['feature_jac_ratio_to_fwd_b1']}× "
              f"forward; interleaved (one sound) {row['interleaved_jac_seconds']:.3f} s / Φ∘g "
              f"{row['interleaved_fwd_seconds']:.3f} s = {row['ratio_interleaved']}× (≤ "
              f"{INTERLEAVED_TARGET_RATIO:g}); "
              f"load {row['load_avg_start']}→{row['load_avg_end']}", flush=True)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    print(f"→ {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
