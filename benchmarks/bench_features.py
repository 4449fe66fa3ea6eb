"""Speed and memory of our JTFS (forward and Jacobians) against kymatio 0.3.0's Scattering1D.

    python benchmarks/bench_features.py [--full] [--threads N] [--out results/benchmarks/features.csv]

Settings (FTM drum at 22050 Hz, θ drawn uniformly in the natural parameter domain, seed 0):

* ``paper_ftm``: ``PAPER_FTM`` (N = 2^16, J = 13, Q = (12, 1), J_fr default, Q_fr = 1, F = 2,
  T = 'global', zero padding, max_pad_factor 1, S0 included, log1p(S/1e-3));
* ``laptop_ftm``: ``LAPTOP_FTM`` (N = 2^13, J = 8, otherwise the same).

Implementations (``impl`` column), batch sizes 1 and 8:

* ``jtfs_forward``: Φ(x) = log1p(JTFS(x)/ε), x = g(θ) precomputed, under ``torch.no_grad``;
* ``jtfs_jacobian_jvp_loop``: ∂Φ(g(θ))/∂θ (θ physical, 5 parameters) as 5 ``torch.func.jvp``
  calls, each with the tangent e_p for every sound of the batch;
* ``jtfs_jacobian_jacfwd``: the same Jacobian with the 5 tangents vmapped: literally
  ``torch.func.jacfwd`` at batch 1; at batch 8 ``vmap`` of ``jvp`` over the 5 batch-shared
  tangents (what jacfwd does per sound; jacfwd of the whole batch would push 8 × 5 tangents
  through cross-sample blocks that are zero);
* ``jtfs_feature_jacobian``: ∂Φ(x)·ẋ_p only (the 5 synth tangents ẋ_p given, from
  ``torch.func.jvp`` of the synth), through ``JTFS.jacobian_columns`` (the hook the Jacobian
  stage calls; shares the forward's intermediates);
* ``jtfs_forward_backward``: ``Φ(x).sum().backward()`` with x.requires_grad (what DDSP-JTFS
  training pays per step: the gradient with respect to the waveform);
  ``benchmarks/bench_jtfs_backward.py`` times it interleaved with the forward, with ratios;
* ``kymatio030_scattering1d``: ``ScatteringTorch1D(J, shape=N, Q)`` of kymatio 0.3.0 (time
  scattering only, its own 'array' output) on the same x, under ``torch.no_grad``.

``seconds_per_sample`` is the best (minimum) of several timed calls divided by the batch size
(the machine is shared; the minimum is the least disturbed), after one untimed warm-up call;
``seconds_per_sample_median`` is the median. ``peak_memory_mb`` is the peak RSS delta of the
call: every row runs in a **fresh child process** that builds the feature, its filters and the
inputs, reads its resident size (VmRSS), runs the warm-up and the timed calls, and reports the
resident high-water mark (VmHWM, i.e. ``ru_maxrss``) minus that base. So it is the transient
memory of one call (the warm-up has the same peak as the timed calls), not the filters or the
interpreter. ``n_coefficients`` is K of the feature (Scattering1D: its output size).
``load_1min`` is the 1-minute load average when the row finished and ``threads`` torch's
intra-op thread count. On a shared 2-core machine whose load exceeds 2, every parallel op
waits for a descheduled worker thread and 2-thread timings become erratic (10× and more
for code made of many small ops: kymatio's Scattering1D took 20 s instead of 0.34 s per
drum that way); ``--threads 1`` gives stable numbers then.

The script also prints the ratios the issues set targets for (JTFS forward ≤ 2× Scattering1D
per sample, Jacobian ≤ 6× JTFS forward, peak memory ≤ 2 GB at batch 8, forward + backward ≤ 3×
forward) and, with --full,
the ε calibration (median of S on 64 drums, see ``pnp_core.features.jtfs``), written to
``results/benchmarks/jtfs_eps_calibration.csv``. All CSVs are written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLUMNS = ["impl", "settings", "batch", "dtype", "seconds_per_sample", "peak_memory_mb",
           "n_coefficients", "seconds_per_sample_median", "n_timed", "load_1min", "threads"]


# ---------------------------------------------------------------------------
# child: one measurement
# ---------------------------------------------------------------------------

def _thetas(space, batch: int, dtype):
    import numpy as np
    import torch

    rng = np.random.default_rng(0)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    return torch.tensor(space.from_natural(lo + rng.random((batch, len(space))) * (hi - lo)), dtype=dtype)


def run_case(case: dict) -> dict:
    """Measure one (impl, settings, batch, dtype) in this process; returns a CSV row."""
    import torch

    if case.get("threads"):
        torch.set_num_threads(case["threads"])
    from pnp_core.features import jtfs as J
    from pnp_core.metric.jacobian import proc_status_kb
    from pnp_core.synth import get_synth

    dtype = {"float32": torch.float32, "float64": torch.float64}[case["dtype"]]
    settings = {"paper_ftm": J.PAPER_FTM, "laptop_ftm": J.LAPTOP_FTM}[case["settings"]]
    n = settings["n_samples"]
    g = get_synth("ftm", sr=22050, n_samples=n)
    theta = _thetas(g.space, case["batch"], dtype)
    x = g(theta)
    impl = case["impl"]

    if impl == "kymatio030_scattering1d":
        import warnings
        warnings.simplefilter("ignore")
        from kymatio.scattering1d.frontend.torch_frontend import ScatteringTorch1D

        scat = ScatteringTorch1D(J=settings["J"], shape=n, Q=tuple(settings["Q"]))
        n_coef = int(scat.output_size()) * (n // 2 ** settings["J"])

        def call():
            with torch.no_grad():
                scat(x)
    else:
        f = J.JTFS(**settings)
        n_coef = f.n_coefficients
        J._tensors(f.settings, f.plan, x.device, dtype)          # filters: not part of the call
        basis = torch.eye(5, dtype=dtype)[:, None, :].expand(5, case["batch"], 5).contiguous()
        F = lambda th: f(g(th))                                   # noqa: E731

        if impl == "jtfs_forward":
            def call():
                with torch.no_grad():
                    f(x)
        elif impl == "jtfs_forward_backward":
            def call():
                xx = x.detach().clone().requires_grad_(True)
                f(xx).sum().backward()
        elif impl == "jtfs_jacobian_jvp_loop":
            def call():
                torch.stack([torch.func.jvp(F, (theta,), (v,))[1] for v in basis], dim=-1)
        elif impl == "jtfs_jacobian_jacfwd":
            if case["batch"] == 1:
                def call():
                    torch.func.jacfwd(F)(theta)
            else:
                def call():
                    torch.func.vmap(lambda v: torch.func.jvp(F, (theta,), (v,))[1])(basis)
        elif impl == "jtfs_feature_jacobian":
            dx = torch.stack([torch.func.jvp(g, (theta,), (v,))[1] for v in basis]).detach()
            x = x.detach()

            def call():
                f.jacobian_columns(x, dx)
        else:
            raise ValueError(impl)

    base_kb = proc_status_kb("VmRSS")
    call()                                                        # warm-up (same peak)
    times = []
    deadline = time.perf_counter() + case["budget_s"]
    for i in range(case["repeats"]):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline and i >= 1:
            break
    peak_kb = proc_status_kb("VmHWM")
    times.sort()
    return dict(impl=impl, settings=case["settings"], batch=case["batch"], dtype=case["dtype"],
                seconds_per_sample=times[0] / case["batch"],
                peak_memory_mb=(peak_kb - base_kb) / 1024.0, n_coefficients=n_coef,
                seconds_per_sample_median=times[len(times) // 2] / case["batch"],
                n_timed=len(times), load_1min=os.getloadavg()[0], threads=torch.get_num_threads())


def run_calibration(n_sounds: int = 64) -> list[dict]:
    """Median of the uncompressed JTFS of ``n_sounds`` drums per setting (float32)."""
    import numpy as np
    import torch

    from pnp_core.features import jtfs as J
    from pnp_core.synth import get_synth

    rows = []
    for name, settings in (("paper_ftm", J.PAPER_FTM), ("laptop_ftm", J.LAPTOP_FTM)):
        g = get_synth("ftm", sr=22050, n_samples=settings["n_samples"])
        f = J.JTFS(**settings)
        theta = _thetas(g.space, n_sounds, torch.float32)
        with torch.no_grad():
            S = torch.cat([f.coefficients(g(theta[i:i + 8])) for i in range(0, n_sounds, 8)])
        per_sound = [J.calibrate_eps(s) for s in S]
        rows.append(dict(settings=name, n_sounds=n_sounds, eps_median=J.calibrate_eps(S),
                         per_sound_q10=float(np.quantile(per_sound, 0.1)),
                         per_sound_q90=float(np.quantile(per_sound, 0.9)),
                         paper_eps=settings["log_eps"]))
    return rows


# ---------------------------------------------------------------------------
# parent: the grid of cases, one child each
# ---------------------------------------------------------------------------

def cases(quick: bool, impls: list[str] | None = None) -> list[dict]:
    out = _cases(quick)
    return out if not impls else [c for c in out if c["impl"] in impls]


def _cases(quick: bool) -> list[dict]:
    out = []
    settings = ["laptop_ftm"] + ["paper_ftm"]
    for s in settings:
        paper = s == "paper_ftm"
        for batch in ((1,) if quick and paper else (1, 8)):
            for dtype in (("float32",) if quick else ("float32", "float64")):
                out.append(dict(impl="jtfs_forward", settings=s, batch=batch, dtype=dtype,
                                repeats=5, budget_s=60))
                out.append(dict(impl="jtfs_forward_backward", settings=s, batch=batch, dtype=dtype,
                                repeats=5, budget_s=60))
                for impl in ("jtfs_jacobian_jvp_loop", "jtfs_jacobian_jacfwd"):
                    out.append(dict(impl=impl, settings=s, batch=batch, dtype=dtype,
                                    repeats=3, budget_s=60 if paper else 20))
            for dtype in ("float32", "float64"):
                out.append(dict(impl="jtfs_feature_jacobian", settings=s, batch=batch, dtype=dtype,
                                repeats=3, budget_s=60))
            out.append(dict(impl="kymatio030_scattering1d", settings=s, batch=batch, dtype="float32",
                            repeats=5, budget_s=60))
    return out


def spawn(args: list[str]) -> str:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def summarize(df) -> None:
    """Print the issue's target ratios."""
    def get(impl, s, b, dt="float32", col="seconds_per_sample"):
        sel = df[(df.impl == impl) & (df.settings == s) & (df.batch == b) & (df.dtype == dt)]
        return float(sel[col].iloc[0]) if len(sel) else float("nan")

    print("\ntargets (float32 unless stated):")
    for s in df.settings.unique():
        for b in sorted(df[df.settings == s].batch.unique()):
            fwd = get("jtfs_forward", s, b)
            scat = get("kymatio030_scattering1d", s, b)
            jac = min(get("jtfs_jacobian_jvp_loop", s, b), get("jtfs_jacobian_jacfwd", s, b))
            feat64 = get("jtfs_feature_jacobian", s, b, "float64")
            feat = get("jtfs_feature_jacobian", s, b)
            fb = get("jtfs_forward_backward", s, b)
            fb_med = get("jtfs_forward_backward", s, b, col="seconds_per_sample_median")
            fwd_med = get("jtfs_forward", s, b, col="seconds_per_sample_median")
            print(f"  {s} B={b}: forward + backward / forward = {fb / fwd:.2f} (≤ 3; medians "
                  f"{fb_med / fwd_med:.2f})")
            print(f"  {s} B={b}: JTFS/Scattering1D = {fwd / scat:.2f} (≤ 2), "
                  f"Jacobian/forward = {jac / fwd:.2f} (≤ 6; feature part only {feat / fwd:.2f}), "
                  f"forward peak {get('jtfs_forward', s, b, col='peak_memory_mb'):.0f} MB, "
                  f"Jacobian peak {get('jtfs_jacobian_jacfwd', s, b, col='peak_memory_mb'):.0f} MB")
            fwd64 = get("jtfs_forward", s, b, "float64")
            if fwd64 == fwd64:
                jac64 = min(get("jtfs_jacobian_jvp_loop", s, b, "float64"),
                            get("jtfs_jacobian_jacfwd", s, b, "float64"))
                print(f"  {s} B={b} float64: Jacobian/forward = {jac64 / fwd64:.2f}; "
                      f"feature part (jacobian_columns, 5 tangents) / forward = {feat64 / fwd64:.2f} (≤ 4)")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true",
                        help="every row (paper setting at batch 8 and float64 too: ~30 min and "
                             "10 GB on 2 cores) and the ε calibration; default: the quick grid "
                             "(paper setting at batch 1, float32 only; a few minutes)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--out", default=str(REPO / "results/benchmarks/features.csv"))
    parser.add_argument("--impl", action="append", default=None,
                        help="only these implementations (repeatable), e.g. --impl jtfs_forward")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--calibrate-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(json.loads(args.child))))
        return
    if args.calibrate_child:
        print(json.dumps(run_calibration()))
        return

    import pandas as pd

    sys.path.insert(0, str(REPO))
    from pnp_core.io import atomic_path

    rows = []
    for case in cases(not args.full, args.impl):
        case["threads"] = args.threads
        t0 = time.perf_counter()
        row = json.loads(spawn(["--child", json.dumps(case)]))
        rows.append(row)
        print(f"{row['impl']:32s} {row['settings']:10s} B={row['batch']} {row['dtype']:7s} "
              f"{row['seconds_per_sample']:8.4f} s/sample  {row['peak_memory_mb']:8.1f} MB  "
              f"K={row['n_coefficients']}  ({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows, columns=COLUMNS)
    out = Path(args.out)
    with atomic_path(out) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g")
    print(f"\nwrote {out}")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    summarize(df)
    if args.full and not args.impl:
        cal = pd.DataFrame(json.loads(spawn(["--calibrate-child"])))
        with atomic_path(out.parent / "jtfs_eps_calibration.csv") as tmp:
            cal.to_csv(tmp, index=False, float_format="%.6g")
        print("\nε calibration (median of S, 64 drums):")
        print(cal.to_string(index=False))


if __name__ == "__main__":
    main()
