import numpy as np
import pytest
import torch

from a2sb import sbr
from a2sb.errors import A2SBError
from a2sb.representation import HOP, N_FFT, SAMPLE_RATE, stft

BIN_HZ = SAMPLE_RATE / N_FFT
FREQS = np.arange(N_FFT // 2 + 1) * BIN_HZ


def reference_layout(cutoff_hz):
    """The band layout from its definition, by frequency tests on every bin (float64)."""
    known = FREQS < 0.9 * cutoff_hz
    top = int(np.argmin(known))  # first bin at or above 0.9·fc
    octave = int(np.sum((FREQS >= 0.45 * cutoff_hz) & known))
    width = max(4, 4 * int(np.floor(octave / 4 + 0.5)))
    targets = np.arange(top, len(FREQS))
    sources = top - width + (targets - top) % width
    replaced = FREQS > cutoff_hz
    return top, sources, targets, replaced


def envelope_db(freq, slope, cutoff_hz):
    """L(f) without its intercept: the line plus the -3 dB/octave² bend above 0.9·fc."""
    octave = np.log2(freq)
    return slope * octave - 3 * np.maximum(0, octave - np.log2(0.9 * cutoff_hz)) ** 2


def copy_gain_db(target, source, slope, cutoff_hz):
    """L(f_target) - L(f_source) for bin indices."""
    return envelope_db(FREQS[target], slope, cutoff_hz) - envelope_db(FREQS[source], slope, cutoff_hz)


def reference_sbr(spec, cutoff_hz, slope):
    """sbr_spectrum written out bin by bin in numpy (one 2-D spectrum, one slope)."""
    top, sources, targets, replaced = reference_layout(cutoff_hz)
    out = spec.copy()
    for m, s in zip(targets, sources):
        copy = spec[s] * 10 ** (copy_gain_db(m, s, slope, cutoff_hz) / 20)
        if replaced[m]:
            out[m] = copy
        else:  # transition band: top up towards the copy where the input is weaker
            for t in range(spec.shape[1]):
                x, c = abs(spec[m, t]) ** 2, abs(copy[t]) ** 2
                out[m, t] = spec[m, t] + copy[t] * (np.sqrt(max(0.0, 1 - x / c)) if c > 0 else 0.0)
    return out


def tilted_noise(slope_db_per_octave, seconds=8.0, seed=0):
    """Stationary Gaussian noise whose power spectrum is the line slope·log2 f (dB), flat below 20 Hz."""
    n = int(seconds * SAMPLE_RATE)
    rng = np.random.default_rng(seed)
    f = np.maximum(np.fft.rfftfreq(n, 1 / SAMPLE_RATE), 20.0)
    shape = 10 ** (slope_db_per_octave * np.log2(f / 1000) / 20)
    wave = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * shape, n=n)
    return torch.from_numpy(0.1 * wave / wave.std())


def interior_frames(spec):
    """Frames that do not reach into the reflect padding at either end."""
    length = HOP * (spec.shape[-1] - 1)
    return slice(N_FFT // HOP // 2, (length - N_FFT // 2) // HOP + 1)


@pytest.mark.parametrize("shift", [4, 8, 84])
def test_a_shift_by_a_multiple_of_4_bins_is_the_stft_of_the_shifted_sinusoid(shift):
    t = torch.arange(int(0.5 * SAMPLE_RATE), dtype=torch.float64) / SAMPLE_RATE
    f0 = 3001.7  # between bins, far from DC so the negative-frequency image is negligible
    spec = stft(torch.cos(2 * torch.pi * f0 * t + 0.4))
    shifted = stft(torch.cos(2 * torch.pi * (f0 + shift * BIN_HZ) * t + 0.4))
    frames = interior_frames(spec)
    moved, expected = spec[:-shift, frames], shifted[shift:, frames]
    assert (moved - expected).abs().max() < 1e-5 * expected.abs().max()


def test_a_shift_by_2_bins_is_not_phase_coherent():
    # The check above can fail: 2 bins turn by pi per hop, so every other frame comes out with the wrong sign.
    t = torch.arange(int(0.5 * SAMPLE_RATE), dtype=torch.float64) / SAMPLE_RATE
    spec = stft(torch.cos(2 * torch.pi * 3001.7 * t))
    shifted = stft(torch.cos(2 * torch.pi * (3001.7 + 2 * BIN_HZ) * t))
    frames = interior_frames(spec)
    assert (spec[:-2, frames] - shifted[2:, frames]).abs().max() > 0.5 * shifted.abs().max()


@pytest.mark.parametrize("cutoff_hz", [4000.0, 8000.0, 5512.5])
@pytest.mark.parametrize("slope", [-7.5, -0.5])
def test_slope_of_an_exact_power_law_and_clipping(cutoff_hz, slope):
    def power_law(b):
        return torch.from_numpy(10 ** (b * np.log2(np.maximum(FREQS, 1.0) / 1000) / 10))

    power = power_law(slope)
    assert float(sbr.sbr_slope(power, cutoff_hz)) == pytest.approx(slope, abs=1e-9)
    clipped = torch.stack([power_law(-12.5), power_law(-30.0), power_law(0.5)])
    np.testing.assert_allclose(sbr.sbr_slope(clipped, cutoff_hz).numpy(), [-12.0, -12.0, 0.0], atol=1e-9)
    # Only [fc/4, 0.9 fc) counts: anything outside it does not move the fit.
    outside = power.clone()
    outside[(FREQS < cutoff_hz / 4) | (FREQS >= 0.9 * cutoff_hz)] *= 1e3
    assert float(sbr.sbr_slope(outside, cutoff_hz)) == pytest.approx(slope, abs=1e-9)


def test_slope_fitted_on_tilted_noise():
    spec = stft(tilted_noise(-4.5))
    assert float(sbr.sbr_slope(spec.abs().square().mean(-1), 4000.0)) == pytest.approx(-4.5, abs=0.2)


@pytest.mark.parametrize("cutoff_hz", [4000.0, 8000.0])
@pytest.mark.parametrize("given_slope", [None, -1.0])
def test_generated_band_level_follows_the_envelope(cutoff_hz, given_slope):
    """Tilted noise in, its own band above 0.9 fc regenerated: the level must follow L(f)."""
    tilt = -4.5
    spec = stft(tilted_noise(tilt))
    slope = tilt if given_slope is None else given_slope
    out = sbr.sbr_spectrum(spec, cutoff_hz, slope=slope)
    top, sources, targets, _ = reference_layout(cutoff_hz)
    # Expected power at m: the input's line at the source, moved along L from the source to m.
    def line(freq):  # the noise's designed power spectrum
        return 10 ** (tilt * np.log2(freq / 1000) / 10)

    expected = line(FREQS[sources]) * 10 ** (copy_gain_db(targets, sources, slope, cutoff_hz) / 10)
    measured = out[targets].abs().square().mean(-1).numpy()
    scale = spec[1:top].abs().square().mean(-1).numpy().sum() / line(FREQS[1:top]).sum()  # to STFT units
    first_replaced = int(np.argmax(FREQS > cutoff_hz)) - top
    for band in np.array_split(np.arange(first_replaced, len(targets)), 12):
        level = 10 * np.log10(measured[band].sum() / (scale * expected[band].sum()))
        assert abs(level) < 0.35, (FREQS[targets[band[0]]], level)


def test_transition_band_tops_up_and_the_rest_follows_the_definition():
    cutoff_hz = 4000.0
    generator = torch.Generator().manual_seed(0)
    spec = torch.randn(1025, 40, dtype=torch.complex128, generator=generator)
    spec *= torch.from_numpy(10 ** (-3 * np.log2(np.maximum(FREQS, 1)) / 20))[:, None]
    top, sources, targets, replaced = reference_layout(cutoff_hz)
    transition = np.flatnonzero(~replaced[top:]) + top
    spec[transition[2:5]] = 0  # a notch
    spec[transition[-1]] *= 100  # far above the copy
    out = sbr.sbr_spectrum(spec, cutoff_hz, slope=-3.0)
    np.testing.assert_allclose(out.numpy(), reference_sbr(spec.numpy(), cutoff_hz, -3.0), rtol=1e-12, atol=1e-15)
    # The notch is filled with the copy itself; the loud bin keeps the input exactly.
    copy = sbr.sbr_spectrum(torch.zeros_like(spec).index_copy(0, torch.arange(top), spec[:top]), cutoff_hz, -3.0)
    assert torch.equal(out[transition[2:5]], copy[transition[2:5]])
    assert torch.equal(out[transition[-1]], spec[transition[-1]])


def test_transition_band_power_is_the_larger_of_input_and_copy():
    # Independent noise in the transition band and the copy: E|X + g C|^2 = max(|X|^2, |C|^2) per frame.
    cutoff_hz = 4000.0
    spec = stft(tilted_noise(-3.0, seconds=4.0, seed=1))
    top, _, _, replaced = reference_layout(cutoff_hz)
    transition = torch.from_numpy(np.flatnonzero(~replaced[top:]) + top)
    spec[transition] *= torch.linspace(0.05, 1.5, len(transition), dtype=torch.float64)[:, None]
    out = sbr.sbr_spectrum(spec, cutoff_hz, slope=-3.0)
    below = spec.clone()
    below[top:] = 0
    copy = sbr.sbr_spectrum(below, cutoff_hz, slope=-3.0)[transition]
    given = spec[transition]
    expected = torch.maximum(given.abs().square(), copy.abs().square()).sum()
    assert float(out[transition].abs().square().sum() / expected) == pytest.approx(1.0, abs=0.03)
    assert bool((out[transition].abs().square().mean(-1) > 0.9 * given.abs().square().mean(-1)).all())


def test_known_band_exact_and_batched_equals_per_item():
    generator = torch.Generator().manual_seed(1)
    spec = torch.randn(2, 3, 1025, 12, dtype=torch.complex128, generator=generator)
    spec *= torch.linspace(2, 0.01, 1025, dtype=torch.float64)[:, None]
    for cutoff_hz in (4000.0, 6000.0, 8000.0):  # 6 kHz: a 125-bin octave, copied as 124 bins
        top = reference_layout(cutoff_hz)[0]
        out = sbr.sbr_spectrum(spec, cutoff_hz)
        assert out.shape == spec.shape and out.dtype == spec.dtype
        assert torch.equal(out[..., :top, :], spec[..., :top, :])
        assert not torch.allclose(out[..., top:, :], spec[..., top:, :])
        slopes = sbr.sbr_slope(spec.abs().square().mean(-1), cutoff_hz)
        assert slopes.shape == (2, 3)
        for i in range(2):
            for j in range(3):
                np.testing.assert_allclose(out[i, j].numpy(), sbr.sbr_spectrum(spec[i, j], cutoff_hz).numpy(),
                                           rtol=1e-12, atol=1e-14)
                np.testing.assert_allclose(out[i, j].numpy(), reference_sbr(spec[i, j].numpy(), cutoff_hz,
                                                                            float(slopes[i, j])), rtol=1e-10)
        np.testing.assert_allclose(sbr.sbr_spectrum(spec, cutoff_hz, slope=slopes).numpy(), out.numpy(), rtol=1e-12)
        single = sbr.sbr_spectrum(spec.to(torch.complex64), cutoff_hz)
        assert single.dtype == torch.complex64
        # sqrt(1 - |X|²/|C|²) near 0 amplifies float32 rounding in the transition band: 1e-3 of the peak.
        np.testing.assert_allclose(single.numpy(), out.numpy(), rtol=0, atol=1e-3 * float(spec.abs().max()))
        assert torch.equal(single[..., :top, :], spec.to(torch.complex64)[..., :top, :])


def test_bad_inputs():
    with pytest.raises(A2SBError, match="too low"):
        sbr.sbr_spectrum(torch.zeros(1025, 3, dtype=torch.complex64), 80.0)
    with pytest.raises(A2SBError, match="complex"):
        sbr.sbr_spectrum(torch.zeros(1025, 3), 4000.0)
    with pytest.raises(A2SBError, match="1025"):
        sbr.sbr_slope(torch.ones(1024), 4000.0)
