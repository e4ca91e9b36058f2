import json

import numpy as np
import pytest
import soundfile as sf

from a2sb.cli import main
from a2sb.degrade import LOWPASS_KINDS, insert_gaps, lowpass, periodic_gaps
from a2sb.errors import A2SBError

SR = 44100


def noise(seconds=0.5, channels=2, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal((channels, int(SR * seconds)))).astype(np.float32)


def band_gain_db(x, y, low, high):
    """Energy of y relative to x between low and high Hz, in dB."""
    freqs = np.fft.rfftfreq(x.shape[-1], 1 / SR)
    band = (freqs >= low) & (freqs < high)
    ex = np.sum(np.abs(np.fft.rfft(x, axis=-1))[..., band] ** 2)
    ey = np.sum(np.abs(np.fft.rfft(y, axis=-1))[..., band] ** 2)
    return 10 * np.log10(ey / ex)


@pytest.mark.parametrize("kind", LOWPASS_KINDS)
def test_lowpass_keeps_passband_and_removes_stopband(kind):
    x = noise()
    original = x.copy()
    y = lowpass(x, SR, 4000, kind=kind)
    assert y.shape == x.shape and y.dtype == np.float32
    np.testing.assert_array_equal(x, original)  # input untouched
    passband_tolerance = 1.5 if kind == "mp3" else 0.3  # the codec adds its own error
    assert abs(band_gain_db(x, y, 100, 3000)) < passband_tolerance
    assert band_gain_db(x, y, 6000, 22000) < -40


def test_lowpass_order_sets_steepness_and_one_dimensional_input_works():
    x = noise(channels=1)[0]
    gentle = lowpass(x, SR, 4000, kind="butter", order=2)
    steep = lowpass(x, SR, 4000, kind="butter", order=8)
    assert gentle.shape == x.shape
    # Just above the cutoff a 2nd-order filter leaves far more than an 8th-order one.
    assert band_gain_db(x, gentle, 5000, 6000) > band_gain_db(x, steep, 5000, 6000) + 15


def test_lowpass_edge_cases():
    x = noise()
    np.testing.assert_array_equal(lowpass(x, SR, 30000), x)  # above Nyquist: nothing to do
    with pytest.raises(A2SBError, match="unknown lowpass kind"):
        lowpass(x, SR, 4000, kind="sinc")
    with pytest.raises(A2SBError):
        lowpass(x, SR, -5)
    short = lowpass(x[:, :20], SR, 4000)  # shorter than the filter's usual edge padding
    assert short.shape == (2, 20) and np.all(np.isfinite(short))


def test_insert_gaps_zeroes_exact_samples():
    x = noise(1.0)
    y = insert_gaps(x, SR, [(0.1, 0.2), (0.9, 1.5)])
    assert np.all(y[:, 4410:8820] == 0) and np.all(y[:, 39690:] == 0)
    np.testing.assert_array_equal(y[:, :4410], x[:, :4410])
    np.testing.assert_array_equal(y[:, 8820:39690], x[:, 8820:39690])
    assert np.any(x[:, 4410:8820] != 0)  # input untouched


def test_periodic_gaps_follow_spec_formula():
    gaps = periodic_gaps(12.0, 0.3, 5.0)
    assert np.asarray(gaps) == pytest.approx(np.array([[2.35, 2.65], [7.35, 7.65]]))
    assert len(periodic_gaps(10.0, 0.3, 5.0)) == 2
    assert len(periodic_gaps(9.99, 0.3, 5.0)) == 1
    assert periodic_gaps(4.0, 0.3, 5.0) == []
    with pytest.raises(A2SBError):
        periodic_gaps(10, 6, 5)


def test_degrade_cli_refuses_bad_gap_lists(tmp_path, capsys):
    source = tmp_path / "in.wav"
    sf.write(source, noise(1.0).T, SR, subtype="FLOAT")
    for bad in ("1.3-1.0", "abc", "1.0", "", "auto"):
        assert main(["degrade", str(source), "-o", str(tmp_path / "out.wav"), "--gaps", bad]) == 2
        assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "out.wav").exists()


def test_degrade_cli_lowpass_and_gaps(tmp_path):
    source = tmp_path / "in.wav"
    x = noise(2.0)
    sf.write(source, x.T, SR, subtype="FLOAT")

    out = tmp_path / "low.wav"
    assert main(["degrade", str(source), "-o", str(out), "--lowpass", "3000", "--filter", "cheby1"]) == 0
    y, rate = sf.read(out, always_2d=True)
    assert rate == SR and y.shape == x.T.shape
    assert band_gain_db(x, y.T, 5000, 20000) < -40
    sidecar = json.loads((tmp_path / "low.wav.json").read_text())
    assert sidecar["kind"] == "lowpass" and sidecar["filter"] == "cheby1" and sidecar["cutoff_hz"] == 3000
    assert sidecar["source"] == str(source)

    out = tmp_path / "gaps.wav"
    assert main(["degrade", str(source), "-o", str(out), "--gaps", "0.2", "--every", "1"]) == 0
    sidecar = json.loads((tmp_path / "gaps.wav.json").read_text())
    assert np.allclose(sidecar["gaps"], [[0.4, 0.6], [1.4, 1.6]])
    y, _ = sf.read(out, always_2d=True)
    assert np.all(y[17640:26460] == 0) and np.any(y[26460:27000] != 0)

    assert main(["degrade", str(source), "-o", str(out), "--gaps", "0.5-0.7"]) == 0
    assert json.loads((tmp_path / "gaps.wav.json").read_text())["gaps"] == [[0.5, 0.7]]


def test_degrade_cli_refuses_to_overwrite_input(tmp_path, capsys):
    source = tmp_path / "in.wav"
    sf.write(source, noise(0.2).T, SR, subtype="FLOAT")
    before = source.read_bytes()
    assert main(["degrade", str(source), "-o", str(source), "--lowpass", "3000"]) == 2
    assert "overwrite" in capsys.readouterr().err
    assert source.read_bytes() == before
    assert main(["degrade", str(tmp_path / "missing.wav"), "-o", str(tmp_path / "o.wav"), "--lowpass", "3000"]) == 2


def test_mp3_falls_back_to_filter_with_holes_when_codec_cannot_carry_the_rate():
    rate = 96000  # MPEG audio has no 96 kHz mode
    x = (0.1 * np.random.default_rng(0).standard_normal((1, rate))).astype(np.float32)
    with pytest.warns(UserWarning, match="spectral holes"):
        y = lowpass(x, rate, 4000, kind="mp3")
    freqs = np.fft.rfftfreq(rate, 1 / rate)
    power_x, power_y = (np.abs(np.fft.rfft(a[0])) ** 2 for a in (x, y))

    def gain_db(low, high):
        band = (freqs >= low) & (freqs < high)
        return 10 * np.log10(power_y[band].sum() / power_x[band].sum())

    assert abs(gain_db(100, 1900)) < 0.3  # below the holes: untouched
    assert -6 < gain_db(3000, 3900) < -0.5  # holes remove part of the top octave
    assert gain_db(6000, 40000) < -40
