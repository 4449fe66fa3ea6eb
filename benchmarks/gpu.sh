#!/usr/bin/env bash
# The one-command GPU check (issue 19): on a CUDA machine, at the paper's settings,
#   1. the Jacobian (M, eigenvalues) of one paper FTM train shard (1000 samples),
#   2. one training epoch (25,600 samples) per loss: P, PNP, DDSP-MSS, DDSP-JTFS,
#   3. the evaluation of 256 test sounds,
# with wall time and peak GPU memory of each, in results/benchmarks/gpu.csv (and the
# machine in results/benchmarks/gpu_machine.txt). Run from the repository root, in the
# environment of README's quick start:  bash benchmarks/gpu.sh [extra bench_gpu.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p results/benchmarks
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu.sh: torch sees no CUDA device (torch $(python -c 'import torch; print(torch.__version__)'));" \
         "install a CUDA build of torch on a GPU machine" >&2
    exit 3
fi
{
    date -u +"%Y-%m-%dT%H:%M:%SZ"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
    python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
    nproc
} > results/benchmarks/gpu_machine.txt
python benchmarks/bench_gpu.py --device cuda --out results/benchmarks/gpu.csv "$@"
