"""Φ(g(θ)) for a whole fold, and the file format it is stored in.

File format (``torch.save`` of a dict, written atomically):

============ ===============================================================
``ids``      LongTensor (n,): sample ids, ascending (rows of ``features``)
``features`` Tensor (n, K), float32 or float64: Φ(g(θ_id)), e.g. log-JTFS
``provenance`` dict, :data:`pnp_core.spec.PROVENANCE_KEYS`
``fold``     str
============ ===============================================================
"""

from __future__ import annotations

import pandas as pd
import torch

from pnp_core.synth.datasets import theta_batches
from pnp_core.io import atomic_path


#: precision of the computation; the stored dtype is only a storage choice
COMPUTE_DTYPE = torch.float64


@torch.no_grad()
def fold_features(df: pd.DataFrame, synth, feature, *, batch_size: int = 8, device="cpu",
                  dtype=torch.float32, progress: bool = True, desc: str = "features",
                  fold: str | None = None) -> torch.Tensor:
    """Φ(g(θ)) for every row of ``df`` (sorted by id) → (n, K) on the CPU, ``dtype``.

    g and Φ run in float64 whatever ``dtype`` is; the result is then rounded to
    ``dtype``. In float32 the AM/FM chirp's phase (up to ~4·10⁴ rad at 2 s) loses
    ~4·10⁻³ rad per ulp, so a 1-ulp difference between code paths (vectorised or
    scalar kernels, FFT algorithms chosen by batch size, thread count or memory
    alignment) became a ~10⁻⁴ difference of the features: rows depended on the
    batch they were computed in. In float64 those differences are ~10⁻¹² of a
    row's largest value, below float32 rounding, so a stored row is the same for
    any batch size up to one float32 rounding step.
    """
    out = []
    for _, theta in theta_batches(df, synth.space, batch_size, device=device,
                                  dtype=COMPUTE_DTYPE, desc=desc, progress=progress, fold=fold):
        S = feature(synth(theta))
        if not torch.isfinite(S).all():
            raise FloatingPointError("non-finite features; check the synthesizer's settings")
        out.append(S.to(dtype).cpu())
    if not out:
        return torch.empty(0, feature.n_coefficients, dtype=dtype)
    return torch.cat(out)


def save_fold_features(path, ids, features: torch.Tensor, **meta) -> None:
    with atomic_path(path) as tmp:
        torch.save({"ids": torch.tensor(ids, dtype=torch.long), "features": features, **meta}, tmp)


def load_fold_features(path) -> dict:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if data["ids"].shape[0] != data["features"].shape[0]:
        raise ValueError(f"{path}: {data['ids'].shape[0]} ids but {data['features'].shape[0]} rows")
    return data
