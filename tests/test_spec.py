"""RunSpec: one config entry → synth, feature, design, train-fitted scaler, provenance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from testing_plugins import PowerSpectrogram

from pnp_core.synth.datasets import make_grid_dataset, write_params
from pnp_core.errors import DataError, TableFileError
from pnp_core.metric.jacobian import JacobianComputer, synth_tangents
from pnp_core.params import Param, ParamSpace, Scaler
from pnp_core.spec import PROVENANCE_KEYS, SECTIONS, RunSpec, entry_slice
from pnp_core.synth import SYNTHS, Synth

ENTRY = {"type": "amfm", "settings": {"sr": 8192, "n_samples": 2048}, "rescaling": "minmax",
         "dataset": {"bins": 3, "val_margin": 1, "n_test": 4, "seed": 1, "jitter": "linear"},
         "feature": {"type": "mss", "settings": {"n_ffts": [256, 64]}}}


def test_spec_builds_the_objects_of_an_entry():
    spec = RunSpec.from_entry(ENTRY)
    assert spec.name == "amfm" and spec.synth.n_samples == 2048
    assert spec.space.names == ["f_c", "f_m", "gamma"]
    assert spec.feature.n_samples == 2048 and spec.rescaling == "minmax"
    assert spec.fold_sizes() == {"train": 22, "val": 1, "test": 4}
    assert list(spec.provenance()) == list(PROVENANCE_KEYS)


def test_provenance_lists_only_the_sections_a_rule_passed():
    spec = RunSpec.from_entry(entry_slice(ENTRY, "dataset"))
    prov = spec.provenance()
    assert set(prov) == {"pnp_core", "synth", "synth_settings", "dataset"}
    assert set(RunSpec.from_entry(entry_slice(ENTRY, "features")).provenance()) == \
        set(prov) | {"feature", "feature_settings"}
    assert set(SECTIONS["jacobian"]) > set(SECTIONS["features"]) > set(SECTIONS["dataset"])


def test_scaler_is_fitted_on_train_rows_and_a_bad_train_row_is_named(tmp_path):
    spec = RunSpec.from_entry(ENTRY)
    df = make_grid_dataset(spec.space, spec.design)
    train = df[df["fold"] == "train"]
    scaler = spec.fit_scaler(df)
    np.testing.assert_allclose(scaler.lo, train[spec.space.names].min().to_numpy())
    bad_id = int(train["id"].iloc[3])
    df.loc[df["id"] == bad_id, "f_c"] = 1e6
    with pytest.raises(DataError, match=rf"sample id {bad_id} \(train fold\): parameter 'f_c'"):
        spec.fit_scaler(df)


def test_read_params_names_the_file_and_missing_columns(tmp_path):
    spec = RunSpec.from_entry(ENTRY)
    df = make_grid_dataset(spec.space, spec.design)
    path = tmp_path / "params.parquet"
    write_params(df.drop(columns=["gamma"]), path, spec.provenance(), {})
    with pytest.raises(TableFileError, match=r"params.parquet: the params table lacks column\(s\) "
                                             r"\['gamma'\]"):
        spec.read_params(path)
    with pytest.raises(TableFileError, match=r"nothing.parquet: file not found"):
        spec.read_params(tmp_path / "nothing.parquet")


@SYNTHS.register("_test_chirp")
class Chirp(Synth):
    """A user's synthesizer with no tangents of its own."""

    space = ParamSpace([Param("f", "Hz", 100.0, 1000.0, log=True),
                        Param("a", "1", 0.1, 1.0)])

    def __init__(self, sr: int = 8000, n_samples: int = 1024) -> None:
        self.sr, self.n_samples = sr, n_samples

    def synthesize(self, theta):
        t = self.time(theta)
        return theta[:, 1:] * torch.sin(2 * math.pi * theta[:, :1] * t * (1 + t))


def test_a_user_synth_gets_jacobians_through_the_default_tangents():
    synth = Chirp()
    assert not synth.has_own_tangents
    scaler = Scaler(synth.space, "log")
    theta = torch.tensor([[200.0, 0.5], [700.0, 0.9]], dtype=torch.float64)
    x, dx = synth_tangents(synth, scaler, scaler.forward(theta))
    eps = 1e-6
    for p in range(2):
        step = torch.zeros(2, dtype=torch.float64)
        step[p] = eps
        nu = scaler.forward(theta)
        fd = (synth(scaler.inverse(nu + step)) - synth(scaler.inverse(nu - step))) / (2 * eps)
        torch.testing.assert_close(dx[p], fd, rtol=1e-5, atol=1e-6)
    J = JacobianComputer(synth, PowerSpectrogram(1024), scaler, method="jvp").jacobian(theta)
    assert J.shape == (2, PowerSpectrogram(1024).n_coefficients, 2) and torch.isfinite(J).all()
