import numpy as np
import pandas as pd
import pytest

from pnp_core.cli import main
from pnp_core.synth.datasets import GridDesign, load_params, make_grid_dataset
from pnp_core.synth import get_synth

FTM = get_synth("ftm", sr=22050, n_samples=256)
AMFM = get_synth("amfm", sr=8192, n_samples=256)


@pytest.mark.parametrize(
    "synth,design,sizes",
    [
        (FTM, GridDesign(bins=10, val_margin=2, n_test=10000, seed=0), (82224, 7776, 10000)),
        (AMFM, GridDesign(bins=30, val_margin=8, n_test=2700, seed=960602, jitter="linear"),
         (21556, 2744, 2700)),
        (FTM, GridDesign(bins=4, val_margin=1, n_test=64, seed=0), (928, 32, 64)),
    ],
)
def test_paper_fold_sizes(synth, design, sizes):
    df = make_grid_dataset(synth.space, design)
    counts = df["fold"].value_counts()
    assert (counts["train"], counts["val"], counts["test"]) == sizes
    assert df["id"].is_unique and len(df) == design.bins ** len(synth.space)
    assert design.fold_sizes(len(synth.space)) == dict(zip(("train", "val", "test"), sizes))


def test_cells_ids_and_interior_validation():
    design = GridDesign(bins=5, val_margin=1, n_test=20, seed=3)
    df = make_grid_dataset(FTM.space, design)
    nat = FTM.space.to_natural(df[FTM.space.names].to_numpy())
    lo, hi = FTM.space.to_natural(FTM.space.low), FTM.space.to_natural(FTM.space.high)
    cells = np.floor((nat - lo) / (hi - lo) * design.bins).astype(int).clip(0, design.bins - 1)
    # each θ lies in the cell its id names (id = mixed-radix bin code, first parameter first)
    assert np.array_equal(np.ravel_multi_index(cells.T, (5,) * 5), df["id"].to_numpy())
    assert df.loc[7, "bin_code"] == "0-0-0-1-2"
    interior = np.all((cells >= 1) & (cells <= 3), axis=1)
    assert np.array_equal(interior, (df["fold"] == "val").to_numpy())
    assert not (interior & (df["fold"] == "test").to_numpy()).any()


def test_linear_jitter_is_uniform_in_physical_units():
    df = make_grid_dataset(AMFM.space, GridDesign(bins=1, val_margin=0, n_test=0, seed=1,
                                                  jitter="linear"))
    assert len(df) == 1 and df["fold"].item() == "val"
    big = make_grid_dataset(AMFM.space, GridDesign(bins=12, val_margin=0, n_test=0, seed=0,
                                                   jitter="linear"))
    # within cell 0 of f_c (edges 512 … 512·2^(1/12)), linear jitter has mean ≈ the midpoint
    first = big[big["bin_code"].str.startswith("00-")]["f_c"]
    mid = 0.5 * (512 + 512 * 2 ** (1 / 12))
    assert abs(first.mean() - mid) < 0.05 * (512 * 2 ** (1 / 12) - 512)


def test_same_seed_gives_identical_parquet_and_other_seed_differs(tmp_path):
    entry = ('{"type": "ftm", "feature": {"type": "mss"}, '
             '"dataset": {"bins": 3, "val_margin": 1, "n_test": 5, "seed": 11}}')
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    assert main(["dataset", "--entry", entry, "--out", str(a)]) == 0
    assert main(["dataset", "--entry", entry, "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert main(["dataset", "--entry", entry.replace("11", "12"), "--out", str(c)]) == 0
    assert not load_params(a).equals(load_params(c))
    df = pd.read_parquet(a)
    assert list(df.columns) == ["id", "fold", "bin_code", *FTM.space.names]
    assert len(load_params(a, "val")) == 1
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary left behind


def test_design_errors():
    with pytest.raises(ValueError, match="val_margin"):
        GridDesign(bins=4, val_margin=2, n_test=0, seed=0)
    with pytest.raises(ValueError, match="n_test"):
        GridDesign(bins=3, val_margin=1, n_test=300, seed=0).fold_sizes(5)
