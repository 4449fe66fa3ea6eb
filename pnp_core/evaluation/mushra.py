"""A MUSHRA listening-test bundle (ITU-R BS.1534) of targets and their matches, for webMUSHRA.

:func:`write_mushra_bundle` turns n target sounds and, per method (Table 1's P-loss, PNP,
DDSP-MSS, DDSP-JTFS, … whatever runs are given), the n matched sounds into a folder a lab
copies into webMUSHRA (1.4.3, the newest release; its config keys are unchanged on master):

``trial{k}/`` (k = 1 … n)
    ``reference.wav`` (the target, the open reference), ``hidden_reference.wav`` (the same
    samples), ``anchor_lp35.wav`` (the target low-passed, see :func:`anchor_cutoff` and
    :func:`lowpass`), ``{safe method name}.wav`` per method (:func:`safe_name`);
    16-bit PCM at the synthesizer's rate. All files of a trial share one gain, chosen so
    that the loudest of them peaks at :data:`pnp_core.evaluation.listen.PEAK` (loudness ratios kept,
    as in ``pnp listen``).
``config.yaml``
    webMUSHRA config: an instructions page, one ``mushra`` page per trial (in random order
    unless ``randomize_trials=False``), a finish page. webMUSHRA itself adds the page's
    ``reference`` as the hidden reference (rated as ``reference`` in its results) and
    shuffles the conditions, so ``stimuli`` lists the methods and the anchor only, and
    ``createAnchor35``/``createAnchor70`` are off (its built-in anchors exist for 16–48 kHz
    only, not for the 8192 Hz AM/FM synth). Written last: its presence means the bundle is
    complete.
``beaqlejs_config.js``
    the same trials for BeaqleJS's MUSHRA test (``var TestConfig = {…}``; BeaqleJS also adds
    the hidden reference itself, as ``HiddenRef``).
``manifest.csv``
    one row per file: trial, id, stimulus, role, method, file, rating_key (the name the
    player writes in its results), gain, sr, cutoff_hz, removed_energy (anchor rows).
``README.txt``
    how to install and run it; docs/listening_test.md says more.

:func:`write_runs_bundle` does it for trained runs (``pnp listen --mushra``): the targets and
matches of a few test sounds (:func:`pnp_core.evaluation.listen.pick_sounds`, the sounds of
``pnp listen``) from each run's predictions.

Nothing here is random (the players randomise at run time), so the same inputs give the same
bytes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from pnp_core.errors import DataError
from pnp_core.evaluation.listen import PEAK, pair_scale, write_wav

#: the webMUSHRA release whose config format the bundle follows
WEBMUSHRA_VERSION = "1.4.3"
#: file stems (and rating names) of the non-method files of a trial
REFERENCE, HIDDEN_REFERENCE, ANCHOR = "reference", "hidden_reference", "anchor_lp35"
#: names a method may not take: our own files, and the condition ids webMUSHRA gives its
#: hidden reference and built-in anchors (its results could not tell them apart)
RESERVED = frozenset({REFERENCE, HIDDEN_REFERENCE, ANCHOR, "anchor35", "anchor70", "hiddenref"})
#: webMUSHRA's limits on a MUSHRA page when ``strict`` (the default, ITU-R BS.1534)
MAX_CONDITIONS, MAX_DURATION_S = 12, 12.0
#: BS.1534's low anchor, 3.5 kHz, is specified for full-band (44.1/48 kHz) audio: it keeps
#: 3500/22050 ≈ 16 % of a 44.1 kHz band
FULL_BAND_NYQUIST_HZ = 22050.0

MANIFEST_COLUMNS = ["trial", "id", "stimulus", "role", "method", "file", "rating_key", "gain",
                    "sr", "cutoff_hz", "removed_energy"]

INSTRUCTIONS = (
    "<p>Each page plays a <b>reference</b> sound and several <b>conditions</b>: sounds that "
    "try to imitate it. Rate how close each condition sounds to the reference, from 0 (very "
    "different) to 100 (indistinguishable). One condition is the reference itself and should "
    "get 100; one is a low-pass filtered, muffled version of it.</p>"
    "<p>Listen over headphones in a quiet room and set a comfortable level before you start; "
    "do not change it during the test. You can loop a part of a sound with the waveform "
    "slider.</p>")


def safe_name(method: str) -> str:
    """A method name as a file stem: lower case, runs of other characters than ``a-z 0-9 -``
    replaced by ``_``, no ``_``/``-`` at either end (``"PNP-JTFS (D-diag)"`` →
    ``"pnp-jtfs_d-diag"``). Lower case so that names differing only in case do not share a
    file on a case-insensitive file system (macOS, Windows): they are refused as duplicates.
    """
    return re.sub(r"[^a-z0-9-]+", "_", str(method).lower()).strip("_-")


def anchor_cutoff(sr: int, nominal_hz: float = 3500.0, *, scale: bool = True) -> float:
    """The low anchor's cutoff (Hz) at sample rate ``sr``.

    ``nominal_hz`` (BS.1534: 3.5 kHz) is kept while it is at most half the Nyquist frequency
    (every rate ≥ 14 kHz, e.g. the FTM synth's 22050 Hz). Above that the anchor would hardly
    differ from the reference, so with ``scale`` it keeps the fraction of the band it keeps in
    full-band audio: ``nominal_hz · (sr/2) / 22050`` (the 8192 Hz AM/FM synth: 650.2 Hz).
    With ``scale=False`` the nominal cutoff is used as long as it is below Nyquist.
    """
    nyquist = sr / 2.0
    cutoff = float(nominal_hz)
    if scale and cutoff > nyquist / 2.0:
        cutoff = cutoff * nyquist / FULL_BAND_NYQUIST_HZ
    if not (0.0 < cutoff < nyquist):
        raise DataError(f"anchor cutoff {cutoff:g} Hz is not between 0 and the Nyquist frequency "
                        f"{nyquist:g} Hz of sr={sr}; pass another anchor_cutoff_hz")
    return cutoff


def lowpass(x: np.ndarray, sr: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase brick-wall low-pass of ``x`` (..., N) float64 → same shape.

    The spectrum above ``cutoff_hz`` is set to zero in an FFT of length ≥ 2N (zero-padded,
    so the end of a sound does not wrap around onto its start), then the first N samples are
    kept. A brick wall leaves no energy above the cutoff (a Butterworth would leave its slope)
    and adds no phase shift; its ringing is a few ms at kHz cutoffs.
    """
    import scipy.fft

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    nfft = scipy.fft.next_fast_len(2 * n, real=True)
    spec = scipy.fft.rfft(x, nfft, axis=-1)
    spec[..., scipy.fft.rfftfreq(nfft, 1.0 / sr) > cutoff_hz] = 0.0
    return scipy.fft.irfft(spec, nfft, axis=-1)[..., :n]


def _check_inputs(targets, stimuli, sr, ids):
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or sr <= 0:
        raise DataError(f"sr must be a positive integer (Hz), got {sr!r}")
    targets = np.asarray(targets, dtype=np.float64)
    if targets.ndim != 2 or 0 in targets.shape:
        raise DataError(f"targets must be an array (n sounds, N samples) with n, N ≥ 1, got "
                        f"shape {targets.shape}")
    n, length = targets.shape
    if ids is None:
        ids = np.arange(n, dtype=np.int64)
    else:
        ids = np.asarray(ids)
        if ids.shape != (n,) or not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"ids must be {n} integers (one per target), got {ids.tolist()!r}")
        if np.unique(ids).size != n:
            raise DataError(f"ids must be distinct, got {ids.tolist()}")
        ids = ids.astype(np.int64)
    bad = np.flatnonzero(~np.isfinite(targets).all(axis=1))
    if bad.size:
        raise DataError(f"target of trial {bad[0] + 1} (id {ids[bad[0]]}) is not finite "
                        "(NaN or inf samples)")
    if not isinstance(stimuli, Mapping) or not stimuli:
        raise DataError("stimuli must map at least one method name to its (n, N) matched sounds, "
                        "got none")
    methods, seen = {}, {}
    for name, audio in stimuli.items():
        stem = safe_name(name)
        if not stem:
            raise DataError(f"method name {name!r} has no letter or digit to name its file by")
        if stem in RESERVED:
            raise DataError(f"method name {name!r} (file {stem}.wav) is reserved for the "
                            f"bundle's own files and the players' conditions; rename the method")
        if stem in seen:
            raise DataError(f"methods {seen[stem]!r} and {name!r} both give the file name "
                            f"{stem}.wav; rename one of them")
        seen[stem] = name
        audio = np.asarray(audio, dtype=np.float64)
        if audio.shape != targets.shape:
            raise DataError(f"method {name!r}: sounds of shape {audio.shape}, but targets have "
                            f"shape {targets.shape} (one match per target, same length)")
        bad = np.flatnonzero(~np.isfinite(audio).all(axis=1))
        if bad.size:
            raise DataError(f"method {name!r}: the sound of trial {bad[0] + 1} (id "
                            f"{ids[bad[0]]}) is not finite (NaN or inf samples)")
        methods[stem] = (str(name), audio)
    conditions = len(methods) + 2  # + hidden reference + anchor
    if conditions > MAX_CONDITIONS:
        raise DataError(f"{len(methods)} methods make {conditions} conditions per page (with the "
                        f"hidden reference and the anchor); webMUSHRA allows at most "
                        f"{MAX_CONDITIONS} (ITU-R BS.1534): pass at most {MAX_CONDITIONS - 2}")
    if length / sr > MAX_DURATION_S:
        raise DataError(f"sounds of {length / sr:.2f} s ({length} samples at {sr} Hz): webMUSHRA "
                        f"refuses MUSHRA stimuli longer than {MAX_DURATION_S:g} s; shorten them")
    return targets, methods, int(sr), ids


def _write_text(path: Path, text: str) -> None:
    from pnp_core.io import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _webmushra_config(trials, n, testname, test_id, prefix, randomize_trials) -> dict:
    pages = []
    for k, files in trials:
        pages.append({
            "type": "mushra",
            "id": f"trial{k}",
            "name": f"Sound {k} of {n}",
            "content": "Rate how close each condition sounds to the reference.",
            "showWaveform": True,
            "enableLooping": True,
            "reference": f"{prefix}/{files[REFERENCE]}",
            "createAnchor35": False,
            "createAnchor70": False,
            "randomize": True,
            "showConditionNames": False,
            "stimuli": {key: f"{prefix}/{rel}" for key, rel in files.items()
                        if key not in (REFERENCE, HIDDEN_REFERENCE)},
        })
    return {
        "testname": testname,
        "testId": test_id,
        "bufferSize": 2048,
        "stopOnErrors": True,
        "showButtonPreviousPage": True,
        "remoteService": "service/write.php",
        "pages": [
            {"type": "generic", "id": "instructions", "name": "Instructions",
             "content": INSTRUCTIONS},
            # a page list starting with "random" is shown in random order
            *([["random", *pages]] if randomize_trials and len(pages) > 1 else pages),
            {"type": "finish", "name": "Thank you",
             "content": "Thank you for taking part. Please enter your participant code and "
                        "send the results.",
             "popupContent": "Your results were sent. Thank you!",
             "showResults": False, "writeResults": True,
             "questionnaire": [{"type": "text", "label": "Participant code",
                                "name": "participant"}]},
        ],
    }


def _beaqlejs_config(trials, testname, prefix, randomize_trials) -> str:
    config = {
        "TestName": testname,
        "RateScalePng": "img/scale_abs.png", "RateScaleBgPng": "img/scale_abs_background.png",
        "RateMinValue": 0, "RateMaxValue": 100, "RateDefaultValue": 0,
        "ShowFileIDs": False, "ShowResults": False, "LoopByDefault": True,
        "EnableABLoop": True, "EnableOnlineSubmission": False, "BeaqleServiceURL": "",
        "SupervisorContact": "", "RandomizeTestOrder": bool(randomize_trials),
        "MaxTestsPerRun": -1, "RequireMaxRating": False, "AudioRoot": f"{prefix}/",
        "Testsets": [
            {"Name": f"Sound {k}", "TestID": f"trial{k}",
             "Files": {"Reference": files[REFERENCE],
                       **{key: rel for key, rel in files.items()
                          if key not in (REFERENCE, HIDDEN_REFERENCE)}}}
            for k, files in trials],
    }
    return ("// BeaqleJS MUSHRA config written by pnp_core.evaluation.mushra; BeaqleJS adds the hidden "
            "reference itself.\n// Load it from index.html and use `new MushraTest(TestConfig)`."
            "\nvar TestConfig = " + json.dumps(config, indent=2) + ";\n")


def _readme(n, methods, sr, length, cutoff, testname, test_id, prefix, beaqlejs_prefix) -> str:
    import textwrap

    names = ", ".join(f"{name} ({stem}.wav)" for stem, (name, _) in methods.items())
    conditions = textwrap.fill(
        f"Conditions of each trial: {names}; the hidden reference (webMUSHRA adds the "
        f"reference itself and reports it as \"reference\"); the anchor anchor_lp35.wav, the "
        f"target low-passed at {cutoff:.1f} Hz (zero-phase brick wall). All files of a trial "
        f"share one gain (manifest.csv, column gain): the loudest peaks at {PEAK}.", width=88)
    return f"""{testname}
{'=' * len(testname)}

A MUSHRA listening test (ITU-R BS.1534) written by pnp_core.evaluation.mushra for webMUSHRA
{WEBMUSHRA_VERSION} (https://github.com/audiolabs/webMUSHRA). {n} trial(s); sounds of
{length / sr:.2f} s at {sr} Hz, 16-bit mono WAV.

{conditions}

Run it with webMUSHRA
---------------------
1. Download webMUSHRA {WEBMUSHRA_VERSION} and unpack it (folder WEBMUSHRA below).
2. Copy this folder to WEBMUSHRA/{prefix}
   (config.yaml refers to the sounds as {prefix}/trial<k>/<file>.wav,
   relative to the webMUSHRA root):
       mkdir -p "$(dirname WEBMUSHRA/{prefix})"
       cp -r THIS_FOLDER WEBMUSHRA/{prefix}
3. Copy the config:  cp THIS_FOLDER/config.yaml WEBMUSHRA/configs/{test_id}.yaml
4. In WEBMUSHRA run  php -S localhost:8000  and open
       http://localhost:8000/?config={test_id}.yaml
   in Chrome (webMUSHRA's supported browser).
5. Ratings land in WEBMUSHRA/results/{test_id}/mushra.csv: one row per
   (session, trial_id, rating_stimulus, rating_score). Join them to manifest.csv on
   trial_id = "trial" + trial and rating_stimulus = rating_key to get the method and id.

The browser resamples the files to the sound card's rate (44.1/48 kHz) when it decodes them.

BeaqleJS instead: copy this folder to BEAQLEJS/{beaqlejs_prefix}, beaqlejs_config.js
to BEAQLEJS/config/, load it in index.html and use MushraTest.
"""


def write_mushra_bundle(targets: np.ndarray, stimuli: Mapping[str, np.ndarray], sr: int,
                        out_dir, *, ids: Sequence[int] | None = None,
                        anchor_cutoff_hz: float = 3500.0, scale_anchor: bool = True,
                        testname: str = "pnp: how close do the matches sound?",
                        test_id: str = "pnp_mushra",
                        resources_prefix: str = "configs/resources/pnp",
                        beaqlejs_prefix: str = "audio/pnp",
                        randomize_trials: bool = True) -> pd.DataFrame:
    """Write a MUSHRA listening-test bundle (see the module docstring) and return its manifest.

    Parameters
    ----------
    targets : (n, N) float
        The target sounds x = g(θ), one trial each.
    stimuli : mapping method name → (n, N) float
        Each method's matches x̂ = g(θ̂) of the same targets, in the same order. Names are
        readable (``"P-loss"``, ``"PNP-JTFS"``); files use :func:`safe_name`. At most 10
        methods (webMUSHRA's 12 conditions per page, with hidden reference and anchor).
    sr : sample rate of all sounds (Hz)
    out_dir : folder to write into (created; files of an earlier bundle with other methods
        stay, but config.yaml and manifest.csv list only this one's)
    ids : n distinct sample ids of the targets (default 0 … n−1), for the manifest
    anchor_cutoff_hz, scale_anchor : the anchor's nominal cutoff and whether to scale it
        for low sample rates (:func:`anchor_cutoff`)
    testname, test_id : shown to participants / results folder of webMUSHRA
    resources_prefix : where the bundle folder will sit relative to the webMUSHRA root; the
        paths in config.yaml are ``{resources_prefix}/trial{k}/{file}``
    beaqlejs_prefix : the same for BeaqleJS (its ``AudioRoot``)
    randomize_trials : present the trials in random order (webMUSHRA's ``random`` page
        group, BeaqleJS's ``RandomizeTestOrder``); conditions are always shuffled

    Returns
    -------
    pandas.DataFrame
        ``manifest.csv``: columns :data:`MANIFEST_COLUMNS`, one row per file, ``file``
        relative to ``out_dir``.

    Raises
    ------
    DataError
        Before anything is written: shapes that differ, non-finite samples (naming the method
        and trial), no method, method names that are reserved or share a file name, too many
        methods or too long sounds for webMUSHRA, an anchor cutoff outside (0, sr/2).
    """
    targets, methods, sr, ids = _check_inputs(targets, stimuli, sr, ids)
    cutoff = anchor_cutoff(sr, anchor_cutoff_hz, scale=scale_anchor)
    prefix = str(resources_prefix).strip().rstrip("/")
    beaqle_prefix = str(beaqlejs_prefix).strip().rstrip("/")
    if not prefix or not beaqle_prefix:
        raise DataError("resources_prefix and beaqlejs_prefix must not be empty")
    out_dir = Path(out_dir)
    n, length = targets.shape
    anchors = lowpass(targets, sr, cutoff)

    rows, trials = [], []
    for k in range(1, n + 1):
        x, anchor, i = targets[k - 1], anchors[k - 1], int(ids[k - 1])
        # one gain for the whole trial: pair_scale of the target against everything else
        gain = pair_scale(x, np.stack([anchor] + [a[k - 1] for _, a in methods.values()]))
        energy = float(np.sum(x * x))
        removed = float(np.sum((x - anchor) ** 2)) / energy if energy > 0 else 0.0
        entries = [(REFERENCE, "reference", "", x, ""),
                   (HIDDEN_REFERENCE, "hidden_reference", "", x, REFERENCE)]
        entries += [(stem, "method", name, audio[k - 1], stem)
                    for stem, (name, audio) in methods.items()]
        entries.append((ANCHOR, "anchor", "", anchor, ANCHOR))
        files = {}
        for stem, role, method, audio, rating_key in entries:
            rel = f"trial{k}/{stem}.wav"
            write_wav(out_dir / rel, audio * gain, sr)
            files[stem] = rel
            rows.append({"trial": k, "id": i, "stimulus": stem, "role": role, "method": method,
                         "file": rel, "rating_key": rating_key, "gain": gain, "sr": sr,
                         "cutoff_hz": cutoff if role == "anchor" else math.nan,
                         "removed_energy": removed if role == "anchor" else math.nan})
        trials.append((k, files))

    import yaml

    from pnp_core.io import write_csv

    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_csv(manifest, out_dir / "manifest.csv")
    _write_text(out_dir / "README.txt", _readme(n, methods, sr, length, cutoff, testname,
                                                test_id, prefix, beaqle_prefix))
    _write_text(out_dir / "beaqlejs_config.js",
                _beaqlejs_config(trials, testname, beaqle_prefix, randomize_trials))
    config = _webmushra_config(trials, n, testname, test_id, prefix, randomize_trials)
    header = (f"# webMUSHRA {WEBMUSHRA_VERSION} config written by pnp_core.evaluation.mushra "
              f"(docs/listening_test.md).\n# Sound paths are relative to the webMUSHRA root: "
              f"copy the bundle folder to {prefix}/.\n")
    _write_text(out_dir / "config.yaml",
                header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=100))
    return manifest


def write_runs_bundle(spec, predictions_paths: Sequence, labels: Sequence[str], n_sounds: int,
                      out_dir) -> pd.DataFrame:
    """The MUSHRA bundle of trained runs: one stimulus per run (``labels``, e.g. Table 1's
    method names), on ``n_sounds`` test sounds picked as ``pnp listen`` picks them.

    ``predictions_paths``: the runs' ``predictions.parquet`` (same synthesizer, same test
    fold: the ids and true θ must agree). Returns the manifest (see
    :func:`write_mushra_bundle`).
    """
    from pnp_core.evaluation.listen import pair_audio, pick_sounds, read_predictions

    if len(predictions_paths) != len(labels):
        raise DataError(f"{len(predictions_paths)} predictions file(s) but {len(labels)} "
                        "label(s): give one label per run")
    if not predictions_paths:
        raise DataError("no runs given: the bundle needs at least one method")
    synth = spec.synth
    preds = [read_predictions(p, synth.space) for p in predictions_paths]
    ids = pick_sounds(preds[0].index.to_numpy(), n_sounds)
    true_cols = [f"theta_{p}" for p in synth.space.names]
    for path, pred in zip(predictions_paths[1:], preds[1:]):
        if not np.isin(ids, pred.index.to_numpy()).all() or not np.allclose(
                pred.loc[ids, true_cols].to_numpy(), preds[0].loc[ids, true_cols].to_numpy(),
                rtol=0, atol=0):
            raise DataError(f"{path}: not the test sounds of {predictions_paths[0]} (other ids "
                            "or true θ): the runs must share one test fold")
    targets, stimuli = None, {}
    for label, pred in zip(labels, preds):
        target, match = pair_audio(synth, pred, ids)
        targets = target if targets is None else targets
        stimuli[label] = match
    return write_mushra_bundle(targets, stimuli, synth.sr, out_dir, ids=ids)


__all__ = ["write_mushra_bundle", "write_runs_bundle", "safe_name", "anchor_cutoff", "lowpass", "WEBMUSHRA_VERSION",
           "REFERENCE", "HIDDEN_REFERENCE", "ANCHOR", "RESERVED", "MANIFEST_COLUMNS",
           "MAX_CONDITIONS", "MAX_DURATION_S"]
