"""MUSHRA bundle (pnp_core.evaluation.mushra): real WAV, YAML, JS and CSV files, read back."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from pnp_core.errors import DataError
from pnp_core.evaluation.listen import PEAK
from pnp_core.evaluation.mushra import (MAX_CONDITIONS, anchor_cutoff, lowpass, safe_name,
                             write_mushra_bundle)

LSB = 1.0 / 32768  # one 16-bit step
PREFIX = "configs/resources/pnp"
METHODS = ("P-loss", "PNP-JTFS", "DDSP-MSS")
# (sr, low-band and high-band test tones, expected anchor cutoff)
CASES = {22050: (440.0, 6000.0, 3500.0), 8192: (300.0, 2000.0, 3500.0 * 4096 / 22050)}


def _sounds(sr: int, seconds: float = 1.0):
    """2 targets (two Hann-windowed tones; Hann-windowed white noise) and 3 methods of
    different loudness: P-loss twice as loud as the target (the loudest of trial 1), PNP-JTFS
    a quiet wrong-pitch tone, DDSP-MSS the target reversed in time."""
    lo, hi, _ = CASES[sr]
    n = int(sr * seconds)
    t = np.arange(n) / sr
    w = np.hanning(n)
    rng = np.random.default_rng(0)
    targets = np.stack([w * (0.6 * np.sin(2 * np.pi * lo * t) + 0.3 * np.sin(2 * np.pi * hi * t)),
                        w * 0.2 * rng.standard_normal(n)])
    stimuli = {"P-loss": 2.0 * targets + 0.01 * w * rng.standard_normal((2, n)),
               "PNP-JTFS": 0.3 * w * np.sin(2 * np.pi * 1.1 * lo * t) * np.ones((2, 1)),
               "DDSP-MSS": targets[:, ::-1].copy()}
    return targets, stimuli


def _read(path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


def _band_energy(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(x.size, 1.0 / sr)
    return float(spec[(f >= lo) & (f < hi)].sum())


@pytest.fixture(params=sorted(CASES), ids=lambda sr: f"sr{sr}")
def bundle(request, tmp_path):
    sr = request.param
    targets, stimuli = _sounds(sr)
    out = tmp_path / "bundle"
    manifest = write_mushra_bundle(targets, stimuli, sr, out, ids=[17, 4],
                                   resources_prefix=PREFIX + "/")
    return sr, targets, stimuli, out, manifest


def test_files_and_manifest(bundle):
    sr, targets, stimuli, out, manifest = bundle
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False, na_values=[""])
    assert len(manifest) == len(on_disk) == 2 * (3 + len(METHODS))
    assert list(on_disk.columns) == list(manifest.columns)
    for k, i in ((1, 17), (2, 4)):
        rows = on_disk[on_disk.trial == k]
        assert set(rows.id) == {i}
        assert sorted(rows.stimulus) == sorted(["reference", "hidden_reference", "anchor_lp35",
                                                "p-loss", "pnp-jtfs", "ddsp-mss"])
        assert rows.set_index("stimulus").role.to_dict() == {
            "reference": "reference", "hidden_reference": "hidden_reference",
            "anchor_lp35": "anchor", "p-loss": "method", "pnp-jtfs": "method",
            "ddsp-mss": "method"}
        methods = rows[rows.role == "method"].set_index("stimulus").method.to_dict()
        assert methods == {"p-loss": "P-loss", "pnp-jtfs": "PNP-JTFS", "ddsp-mss": "DDSP-MSS"}
        # the names webMUSHRA writes in its results: the hidden reference is "reference"
        keys = rows.set_index("stimulus").rating_key.fillna("").to_dict()
        assert keys["reference"] == "" and keys["hidden_reference"] == "reference"
        assert keys["anchor_lp35"] == "anchor_lp35" and keys["p-loss"] == "p-loss"
        for rel in rows.file:
            assert (out / rel).is_file() and rel.startswith(f"trial{k}/")
        assert (rows.sr == sr).all()
        assert rows.cutoff_hz.notna().sum() == 1
    for name in ("config.yaml", "beaqlejs_config.js", "README.txt", "manifest.csv"):
        assert (out / name).is_file()
    assert not list(out.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_wavs_hidden_reference_gain_and_peak(bundle):
    sr, targets, stimuli, out, manifest = bundle
    _, _, cutoff = CASES[sr]
    anchors = lowpass(targets, sr, cutoff)
    gains = []
    for k in (1, 2):
        rows = manifest[manifest.trial == k]
        gain = rows.gain.iloc[0]
        assert np.all(rows.gain == gain)  # one gain per trial
        gains.append(gain)
        ref, _ = sf.read(str(out / f"trial{k}/reference.wav"), dtype="int16")
        hidden, got_sr = sf.read(str(out / f"trial{k}/hidden_reference.wav"), dtype="int16")
        assert got_sr == sr and ref.shape == (targets.shape[1],)
        np.testing.assert_array_equal(hidden, ref)
        originals = {"reference": targets[k - 1], "anchor_lp35": anchors[k - 1],
                     **{safe_name(m): a[k - 1] for m, a in stimuli.items()}}
        peak = 0.0
        for stem, x in originals.items():
            y = _read(out / f"trial{k}/{stem}.wav")
            # the file is the original times the shared gain, to 16-bit precision
            np.testing.assert_allclose(y, gain * x, rtol=0, atol=1.5 * LSB)
            peak = max(peak, np.abs(y).max())
        assert peak == pytest.approx(PEAK, abs=2 * LSB)
        loudest = max(np.abs(x).max() for x in originals.values())
        assert gain == pytest.approx(PEAK / loudest, rel=1e-5)
    assert gains[0] != pytest.approx(gains[1])  # gains are per trial, not global


def test_anchor_is_lowpassed(bundle):
    sr, targets, stimuli, out, manifest = bundle
    cutoff = CASES[sr][2]
    assert manifest.cutoff_hz.dropna().unique() == pytest.approx([cutoff])
    for k in (1, 2):
        ref = _read(out / f"trial{k}/reference.wav")
        anchor = _read(out / f"trial{k}/anchor_lp35.wav")
        total = _band_energy(ref, sr, 0, sr)
        above_ref = _band_energy(ref, sr, 1.02 * cutoff, sr)
        above = _band_energy(anchor, sr, 1.02 * cutoff, sr)
        assert above_ref > 0.05 * total  # the test sounds do have energy to remove
        assert above < 1e-6 * total  # (nearly) nothing left above the cutoff
        low_ref = _band_energy(ref, sr, 0, 0.98 * cutoff)
        low = _band_energy(anchor, sr, 0, 0.98 * cutoff)
        assert low == pytest.approx(low_ref, rel=1e-3)  # the low band is kept
        removed = manifest[(manifest.trial == k) & (manifest.role == "anchor")].removed_energy
        assert float(removed.iloc[0]) == pytest.approx(above_ref / total, rel=0.02, abs=1e-3)


def test_webmushra_config(bundle):
    sr, targets, stimuli, out, manifest = bundle
    config = yaml.safe_load((out / "config.yaml").read_text())
    for key in ("testname", "testId", "bufferSize", "stopOnErrors", "showButtonPreviousPage",
                "remoteService"):
        assert key in config
    assert config["bufferSize"] in (256, 512, 1024, 2048, 4096, 8192, 16384)
    pages = config["pages"]
    assert pages[0]["type"] == "generic" and pages[0]["content"]
    assert pages[-1]["type"] == "finish" and pages[-1]["writeResults"] is True
    group = pages[1]
    assert isinstance(group, list) and group[0] == "random"  # trial order randomised
    trials = group[1:]
    assert [p["type"] for p in trials] == ["mushra", "mushra"]
    assert [p["id"] for p in trials] == ["trial1", "trial2"]

    def local(path):
        assert path.startswith(PREFIX + "/"), path
        return out / path[len(PREFIX) + 1:]

    for k, page in enumerate(trials, start=1):
        assert page["createAnchor35"] is False and page["createAnchor70"] is False
        assert local(page["reference"]) == out / f"trial{k}/reference.wav"
        # webMUSHRA adds the reference as hidden reference itself: not listed again
        assert sorted(page["stimuli"]) == sorted(["p-loss", "pnp-jtfs", "ddsp-mss",
                                                  "anchor_lp35"])
        for key, path in page["stimuli"].items():
            assert local(path) == out / f"trial{k}/{key}.wav" and local(path).is_file()
        assert len(page["stimuli"]) + 1 <= MAX_CONDITIONS
        rated = set(manifest[(manifest.trial == k) & (manifest.rating_key.fillna("") != "")]
                    .rating_key)
        assert rated == set(page["stimuli"]) | {"reference"}


def test_beaqlejs_config(bundle):
    sr, targets, stimuli, out, manifest = bundle
    text = (out / "beaqlejs_config.js").read_text()
    body = text[text.index("var TestConfig = ") + len("var TestConfig = "):].rstrip().rstrip(";")
    config = json.loads(body)
    assert config["AudioRoot"] == "audio/pnp/"
    sets = config["Testsets"]
    assert [s["TestID"] for s in sets] == ["trial1", "trial2"]
    for k, s in enumerate(sets, start=1):
        assert s["Files"]["Reference"] == f"trial{k}/reference.wav"
        assert len(s["Files"]) == 1 + len(METHODS) + 1
        for rel in s["Files"].values():
            assert (out / rel).is_file()


def test_deterministic(tmp_path):
    targets, stimuli = _sounds(22050, 0.25)
    for name in ("a", "b"):
        write_mushra_bundle(targets, stimuli, 22050, tmp_path / name)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    assert len(files) == 2 * 6 + 4
    for rel in files:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_fixed_trial_order(tmp_path):
    targets, stimuli = _sounds(22050, 0.25)
    write_mushra_bundle(targets, stimuli, 22050, tmp_path, randomize_trials=False)
    pages = yaml.safe_load((tmp_path / "config.yaml").read_text())["pages"]
    assert [p["type"] for p in pages] == ["generic", "mushra", "mushra", "finish"]


def test_anchor_cutoff_rule():
    assert anchor_cutoff(22050) == 3500.0
    assert anchor_cutoff(44100) == 3500.0
    assert anchor_cutoff(16000) == 3500.0  # 3.5 kHz ≤ half of 8 kHz
    assert anchor_cutoff(8192) == pytest.approx(650.16, abs=0.01)
    assert anchor_cutoff(8192, scale=False) == 3500.0
    with pytest.raises(DataError, match="Nyquist"):
        anchor_cutoff(6000, scale=False)


def test_safe_name():
    assert safe_name("P-loss") == "p-loss"
    assert safe_name("PNP-JTFS (D-diag)") == "pnp-jtfs_d-diag"
    assert safe_name("../evil/name") == "evil_name"


@pytest.mark.parametrize("change, match", [
    (lambda t, s: (t, {}), "at least one method"),
    (lambda t, s: (t, {**s, "P-loss": s["P-loss"][:, :-1]}), "P-loss.*shape"),
    (lambda t, s: (t[0], s), "targets must be"),
    (lambda t, s: (t, {**s, "PNP-JTFS": np.where(np.arange(t.shape[1]) == 5, np.nan,
                                                 s["PNP-JTFS"])}), "PNP-JTFS.*trial 1.*finite"),
    (lambda t, s: (np.where(np.arange(2)[:, None] == 1, np.inf, t), s), "trial 2.*finite"),
    (lambda t, s: (t, {**s, "pnp-JTFS": s["P-loss"]}), "both give the file name pnp-jtfs"),
    (lambda t, s: (t, {**s, "Reference": s["P-loss"]}), "reserved"),
    (lambda t, s: (t, {**s, "???": s["P-loss"]}), "no letter or digit"),
    (lambda t, s: (t, {f"m{i}": s["P-loss"] for i in range(MAX_CONDITIONS - 1)}),
     "at most 12"),
])
def test_bad_inputs(tmp_path, change, match):
    targets, stimuli = _sounds(8192, 0.25)
    targets, stimuli = change(targets, stimuli)
    out = tmp_path / "bundle"
    with pytest.raises(DataError, match=match):
        write_mushra_bundle(targets, stimuli, 8192, out)
    assert not out.exists()  # nothing written before the inputs are checked


def test_bad_ids_and_long_sounds(tmp_path):
    targets, stimuli = _sounds(8192, 0.25)
    with pytest.raises(DataError, match="distinct"):
        write_mushra_bundle(targets, stimuli, 8192, tmp_path / "a", ids=[3, 3])
    with pytest.raises(DataError, match="2 integers"):
        write_mushra_bundle(targets, stimuli, 8192, tmp_path / "a", ids=[3])
    long = np.zeros((1, 8192 * 13))
    with pytest.raises(DataError, match="longer than 12 s"):
        write_mushra_bundle(long, {"P-loss": long}, 8192, tmp_path / "a")
    assert not (tmp_path / "a").exists()
