import numpy as np
import pytest
import scipy.signal as sps

from a2sb import codecs
from a2sb.codecs import CODECS, encode_decode, level_for_kbps
from a2sb.errors import A2SBError

SR = 44100


def music(seconds=3.0, channels=1, seed=0):
    """Harmonic tones with a little noise, full band (a stand-in for music a codec has to work on)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    tones = sum(np.sin(2 * np.pi * f * t + k) / (k + 1)
                for k, f in enumerate([110, 220, 330, 440, 660, 990, 1760, 3520, 7040]))
    x = 0.08 * tones[None] + 0.03 * rng.standard_normal((channels, t.size))
    return x.astype(np.float32)


def lowpassed(x, hz):
    return sps.sosfiltfilt(sps.butter(8, hz, fs=SR, output="sos"), x, axis=-1)


def band_power(x, low, high):
    f, p = sps.welch(x, SR, nperseg=4096, axis=-1)
    return float(p[..., (f >= low) & (f < high)].mean())


def need(codec):
    if not codecs.available(codec):
        pytest.skip(f"this libsndfile has no {codec}")


@pytest.mark.parametrize("kbps", [64, 128])
def test_mp3_round_trip_is_aligned_at_about_the_asked_bitrate(kbps):
    need("mp3")
    x = music()
    y, actual = encode_decode(x, SR, "mp3", kbps)
    assert y.shape == x.shape and y.dtype == np.float32
    assert abs(actual - kbps) / kbps < 0.25
    corr = np.corrcoef(lowpassed(x[0], 4000), lowpassed(y[0], 4000))[0, 1]
    assert corr > 0.9  # aligned: a delay of a few samples would ruin this at 4 kHz
    # LAME's lowpass at 64 kbit/s lies near 15 kHz: the band above it is empty
    if kbps == 64:
        assert band_power(y, 17000, 21000) < 1e-4 * band_power(x, 17000, 21000)


def test_one_dimensional_input_and_headroom():
    need("mp3")
    x = music()[0] * 8.0  # peaks far above full scale: scaled down for the codec and back up
    assert np.max(np.abs(x)) > 1.5
    y, _ = encode_decode(x, SR, "mp3", 128)
    assert y.shape == x.shape
    assert np.max(np.abs(y)) > 0.8 * np.max(np.abs(x))
    assert np.corrcoef(lowpassed(x, 4000), lowpassed(y, 4000))[0, 1] > 0.9


@pytest.mark.parametrize("codec", ["vorbis", "opus"])
@pytest.mark.parametrize("channels", [1, 2])
def test_vorbis_and_opus_run(codec, channels):
    need(codec)
    x = music(2.0, channels)
    y, actual = encode_decode(x, SR, codec, 96)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    assert 30 < actual < 250
    for c in range(channels):
        assert np.corrcoef(lowpassed(x[c], 4000), lowpassed(y[c], 4000))[0, 1] > 0.9


def test_level_for_kbps_follows_the_tables():
    assert level_for_kbps("mp3", 64) == 0.87
    assert level_for_kbps("mp3", 130) == 0.65  # nearest LAME step (128)
    assert level_for_kbps("opus", 64, 2) == pytest.approx(0.9)
    assert level_for_kbps("opus", 64, 1) < level_for_kbps("opus", 32, 1)
    assert 0.5 < level_for_kbps("vorbis", 80, 1) < 0.7
    assert level_for_kbps("vorbis", 10000, 2) == 0.0  # clipped to the table
    for codec in CODECS:
        assert 0 <= level_for_kbps(codec, 48) <= 0.99


def test_errors():
    with pytest.raises(A2SBError, match="unknown codec"):
        encode_decode(music(), SR, "aac", 128)
    with pytest.raises(A2SBError, match="bitrate"):
        level_for_kbps("mp3", 0)
    with pytest.raises(A2SBError, match="cannot write"):
        original = codecs.available
        codecs.available = lambda codec: False
        try:
            encode_decode(music(), SR, "mp3", 128)
        finally:
            codecs.available = original
