"""`pnp match TARGET.wav`: loading policy, errors naming the file, recovery of a known θ."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from pnp_core.cli import main
from pnp_core.errors import DataError
from pnp_core.match_audio import load_target
from pnp_core.spec import RunSpec

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


def test_pnp_match_recovers_known_theta(tmp_path):
    torch.set_num_threads(1)
    spec = RunSpec.from_entry(dict(SMALL))
    theta = np.array([700.0, 9.0, 1.7])
    x = spec.synth(torch.as_tensor(theta)[None])[0].numpy()
    wav = tmp_path / "known.wav"
    sf.write(wav, x, spec.synth.sr, subtype="FLOAT")
    out = tmp_path / "out"
    rc = main(["match", str(wav), "--entry", json.dumps(SMALL), "--grid", "3", "--starts", "2",
               "--steps", "60", "--no-progress", "--out", str(out), "--threads", "1"])
    assert rc == 0
    doc = json.loads((out / "known.theta.json").read_text())
    got = np.array([r["value"] for r in doc["parameters"]])
    assert [r["unit"] for r in doc["parameters"]] == ["Hz", "Hz", "oct/s"]
    np.testing.assert_allclose(got, theta, rtol=0.02)
    y, sr = sf.read(out / "known.match.wav")
    assert sr == spec.synth.sr and y.shape == x.shape
    for ext in ("pdf", "png"):
        assert (out / f"known.spectrograms.{ext}").stat().st_size > 0
