"""The per-octave LSD, the level bias on non-empty reference cells, the onset correlation above the cutoff
and the codec hole scores (issue 25), against analytic values."""

import numpy as np
import pytest

from a2sb import metrics

SR = 44100
HALF = 2 * np.log10(2)  # LSD (bels) of a gain of one half


def band_noise(seconds, low, high, seed=0, std=0.1):
    """White noise with every FFT bin outside [low, high) Hz zeroed (whole signal at once)."""
    n = int(seconds * SR)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SR)
    spectrum[(freqs < low) | (freqs >= high)] = 0
    x = np.fft.irfft(spectrum, n)
    return std * x / x.std()


def fade(x, ramp_s=0.1):
    """Raised-sine fade-in and fade-out: no broadband splatter from the ends."""
    ramp = int(ramp_s * SR)
    envelope = np.ones(len(x))
    envelope[:ramp] = np.sin(np.linspace(0, np.pi / 2, ramp)) ** 2
    envelope[-ramp:] = envelope[:ramp][::-1]
    return envelope * x


def faded_sine(seconds, freq, amplitude=0.1):
    return fade(amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR))


def test_octave_lsd_is_the_lsd_of_each_octave_band():
    ref = band_noise(1.0, 20, SR / 2)
    assert metrics.octave_lsd(ref, 0.5 * ref, 4000) == pytest.approx([HALF] * 3, abs=1e-3)
    # Halve only 8-16 kHz (octave 2 of a 4 kHz cutoff): octave 2 scores about HALF, the others almost 0
    # (a couple of bins at each edge see the change through the window's main lobe).
    spectrum = np.fft.rfft(ref)
    freqs = np.fft.rfftfreq(len(ref), 1 / SR)
    spectrum[(freqs >= 8000) & (freqs < 16000)] *= 0.5
    est = np.fft.irfft(spectrum, len(ref))
    oct1, oct2, oct3 = metrics.octave_lsd(ref, est, 4000)
    assert oct2 == pytest.approx(HALF, abs=0.03)
    assert oct1 < 0.1 and oct3 < 0.1
    scores = metrics.compute_metrics(ref, est, cutoff_hz=4000)
    assert [scores[f"lsd_oct{k}"] for k in (1, 2, 3)] == pytest.approx([oct1, oct2, oct3], rel=1e-9)
    assert "lsd_oct4" not in scores


def test_bias_on_nonempty_cells_ignores_what_the_reference_lacks():
    # The reference has a 5 kHz and a 10 kHz tone (octaves 1 and 2 of a 4 kHz cutoff) and nothing else; the
    # estimate adds loud noise at 12-15.9 kHz, where the reference is empty, and is otherwise identical.
    tones = faded_sine(2.0, 5000) + faded_sine(2.0, 10000)
    ref = np.stack([tones, 0.8 * tones])
    noise = fade(band_noise(2.0, 12000, 15900, seed=1, std=0.3))
    est = ref + np.stack([noise, noise])
    old = metrics.level_bias(ref, est, 4000)
    new = metrics.level_bias(ref, est, 4000, nonempty=True)
    assert old[1] > 10  # the old bias counts the noise against the tone's power
    assert new[:2] == pytest.approx([0.0, 0.0], abs=0.01)
    assert np.isnan(new[2])  # 16-22.05 kHz: the reference is digitally silent there
    scores = metrics.compute_metrics(ref, est, cutoff_hz=4000)
    assert scores["bias_ne_db_oct2"] == pytest.approx(0.0, abs=0.01) and scores["bias_db_oct2"] > 10
    assert scores["bias_ne_db"] == pytest.approx(0.0, abs=0.01)
    # A gain of one half on the non-empty cells: 10·log10(1/4) = -6.02 dB in each non-empty octave.
    half = metrics.level_bias(ref, 0.5 * ref + np.stack([noise, noise]), 4000, nonempty=True)
    assert half[:2] == pytest.approx([-6.0206, -6.0206], abs=0.01)


def clicks(times, seconds=2.0, seed=0):
    x = 1e-3 * np.random.default_rng(seed).standard_normal(int(seconds * SR))
    for t in times:
        x[int(t * SR)] += 0.5
    return x


def test_onset_correlation_of_clicks():
    ref = clicks([0.25, 0.7, 1.1, 1.6])
    assert metrics.onset_correlation(ref, ref, 4000) == pytest.approx(1.0, abs=1e-9)
    assert metrics.onset_correlation(ref, 0.5 * ref, 4000) == pytest.approx(1.0, abs=1e-3)  # gain: same onsets
    elsewhere = clicks([0.45, 0.9, 1.35, 1.8], seed=1)
    assert abs(metrics.onset_correlation(ref, elsewhere, 4000)) < 0.2
    assert metrics.onset_correlation(ref, np.zeros_like(ref), 4000) == 0.0  # no onsets at all
    scores = metrics.compute_metrics(ref, elsewhere, cutoff_hz=4000)
    assert scores["onset_corr"] == pytest.approx(metrics.onset_correlation(ref, elsewhere, 4000), rel=1e-12)


def test_codec_hole_scores():
    # The "decode" lacks 2-3 kHz everywhere: with a cutoff of 8 kHz that is 1000/8000 of the bins below it.
    ref = band_noise(1.0, 0, SR / 2)
    spectrum = np.fft.rfft(ref)
    freqs = np.fft.rfftfreq(len(ref), 1 / SR)
    spectrum[(freqs >= 2000) & (freqs < 3000)] = 0
    decoded = np.fft.irfft(spectrum, len(ref))
    scores = metrics.codec_scores(ref, decoded, decoded, 8000)
    assert scores["hole_share"] == pytest.approx(1000 / 8000, abs=0.01)
    assert scores["hole_lsd"] > 2  # the holes left empty
    filled = metrics.codec_scores(ref, decoded, 0.5 * ref, 8000)
    assert filled["hole_share"] == scores["hole_share"]  # a property of the decode
    assert filled["hole_lsd"] == pytest.approx(HALF, abs=1e-3)
    assert filled["lsd_below"] == pytest.approx(HALF, abs=1e-3)
    assert metrics.codec_scores(ref, ref, ref, 8000) == {"lsd_below": pytest.approx(0, abs=1e-6),
                                                         "hole_share": 0.0, "hole_lsd": pytest.approx(np.nan,
                                                                                                      nan_ok=True)}
