"""Forward vs forward + backward of our JTFS: what DDSP-JTFS training pays per step.

    python benchmarks/bench_jtfs_backward.py [--full] [--threads N] [--out results/benchmarks/jtfs_backward.csv]

Settings (FTM drum at 22050 Hz, θ drawn uniformly in the natural parameter domain, seed 0):

* ``laptop_ftm``: ``LAPTOP_FTM`` (N = 2^13, J = 8, Q = (12, 1), Q_fr = 1, F = 2, T = 'global'),
  batch 8 (config.yaml's DDSP batch sizes are 8–16);
* ``paper_ftm``: ``PAPER_FTM`` (N = 2^16, J = 13, same otherwise), batch 1 (with --full also 8).

float32 (the training dtype; --full adds float64). Three calls are timed on the same input
x = g(θ) (precomputed, the synthesizer is not part of the timing):

* ``fwd``: Φ(x) = log1p(JTFS(x)/ε) under ``torch.no_grad`` (what evaluation pays);
* ``fwd_grad``: the same with grad mode on and x.requires_grad (the training forward: it
  builds the graph);
* ``fwd_bwd``: ``Φ(x).sum().backward()``, the gradient with respect to the waveform.

Calls are interleaved (fwd, fwd_grad, fwd_bwd, fwd, …) after one untimed warm-up each, so a
neighbour's burst on a shared machine hits all three alike. ``*_s`` columns are the median
seconds per call, ``*_min_s`` the minimum; ``ratio_fwd_bwd_to_fwd`` = median(fwd_bwd) /
median(fwd) (issue 19's target: ≤ 3), ``ratio_bwd_to_fwd`` = (median(fwd_bwd) −
median(fwd_grad)) / median(fwd), the backward alone. ``peak_memory_mb`` is the resident
high-water mark (VmHWM) of the child minus its resident size after building the feature,
filters and input (so: the transient memory of forward + backward). Every case runs in a
fresh child process. ``load_1min`` is the 1-minute load average when the case finished.
The CSV is written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 3.0


def run_case(case: dict) -> dict:
    """Time fwd, fwd_grad and fwd_bwd of one (settings, batch, dtype); returns a CSV row."""
    import numpy as np
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    from pnp_core.features import jtfs as J
    from pnp_core.metric.jacobian import proc_status_kb
    from pnp_core.synth import get_synth

    dtype = getattr(torch, case["dtype"])
    settings = {"paper_ftm": J.PAPER_FTM, "laptop_ftm": J.LAPTOP_FTM}[case["settings"]]
    g = get_synth("ftm", sr=22050, n_samples=settings["n_samples"])
    rng = np.random.default_rng(0)
    lo, hi = g.space.to_natural(g.space.low), g.space.to_natural(g.space.high)
    theta = torch.tensor(g.space.from_natural(lo + rng.random((case["batch"], len(g.space))) * (hi - lo)),
                         dtype=dtype)
    f = J.JTFS(**settings)
    x = g(theta).detach()
    J._tensors(f.settings, f.plan, x.device, dtype)              # filters: not part of a call

    def fwd():
        with torch.no_grad():
            f(x)

    def fwd_grad():
        f(x.clone().requires_grad_(True))

    def fwd_bwd():
        xx = x.clone().requires_grad_(True)
        f(xx).sum().backward()

    calls = {"fwd": fwd, "fwd_grad": fwd_grad, "fwd_bwd": fwd_bwd}
    base_kb = proc_status_kb("VmRSS")
    for fn in calls.values():                                     # warm-up
        fn()
    times = {k: [] for k in calls}
    deadline = time.perf_counter() + case["budget_s"]
    for i in range(case["repeats"]):
        for k, fn in calls.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and i >= 2:
            break
    peak_kb = proc_status_kb("VmHWM")
    med = {k: statistics.median(v) for k, v in times.items()}
    return dict(settings=case["settings"], batch=case["batch"], dtype=case["dtype"],
                n_coefficients=f.n_coefficients,
                fwd_s=med["fwd"], fwd_grad_s=med["fwd_grad"], fwd_bwd_s=med["fwd_bwd"],
                fwd_min_s=min(times["fwd"]), fwd_grad_min_s=min(times["fwd_grad"]),
                fwd_bwd_min_s=min(times["fwd_bwd"]),
                fwd_s_per_sample=med["fwd"] / case["batch"],
                fwd_bwd_s_per_sample=med["fwd_bwd"] / case["batch"],
                ratio_fwd_bwd_to_fwd=med["fwd_bwd"] / med["fwd"],
                ratio_bwd_to_fwd=(med["fwd_bwd"] - med["fwd_grad"]) / med["fwd"],
                target_ratio=TARGET_RATIO,
                meets_target=bool(med["fwd_bwd"] / med["fwd"] <= TARGET_RATIO),
                peak_memory_mb=(peak_kb - base_kb) / 1024.0, n_timed=len(times["fwd"]),
                load_1min=os.getloadavg()[0], threads=torch.get_num_threads())


def cases(full: bool) -> list[dict]:
    out = [dict(settings="laptop_ftm", batch=8, dtype="float32", repeats=9, budget_s=40),
           dict(settings="paper_ftm", batch=1, dtype="float32", repeats=7, budget_s=60)]
    if full:
        out += [dict(settings="laptop_ftm", batch=1, dtype="float32", repeats=15, budget_s=40),
                dict(settings="paper_ftm", batch=8, dtype="float32", repeats=5, budget_s=120),
                dict(settings="laptop_ftm", batch=8, dtype="float64", repeats=7, budget_s=60),
                dict(settings="paper_ftm", batch=1, dtype="float64", repeats=5, budget_s=90)]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="also laptop batch 1, paper batch 8 and float64 (~10 min on 2 cores); "
                             "default: laptop batch 8 and paper batch 1, float32 (~1–2 min)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/jtfs_backward.csv"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return

    import pandas as pd

    sys.path.insert(0, str(REPO))
    from pnp_core.io import atomic_path

    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    rows = []
    for case in cases(args.full):
        case["threads"] = args.threads
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(case)],
                              capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"child {case} failed:\n{proc.stderr[-3000:]}")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{row['settings']:10s} B={row['batch']} {row['dtype']:7s} fwd {row['fwd_s']:.4f} s, "
              f"fwd+bwd {row['fwd_bwd_s']:.4f} s → ratio {row['ratio_fwd_bwd_to_fwd']:.2f} "
              f"(backward alone {row['ratio_bwd_to_fwd']:.2f}× fwd; target ≤ {TARGET_RATIO}), "
              f"{row['peak_memory_mb']:.0f} MB, load {row['load_1min']:.2f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
