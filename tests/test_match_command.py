"""`pnp match TARGET.wav`: loading policy, errors naming the file, recovery of a known θ."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from pnp_core.cli import main
from pnp_core.errors import DataError
from pnp_core.matching.match_audio import LevelMatched, load_target, rms
from pnp_core.spec import RunSpec
from pnp_core.synth import Synth

from test_matching import SMALL


def test_load_policy_mono_resample_trim_pad(tmp_path):
    stereo = np.stack([np.ones(8000) * 0.5, np.zeros(8000)], axis=1)
    p = tmp_path / "s.wav"
    sf.write(p, stereo, 8000)
    got = load_target(p, 4000, 3000)
    assert got.x.shape == (3000,)
    assert any("averaged" in n for n in got.notes)
    assert any("resampled from 8000 Hz to 4000 Hz" in n for n in got.notes)
    assert any("trimmed" in n for n in got.notes)
    assert np.allclose(got.x[100:2900], 0.25, atol=1e-3)      # mean of the two channels
    short = load_target(p, 8000, 10000)
    assert short.x.shape == (10000,) and (short.x[8000:] == 0).all()
    assert any("zero-padded" in n for n in short.notes)


@pytest.mark.parametrize("content", [b"", b"this is not audio at all" * 10])
def test_corrupt_or_empty_file_names_the_file(tmp_path, content, capsys):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(DataError, match="bad.wav"):
        load_target(p, 4096, 4096)
    rc = main(["match", str(p), "--entry", json.dumps(SMALL), "--out", str(tmp_path / "o")])
    assert rc == 2
    assert "bad.wav" in capsys.readouterr().err


def test_empty_and_silent_audio_refused(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0), 4096)
    with pytest.raises(DataError, match="empty.wav.*empty"):
        load_target(p, 4096, 4096)
    q = tmp_path / "silent.wav"
    sf.write(q, np.zeros(100), 4096)
    with pytest.raises(DataError, match="silent"):
        load_target(q, 4096, 4096)


@pytest.mark.parametrize("optimizer,steps", [("lm", 20), ("adam", 60)])
def test_pnp_match_recovers_known_theta(tmp_path, optimizer, steps):
    torch.set_num_threads(1)
    spec = RunSpec.from_entry(dict(SMALL))
    theta = np.array([700.0, 9.0, 1.7])
    x = spec.synth(torch.as_tensor(theta)[None])[0].numpy()
    wav = tmp_path / "known.wav"
    sf.write(wav, x, spec.synth.sr, subtype="FLOAT")
    out = tmp_path / "out"
    rc = main(["match", str(wav), "--entry", json.dumps(SMALL), "--grid", "3", "--starts", "2",
               "--optimizer", optimizer, "--steps", str(steps), "--no-progress", "--out",
               str(out), "--threads", "1"])
    assert rc == 0
    doc = json.loads((out / "known.theta.json").read_text())
    assert doc["optimizer"] == optimizer and doc["steps"] == steps
    assert doc["jtfs_loss"] < doc["grid_loss"]
    got = np.array([r["value"] for r in doc["parameters"]])
    assert [r["unit"] for r in doc["parameters"]] == ["Hz", "Hz", "oct/s"]
    np.testing.assert_allclose(got, theta, rtol=0.02)
    y, sr = sf.read(out / "known.match.wav")
    assert sr == spec.synth.sr and y.shape == x.shape
    for ext in ("pdf", "png"):
        assert (out / f"known.spectrograms.{ext}").stat().st_size > 0


def test_level_matched_synth_has_the_target_level_and_exact_tangents():
    # LevelMatched's tangents (from the inner synth's, projected) against autodiff through
    # its own synthesize (the base class's tangents), float64
    spec = RunSpec.from_entry(dict(SMALL))
    g = LevelMatched(spec.synth, 0.3)
    theta = torch.tensor([[700.0, 9.0, 1.7], [600.0, 5.0, 0.8]], dtype=torch.float64)
    x, dx = g.tangents(theta)
    x_ad, dx_ad = Synth.tangents(g, theta)
    torch.testing.assert_close(x, g(theta), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(x, x_ad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(dx, dx_ad, rtol=1e-9, atol=1e-9 * dx_ad.abs().max().item())
    torch.testing.assert_close(rms(x)[:, 0], torch.full((2,), 0.3, dtype=torch.float64))
    assert g.space is spec.synth.space and g.settings() == spec.synth.settings()
    with pytest.raises(ValueError, match="positive"):
        LevelMatched(spec.synth, 0.0)


def test_pnp_match_is_gain_invariant(tmp_path):
    # a file at half the synthesizer's level, 16-bit: matched at the file's level (default)
    # θ comes back; compared at the synthesizer's own level it does not
    torch.set_num_threads(1)
    spec = RunSpec.from_entry(dict(SMALL))
    theta = np.array([700.0, 9.0, 1.7])
    x = 0.5 * spec.synth(torch.as_tensor(theta)[None])[0].numpy()
    wav = tmp_path / "quiet.wav"
    sf.write(wav, x, spec.synth.sr, subtype="PCM_16")
    errors = {}
    for level in ("match", "synth"):
        out = tmp_path / level
        rc = main(["match", str(wav), "--entry", json.dumps(SMALL), "--grid", "3", "--starts",
                   "2", "--steps", "20", "--level", level, "--no-progress", "--out", str(out),
                   "--threads", "1"])
        assert rc == 0
        doc = json.loads((out / "quiet.theta.json").read_text())
        assert doc["level"] == level
        got = np.array([r["value"] for r in doc["parameters"]])
        errors[level] = np.abs(got / theta - 1).max()
        y, _ = sf.read(out / "quiet.match.wav")
        if level == "match":             # the resynthesis at the file's level
            assert doc["gain"] == pytest.approx(0.5, rel=0.01)
            assert rms(y)[0] == pytest.approx(rms(x)[0], rel=1e-3)
        else:
            assert doc["gain"] == 1.0
    assert errors["match"] < 0.02 < errors["synth"], errors


def _tiny_model(tmp_path, entry):
    """A P-loss encoder trained for one epoch on ``entry``'s synthesizer (a few seconds)."""
    import pandas as pd

    from pnp_core.config import validate_config
    from pnp_core.training.train import Run, train_run

    spec = RunSpec.from_entry(dict(entry))
    space = spec.space
    rng = np.random.default_rng(0)
    lo, hi = space.to_natural(space.low), space.to_natural(space.high)
    theta = space.from_natural(lo + rng.uniform(0.1, 0.9, size=(12, len(space))) * (hi - lo))
    params = pd.DataFrame(theta, columns=space.names)
    params.insert(0, "fold", ["train"] * 8 + ["val"] * 4)
    params.insert(0, "id", np.arange(12, dtype=np.int64))
    training = validate_config({"synths": {"amfm": dict(entry)}, "training": {
        "encoder": {"type": "small_cnn", "channels": [4, 8]}, "samples_per_epoch": 8,
        "epochs": 1, "val_batch_size": 4, "batch_size": {"p": 4, "pnp": 4, "ddsp_mss": 4,
                                                         "ddsp_jtfs": 4}}})["training"]
    train_run(Run(spec, params, {"loss": "p", "seed": 0}, training, None), tmp_path / "run",
              progress=False)
    return tmp_path / "run" / "model.pt"


WITH_CQT = {**SMALL, "cqt": {"octaves": 5, "hop_length": 256}}


def test_pnp_match_refines_a_trained_encoders_prediction(tmp_path):
    torch.set_num_threads(1)
    from pnp_core.params import Scaler
    from pnp_core.training.train import load_model

    model_path = _tiny_model(tmp_path, WITH_CQT)
    spec = RunSpec.from_entry(dict(WITH_CQT))
    theta = np.array([700.0, 9.0, 1.7])
    x = spec.synth(torch.as_tensor(theta)[None])[0].numpy()
    wav = tmp_path / "known.wav"
    sf.write(wav, x, spec.synth.sr, subtype="FLOAT")
    out = tmp_path / "out"
    rc = main(["match", str(wav), "--entry", json.dumps(WITH_CQT), "--model", str(model_path),
               "--starts", "0", "--steps", "20", "--no-progress", "--out", str(out),
               "--threads", "1"])
    assert rc == 0
    doc = json.loads((out / "known.theta.json").read_text())
    assert doc["start"] == "encoder" and doc["grid_loss"] is None   # no grid search
    # the start is the encoder's own prediction, computed here from the model file's parts
    model, record = load_model(model_path)
    nu = model.double()(torch.as_tensor(x)[None]).detach()
    raw = Scaler.from_state(spec.space, record["scaler"]).inverse(nu)[0].numpy()
    start = np.clip(raw, spec.space.low, spec.space.high)
    from pnp_core.matching.matchers import Objective, box_scaler

    # candidates compared at the file's level (the default --level match)
    obj = Objective("jtfs", LevelMatched(spec.synth, float(rms(x)[0])), box_scaler(spec.space),
                    torch.as_tensor(x, dtype=torch.float32)[None], feature=spec.feature)
    nu_start = box_scaler(spec.space).forward(torch.as_tensor(start)[None]).float()
    assert doc["encoder_loss"] == pytest.approx(float(obj(nu_start)[0]), rel=1e-4)
    # refinement only improves on the start
    assert doc["jtfs_loss"] < doc["encoder_loss"]


def test_pnp_match_refuses_a_model_of_another_synth_setting(tmp_path):
    model_path = _tiny_model(tmp_path, WITH_CQT)
    other = {**WITH_CQT, "settings": {"sr": 4096, "n_samples": 4096}}
    wav = tmp_path / "s.wav"
    sf.write(wav, np.sin(np.arange(4096) * 0.3), 4096)
    from pnp_core.matching.match_audio import match_file

    with pytest.raises(DataError, match="model.pt.*synth_settings"):
        match_file(RunSpec.from_entry(dict(other)), wav, starts=0, steps=1, progress=False,
                   model=model_path)
