"""Audio distances of pnp_core.evaluation.audio_metrics against values computed another way.

Every expected value comes from an analytic formula or from a small numpy implementation
written here (own STFT framing, own DTW recursion), not from the librosa call the module makes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

librosa = pytest.importorskip("librosa")

from pnp_core.evaluation import audio_metrics as am  # noqa: E402


def sine(freq, sr, n, amp=1.0, phase=0.0):
    return amp * np.sin(2.0 * np.pi * freq * np.arange(n) / sr + phase)


def burst(freq, sr, n, start, length):
    """A Hann-windowed tone of `length` samples starting at sample `start`, zero elsewhere."""
    x = np.zeros(n)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)
    x[start:start + length] = w * sine(freq, sr, length)
    return x


# ---------------------------------------------------------------------------------- log-mel


def hand_logmel(x, sr, n_fft):
    """log(mel(|STFT|) + ε) with numpy framing: centred, zero padded, periodic Hann, hop n/4."""
    hop = n_fft // 4
    y = np.pad(x, n_fft // 2)
    n_frames = 1 + (y.size - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.stack([y[k * hop:k * hop + n_fft] for k in range(n_frames)], axis=1)
    mag = np.abs(np.fft.rfft(frames * window[:, None], axis=0))
    mel = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=am.n_mels(float(sr), n_fft))
    return np.log(mel @ mag + am.LOGMEL_EPS)


def test_logmel_matches_a_numpy_stft_at_every_scale():
    sr, n = 8192, 3000
    rng = np.random.default_rng(0)
    x_hat, x = rng.standard_normal(n), sine(440.0, sr, n) * np.exp(-np.arange(n) / 800)
    scales = am.logmel_scales(n)
    assert scales == (2048, 1024, 512, 256, 128, 64)
    d = []
    for s in scales:
        np.testing.assert_allclose(am.logmel_spectrogram(x, sr, s), hand_logmel(x, sr, s),
                                   rtol=0, atol=1e-9)
        d.append(np.mean(np.abs(hand_logmel(x_hat, sr, s) - hand_logmel(x, sr, s))))
    assert am.logmel_mss_distance(x_hat, x, sr) == pytest.approx(np.mean(d), rel=1e-10)


@pytest.mark.parametrize("c", [0.5, 3.0])
def test_logmel_of_a_scaled_copy_is_log_c(c):
    # mel(|STFT(c·x)|) = c·mel(|STFT(x)|); loud white noise fills every band, so mel ≫ ε and
    # |log(c·S + ε) − log(S + ε)| = |log c| up to ~ε/S
    sr, n = 22050, 4096
    x = 100.0 * np.random.default_rng(1).standard_normal(n)
    assert am.logmel_mss_distance(c * x, x, sr) == pytest.approx(abs(math.log(c)), abs=1e-4)
    assert am.logmel_mss_distance(x, c * x, sr) == pytest.approx(abs(math.log(c)), abs=1e-4)


def test_logmel_scales_drop_fft_sizes_longer_than_the_signal():
    assert am.logmel_scales(700) == (512, 256, 128, 64)
    with pytest.raises(ValueError, match="shorter than the smallest FFT size"):
        am.logmel_scales(63)


@pytest.mark.parametrize("sr", [4096, 8192, 22050])
def test_mel_band_counts_are_documented_and_have_no_empty_band(sr):
    counts = [am.n_mels(float(sr), s) for s in am.LOGMEL_FFT_SIZES]
    assert counts == [128, 128, 128, 64, 32, 16]
    for s, m in zip(am.LOGMEL_FFT_SIZES, counts):
        assert np.all(librosa.filters.mel(sr=sr, n_fft=s, n_mels=m).max(axis=1) > 0)


# ------------------------------------------------------------------------------- MFCC + DTW


def hand_dtw(A, B):
    """D[i,j] = ‖a_i − b_j‖ + min(D[i−1,j−1], D[i−1,j], D[i,j−1]); cost / cells on the path."""
    n, m = A.shape[1], B.shape[1]
    C = np.sqrt(((A[:, :, None] - B[:, None, :]) ** 2).sum(axis=0))
    D = np.full((n + 1, m + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            D[i, j] = C[i - 1, j - 1] + min(D[i - 1, j - 1], D[i - 1, j], D[i, j - 1])
    i, j, cells = n, m, 1
    while (i, j) != (1, 1):
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min(steps, key=lambda ij: D[ij])
        cells += 1
    return D[n, m] / cells


def test_dtw_cost_of_tiny_sequences_by_hand():
    # a repeated frame costs nothing: [0 1 2] aligns with [0 0 1 2 2] exactly
    assert am.dtw_cost(np.array([[0.0, 1.0, 2.0]]), np.array([[0.0, 0, 1, 2, 2]])) == 0.0
    # [0 2] against [1]: both cells cost 1, path of 2 cells → 2 / 2
    assert am.dtw_cost(np.array([[0.0, 2.0]]), np.array([[1.0]])) == pytest.approx(1.0)
    # 2-D frames: (0,0),(3,4) against (0,0): costs 0 and 5 → 5 / 2
    assert am.dtw_cost(np.array([[0.0, 3.0], [0.0, 4.0]]),
                       np.array([[0.0], [0.0]])) == pytest.approx(2.5)
    # the optimal path is longer than either sequence: frames (0,0) (0,0) (3,0) against
    # (0,1) (3,1) (3,1) cost ≥ 1 per cell; the diagonal costs 1 + √10 + 1, the path
    # (1,1) (2,1) (3,2) (3,3) four cells of 1 → 4 / 4 (not 4 / 3)
    A = np.array([[0.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    B = np.array([[0.0, 3.0, 3.0], [1.0, 1.0, 1.0]])
    assert am.dtw_cost(A, B) == pytest.approx(1.0, rel=1e-12)
    assert am.dtw_cost(A, B) == pytest.approx(hand_dtw(A, B), rel=1e-12)


def test_dtw_cost_matches_a_hand_written_recursion():
    rng = np.random.default_rng(2)
    for n, m in [(5, 7), (9, 4), (6, 6)]:
        A, B = rng.standard_normal((3, n)), rng.standard_normal((3, m))
        assert am.dtw_cost(A, B) == pytest.approx(hand_dtw(A, B), rel=1e-12)


def test_dtw_cost_rejects_mismatched_feature_sizes():
    with pytest.raises(ValueError, match="feature matrices"):
        am.dtw_cost(np.zeros((3, 4)), np.zeros((2, 4)))


def test_mfcc_dtw_is_zero_for_identical_sounds_and_small_for_a_time_shift():
    sr, n = 8192, 8192
    x = burst(600.0, sr, n, 1000, 3000)
    shifted = burst(600.0, sr, n, 1800, 3000)  # the same tone 98 ms later
    other = burst(1500.0, sr, n, 1000, 3000) + 0.05 * np.random.default_rng(3).standard_normal(n)
    assert am.mfcc_dtw_distance(x, x, sr) == 0.0
    d_shift, d_other = am.mfcc_dtw_distance(shifted, x, sr), am.mfcc_dtw_distance(other, x, sr)
    assert d_shift < 0.25 * d_other
    # without warping the shift costs much more: frame-by-frame distance of the same MFCCs
    M_s, M_x = am.mfcc(shifted, sr), am.mfcc(x, sr)
    assert d_shift < 0.5 * np.mean(np.linalg.norm(M_s - M_x, axis=0))
    assert am.mfcc(x, sr).shape == (20, 1 + n // (am.analysis_n_fft(sr, n) // 4))


# ------------------------------------------------------------------------------------- f0


@pytest.mark.parametrize("sr", [22050, 4096])
def test_f0_error_of_sines_a_known_interval_apart(sr):
    n = sr // 2
    for cents in (100.0, 50.0):
        f_hat = 440.0 * 2.0 ** (cents / 1200.0)
        err = am.f0_error_cents(sine(f_hat, sr, n, 0.5), sine(440.0, sr, n, 0.5), sr)
        assert err == pytest.approx(cents, abs=3.0)
    assert am.f0_error_cents(sine(440.0, sr, n), sine(440.0, sr, n), sr) == 0.0


def test_f0_error_is_nan_without_pitch():
    sr, n = 8192, 8192
    rng = np.random.default_rng(4)
    noise, noise2, tone = rng.standard_normal(n), rng.standard_normal(n), sine(300.0, sr, n)
    silent = np.zeros(n)
    assert math.isnan(am.f0_error_cents(noise, noise2, sr))
    assert math.isnan(am.f0_error_cents(noise, tone, sr))
    assert math.isnan(am.f0_error_cents(silent, tone, sr))
    assert math.isnan(am.f0_error_cents(tone, silent, sr))
    _, voiced = am.f0_tracks(np.stack([noise, silent, tone]), sr)
    assert voiced[0].sum() < am.F0_MIN_VOICED_FRAMES and not voiced[1].any()
    assert voiced[2].sum() >= voiced.shape[1] - 2  # all but the edge frames


def test_f0_ignores_frames_40_db_below_the_peak():
    # a loud 440 Hz half, then the same pitch 60 dB down against a 600 Hz quiet half: only the
    # loud frames count, so the error is that of the loud half (0), not 6 semitones
    sr, n = 8192, 8192
    half = n // 2
    loud = sine(440.0, sr, half)
    x = np.concatenate([loud, 1e-3 * sine(440.0, sr, half)])
    x_hat = np.concatenate([loud, 1e-3 * sine(600.0, sr, half)])
    assert am.f0_error_cents(x_hat, x, sr) == 0.0


def test_f0_settings_per_rate():
    s = am.f0_settings(22050)
    assert (s["upsample"], s["frame_length"], s["hop_length"]) == (1, 1024, 706)
    s = am.f0_settings(4096)
    assert (s["upsample"], s["sr"], s["frame_length"], s["fmax"]) == (2, 8192, 512, 0.45 * 4096)
    assert am.f0_settings(22050)["fmax"] == am.F0_FMAX


# ------------------------------------------------------------------------------------ RMS


def test_rms_distance_of_two_amplitudes_is_their_level_difference():
    # x̂ = (a/b)·x frame by frame, so every frame differs by 20 log10(a/b) dB
    sr, n, a, b = 8192, 4096, 0.8, 0.1
    d = am.rms_envelope_distance(sine(128.0, sr, n, a), sine(128.0, sr, n, b), sr)
    assert d == pytest.approx(abs(20.0 * math.log10(a / b)), rel=1e-12)


def test_rms_envelope_of_a_sine_is_a_over_root_two_on_interior_frames():
    # frame 512 at 8192 Hz holds exactly 8 periods of 128 Hz: RMS = a/√2 on every frame that
    # lies wholly inside the signal (centred frames k with k·hop ± 256 within [0, N))
    sr, n, a = 8192, 4096, 0.3
    frame = am.analysis_n_fft(sr, n)
    hop = frame // 4
    assert frame == 512
    env = am.rms_envelope_db(sine(128.0, sr, n, a, phase=0.3), sr)
    interior = [k for k in range(env.size) if k * hop >= frame // 2 and k * hop + frame // 2 <= n]
    np.testing.assert_allclose(env[interior], 20.0 * math.log10(a / math.sqrt(2.0)), atol=1e-9)
    assert env.size == 1 + n // hop


def test_rms_distance_floors_silence_at_minus_100_db():
    sr, n = 8192, 4096
    silent = np.zeros(n)
    assert am.rms_envelope_distance(silent, silent, sr) == 0.0
    d = am.rms_envelope_distance(silent, sine(128.0, sr, n), sr)
    assert math.isfinite(d) and 90.0 < d < 100.0 + 20.0 * math.log10(1.0 / math.sqrt(2.0)) + 1e-9


# ---------------------------------------------------------------------------------- batch


def test_audio_metrics_batch_columns_and_values():
    sr, n = 8192, 4096
    rng = np.random.default_rng(5)
    x = np.stack([sine(330.0, sr, n, 0.5), rng.standard_normal(n), np.zeros(n)])
    x_hat = np.stack([sine(330.0 * 2 ** (100 / 1200), sr, n, 0.25), rng.standard_normal(n),
                      np.zeros(n)])
    out = am.audio_metrics(x_hat, x, sr)
    assert tuple(out) == am.COLUMNS == ("logmel_dist", "mfcc_dtw_dist", "f0_err_cents",
                                        "rms_dist")
    assert set(am.COLUMN_DOCS) == set(am.COLUMNS)
    for col, fn in [("logmel_dist", am.logmel_mss_distance),
                    ("mfcc_dtw_dist", am.mfcc_dtw_distance),
                    ("f0_err_cents", am.f0_error_cents), ("rms_dist", am.rms_envelope_distance)]:
        v = out[col]
        assert v.shape == (3,) and v.dtype == np.float64
        np.testing.assert_array_equal(v, [fn(x_hat[i], x[i], sr) for i in range(3)])
    assert out["f0_err_cents"][0] == pytest.approx(100.0, abs=3.0)
    assert np.isnan(out["f0_err_cents"][1:]).all()
    # amplitudes 0.5 and 0.25 at different pitches: 6.02 dB up to the frames' partial periods
    assert out["rms_dist"][0] == pytest.approx(20.0 * math.log10(2.0), abs=0.02)
    for col in ("logmel_dist", "mfcc_dtw_dist", "rms_dist"):  # silent pair: finite, 0
        assert out[col][2] == 0.0 and np.isfinite(out[col]).all()
    same = am.audio_metrics(x, x, sr)
    for col in ("logmel_dist", "mfcc_dtw_dist", "rms_dist"):
        np.testing.assert_array_equal(same[col], 0.0)
    assert same["f0_err_cents"][0] == 0.0


def test_audio_metrics_silent_against_sound_is_finite_without_warnings(recwarn):
    sr, n = 8192, 2048
    x_hat, x = np.zeros((1, n)), sine(440.0, sr, n)[None]
    out = am.audio_metrics(x_hat, x, sr)
    for col in ("logmel_dist", "mfcc_dtw_dist", "rms_dist"):
        assert np.isfinite(out[col]).all() and out[col][0] > 0
    assert np.isnan(out["f0_err_cents"][0])
    assert not [w for w in recwarn if issubclass(w.category, (UserWarning, RuntimeWarning))]


def test_audio_metrics_rejects_bad_input():
    sr, n = 8192, 2048
    x = np.zeros((2, n))
    with pytest.raises(ValueError, match="same shape"):
        am.audio_metrics(x, x[:, :-1], sr)
    bad = x.copy()
    bad[1, 7] = np.nan
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        am.audio_metrics(bad, x, sr)
    with pytest.raises(ValueError, match="unknown columns"):
        am.audio_metrics(x, x, sr, columns=("jtfs_dist",))
    with pytest.raises(ValueError, match="same length"):
        am.rms_envelope_distance(x[0], x[0, :-1], sr)
