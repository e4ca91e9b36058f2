import numpy as np
import pytest

from a2sb import baselines, metrics
from a2sb.degrade import insert_gaps, lowpass
from a2sb.errors import A2SBError

SR = 44100


def harmonic(seconds=1.0, f0=220.0, channels=1):
    """Sawtooth-like tone (1/k partials up to Nyquist) with a slow tremolo."""
    t = np.arange(int(SR * seconds)) / SR
    x = sum(np.sin(2 * np.pi * f0 * k * t + k) / k for k in range(1, int(SR / 2 / f0)))
    x = 0.1 * x * (1 + 0.3 * np.sin(2 * np.pi * 2 * t))
    return np.tile(x, (channels, 1)).astype(np.float32)


def band_energy(x, low, high):
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    return np.sum(np.abs(np.fft.rfft(x, axis=-1))[..., (freqs > low) & (freqs <= high)] ** 2)


def test_lowpassed_is_identity():
    x = harmonic(0.2, channels=2)
    np.testing.assert_array_equal(baselines.bwe_lowpassed(x, SR, cutoff_hz=4000), x)


def test_sbr_keeps_known_band_and_fills_high_band_at_the_envelope_level():
    clean = harmonic(1.0, channels=2)
    degraded = lowpass(clean, SR, 4000, kind="butter")
    restored = baselines.bwe_sbr(degraded, SR, cutoff_hz=4000)
    assert restored.shape == degraded.shape and restored.dtype == np.float32

    # Known band (below 0.9·fc = 3.6 kHz) returned exactly (up to float32 rounding).
    added = restored.astype(np.float64) - degraded
    freqs = np.fft.rfftfreq(clean.shape[-1], 1 / SR)
    low_leak = np.abs(np.fft.rfft(added, axis=-1))[:, freqs <= 3600].max()
    assert low_leak < 1e-4 * np.abs(np.fft.rfft(degraded, axis=-1)).max()
    # The transition band 3.6-4 kHz, attenuated by the lowpass, is topped up towards the clean level.
    assert band_energy(degraded, 3600, 4000) < band_energy(restored, 3600, 4000) < band_energy(clean, 3600, 4000)

    # 1/k partials fall by exactly 6 dB/octave, the fitted slope; the copies follow that line bent down
    # by 3 dB/octave² above 3.6 kHz, so each band's level is the clean one times the bend's mean gain.
    clean_power = np.abs(np.fft.rfft(clean, axis=-1)) ** 2
    bend = 10 ** (-3 * np.maximum(0, np.log2(np.maximum(freqs, 1) / 3600)) ** 2 / 10)
    for low, high in [(4000, 8000), (8000, 16000), (16000, 22050)]:
        band = (freqs > low) & (freqs <= high)
        expected_db = 10 * np.log10(np.sum(clean_power[:, band] * bend[band]) / np.sum(clean_power[:, band]))
        ratio_db = 10 * np.log10(band_energy(restored, low, high) / band_energy(clean, low, high))
        assert abs(ratio_db - expected_db) < 1.0, (low, high, ratio_db, expected_db)
    assert band_energy(degraded, 6000, 22050) < 1e-6 * band_energy(clean, 6000, 22050)
    # And it is much closer to the clean spectrum than the lowpassed input.
    assert metrics.lsd_high(clean, restored, 4000) < 0.5 * metrics.lsd_high(clean, degraded, 4000)


def test_sbr_needs_a_cutoff_and_passes_through_at_nyquist():
    x = harmonic(0.2)
    with pytest.raises(A2SBError):
        baselines.bwe_sbr(x, SR)
    np.testing.assert_array_equal(baselines.bwe_sbr(x, SR, cutoff_hz=SR / 2), x)
    with pytest.raises(A2SBError, match="44100"):
        baselines.bwe_sbr(x, 48000, cutoff_hz=4000)


def test_silence_zeroes_gaps_only():
    x = harmonic(0.5)
    y = baselines.inpaint_silence(x, SR, gaps=[(0.1, 0.2)])
    assert np.all(y[:, 4410:8820] == 0)
    np.testing.assert_array_equal(y[:, :4410], x[:, :4410])
    with pytest.raises(A2SBError):
        baselines.inpaint_silence(x, SR)


def test_burg_recovers_an_ar2_model():
    # x[n] = 1.6 x[n-1] - 0.8 x[n-2] + e[n]  ->  A(z) = 1 - 1.6 z^-1 + 0.8 z^-2
    rng = np.random.default_rng(0)
    e = rng.standard_normal(20000)
    x = np.zeros_like(e)
    for n in range(2, len(x)):
        x[n] = 1.6 * x[n - 1] - 0.8 * x[n - 2] + e[n]
    np.testing.assert_allclose(baselines.burg_lpc(x, 2), [1.0, -1.6, 0.8], atol=0.02)


@pytest.mark.parametrize("freqs", [(440.0,), (440.0, 660.0, 1234.0)])
def test_lpc_fills_short_gap_in_tonal_signal(freqs):
    t = np.arange(SR) / SR
    clean = sum(0.3 * np.sin(2 * np.pi * f * t + i) for i, f in enumerate(freqs))[None]
    gaps = [(0.5, 0.52)]  # 20 ms
    restored = baselines.inpaint_lpc(insert_gaps(clean, SR, gaps), SR, gaps=gaps)
    assert metrics.gap_snr(clean, restored, gaps) > 20
    np.testing.assert_array_equal(restored[:, :22050], clean[:, :22050].astype(np.float32))


def test_lpc_gap_at_file_start_uses_right_context_only():
    t = np.arange(SR // 2) / SR
    clean = 0.3 * np.sin(2 * np.pi * 330 * t)
    gaps = [(0.0, 0.01)]
    restored = baselines.inpaint_lpc(insert_gaps(clean, SR, gaps), SR, gaps=gaps)
    assert restored.ndim == 1
    assert metrics.gap_snr(clean, restored, gaps) > 20


def test_similarity_recovers_a_repeated_passage():
    rng = np.random.default_rng(1)
    motif = 0.1 * rng.standard_normal(int(0.8 * SR))

    def filler(seconds):
        return 0.1 * rng.standard_normal(int(seconds * SR))

    mono = np.concatenate([filler(0.3), motif, filler(0.5), motif, filler(0.3)])
    clean = np.stack([mono, -0.5 * mono]).astype(np.float32)
    second = 0.3 + 0.8 + 0.5
    gaps = [(second + 0.3, second + 0.5)]  # inside the second copy, with 0.3 s of motif on each side
    restored = baselines.inpaint_similarity(insert_gaps(clean, SR, gaps), SR, gaps=gaps)
    assert min(metrics.gap_snr(clean, restored, gaps, per_channel=True)) > 60
    np.testing.assert_allclose(restored, clean, atol=1e-5)
    # LPC cannot predict noise: the similarity search is what recovers it.
    assert metrics.gap_snr(clean, baselines.inpaint_lpc(insert_gaps(clean, SR, gaps), SR, gaps=gaps), gaps) < 3


def test_similarity_without_candidates_falls_back_to_lpc():
    t = np.arange(int(0.3 * SR)) / SR
    clean = (0.3 * np.sin(2 * np.pi * 500 * t))[None]
    gaps = [(0.1, 0.11)]  # the recording is too short to hold another passage with both contexts
    restored = baselines.inpaint_similarity(insert_gaps(clean, SR, gaps), SR, gaps=gaps)
    assert metrics.gap_snr(clean, restored, gaps) > 20
