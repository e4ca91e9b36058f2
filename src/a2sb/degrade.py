"""Waveform degradations: lowpass filtering (bandwidth loss) and time gaps.

Used to build evaluation inputs and by the training data loader. Audio is float (channels, samples) or
1-D; every function returns a new float32 array of the same shape and never modifies its input.
scipy.signal is imported by the functions that use it, so that the command line's parser (which names
LOWPASS_KINDS) stays quick to build. The `a2sb degrade` command is in a2sb.cli.bench.
"""

from __future__ import annotations

import warnings

import numpy as np
import soxr

from .codecs import fit_length as _fit_length
from .errors import A2SBError

LOWPASS_KINDS = ("brickwall", "butter", "cheby1", "ellip", "fir", "resample", "mp3")

# Passband ripple / stopband attenuation for the equiripple IIR kinds (dB).
CHEBY_RIPPLE_DB = 0.1
ELLIP_STOP_DB = 80.0


def as_channels(audio, dtype=None) -> tuple[np.ndarray, bool]:
    """(channels, samples) view of 1-D or 2-D audio (as `dtype` when given), and whether it was 1-D."""
    audio = np.asarray(audio, dtype=dtype)
    if audio.ndim == 1:
        return audio[None, :], True
    if audio.ndim != 2:
        raise A2SBError(f"audio must be 1-D or (channels, samples), got shape {audio.shape}")
    return audio, False


def like_input(audio: np.ndarray, was_1d: bool) -> np.ndarray:
    """float32 audio in the shape `as_channels` was given (1-D again when it was)."""
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    return audio[0] if was_1d else audio


def lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float, kind: str = "butter", order: int = 8) -> np.ndarray:
    """Remove content above `cutoff_hz` with the filter `kind` (see LOWPASS_KINDS).

    IIR kinds are applied forwards and backwards (zero phase), so the effective order is doubled and
    the -3 dB point of "butter" becomes about -6 dB at the cutoff. `order` is the IIR order; for "fir"
    the kernel has 64·order + 1 taps (longer = steeper); other kinds ignore it.
    """
    x, was_1d = as_channels(audio)
    x = x.astype(np.float64)
    nyquist = sample_rate / 2
    if not 0 < cutoff_hz < nyquist:
        if cutoff_hz >= nyquist:
            return like_input(x, was_1d)  # nothing to remove
        raise A2SBError(f"lowpass cutoff must be positive, got {cutoff_hz} Hz")
    if order < 1:
        raise A2SBError(f"filter order must be at least 1, got {order}")
    if x.shape[-1] == 0:
        return like_input(x, was_1d)
    if kind == "brickwall":
        y = _brickwall(x, sample_rate, cutoff_hz)
    elif kind in ("butter", "cheby1", "ellip"):
        y = _iir(x, sample_rate, cutoff_hz, kind, order)
    elif kind == "fir":
        y = _fir(x, sample_rate, cutoff_hz, order)
    elif kind == "resample":
        y = _resample_roundtrip(x, sample_rate, cutoff_hz)
    elif kind == "mp3":
        y = _mp3_roundtrip(x, sample_rate, cutoff_hz)
    else:
        raise A2SBError(f"unknown lowpass kind {kind!r}; choose from {', '.join(LOWPASS_KINDS)}")
    return like_input(y, was_1d)


def _brickwall(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    n = x.shape[-1]
    spectrum = np.fft.rfft(x, axis=-1)
    freqs = np.fft.rfftfreq(n, 1 / sample_rate)
    spectrum[:, freqs > cutoff_hz] = 0
    return np.fft.irfft(spectrum, n=n, axis=-1)


def _iir(x: np.ndarray, sample_rate: int, cutoff_hz: float, kind: str, order: int) -> np.ndarray:
    import scipy.signal as sps
    if kind == "butter":
        sos = sps.butter(order, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    elif kind == "cheby1":
        sos = sps.cheby1(order, CHEBY_RIPPLE_DB, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    else:
        sos = sps.ellip(order, CHEBY_RIPPLE_DB, ELLIP_STOP_DB, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    # sosfiltfilt needs more samples than its edge padding; shorten the padding for short signals.
    padlen = min(3 * (2 * len(sos) + 1), x.shape[-1] - 1)
    return sps.sosfiltfilt(sos, x, axis=-1, padlen=max(padlen, 0))


def _fir(x: np.ndarray, sample_rate: int, cutoff_hz: float, order: int) -> np.ndarray:
    import scipy.signal as sps
    taps = 64 * order + 1  # odd length: integer group delay, so 'same' convolution stays aligned
    kernel = sps.firwin(taps, cutoff_hz, window=("kaiser", 8.6), fs=sample_rate)
    return np.stack([sps.oaconvolve(channel, kernel, mode="same") for channel in x])


def _resample_roundtrip(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    low_rate = 2 * cutoff_hz
    n = x.shape[-1]
    down = soxr.resample(x.T, sample_rate, low_rate, quality="VHQ")
    up = soxr.resample(down, low_rate, sample_rate, quality="VHQ").T
    return _fit_length(up, n)


def _mp3_bitrate_level(cutoff_hz: float) -> float:
    """libsndfile compression level (0 = best, 1 = smallest) whose LAME lowpass lies near the cutoff.

    LAME picks its lowpass from the bitrate; lower cutoffs need lower bitrates. The mapping is coarse;
    an extra steep filter afterwards pins the cutoff exactly.
    """
    return float(np.clip(1.0 - (cutoff_hz - 3000.0) / 17000.0, 0.0, 1.0))


def _mp3_roundtrip(x: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    from .codecs import encode_decode

    try:
        decoded, _ = encode_decode(x, sample_rate, "mp3", level=_mp3_bitrate_level(cutoff_hz))
    except A2SBError as err:  # no MP3 in this libsndfile, or a rate/channel count MP3 cannot carry
        warnings.warn(
            f"MP3 round trip not possible ({err}); using a steep lowpass with spectral holes instead",
            stacklevel=3,
        )
        return _mp3_like(x, sample_rate, cutoff_hz)
    # The codec's own lowpass is set by the bitrate, not by us: add a steep filter at the cutoff.
    return _iir(decoded.astype(np.float64), sample_rate, cutoff_hz, "ellip", 8)


def _mp3_like(x: np.ndarray, sample_rate: int, cutoff_hz: float, seed: int = 0) -> np.ndarray:
    """Codec-like damage without a codec: 8th-order elliptic lowpass plus band-limited spectral holes.

    Low-bitrate encoders drop whole scale-factor bands that have too few bits, more often near the top of
    the band; here bands of 4 STFT bins between cutoff/2 and the cutoff are zeroed at random per frame,
    with a probability rising from 0 to 30 % (fixed seed: the same input gives the same output).
    """
    import scipy.signal as sps
    n = x.shape[-1]
    filtered = _iir(x, sample_rate, cutoff_hz, "ellip", 8)
    if n < 1024:
        return filtered
    _, _, spec = sps.stft(filtered, nperseg=1024, noverlap=768, axis=-1)  # channels x bins x frames
    bin_hz = sample_rate / 1024
    first, last = int(cutoff_hz / 2 / bin_hz), int(cutoff_hz / bin_hz)
    rng = np.random.default_rng(seed)
    for start in range(first, last, 4):
        probability = 0.3 * (start - first) / max(last - first, 1)
        holes = rng.random(spec.shape[-1]) < probability  # same holes in all channels, like joint stereo
        spec[:, start : min(start + 4, last), holes] = 0
    _, y = sps.istft(spec, nperseg=1024, noverlap=768)
    return _fit_length(np.atleast_2d(y), n)


def insert_gaps(audio: np.ndarray, sample_rate: int, gaps: list[tuple[float, float]]) -> np.ndarray:
    """Zero the samples inside each gap [start_s, end_s) (seconds); gaps past the end are clipped."""
    x, was_1d = as_channels(audio)
    y = x.astype(np.float32, copy=True)
    for first, last in gap_sample_ranges(gaps, sample_rate, y.shape[-1]):
        y[:, first:last] = 0
    return like_input(y, was_1d)


def gap_sample_ranges(gaps, sample_rate: int, length: int) -> list[tuple[int, int]]:
    """Gaps in seconds -> [first, last) sample ranges clipped to a signal of `length` samples."""
    ranges = []
    for start, end in gaps:
        if end <= start or start < 0:
            raise A2SBError(f"bad gap {start}-{end} s: need 0 <= start < end")
        first = min(int(round(start * sample_rate)), length)
        last = min(int(round(end * sample_rate)), length)
        if last > first:
            ranges.append((first, last))
    return ranges


def periodic_gaps(duration: float, gap: float, period: float) -> list[tuple[float, float]]:
    """Gaps of length `gap` centred in each whole `period` of a `duration`-second file (the layout of the
    published inpainting evaluation).

    Gap k spans [k·P + (P−G)/2, k·P + (P+G)/2) for k = 0 .. floor(D/P) − 1.
    """
    if period <= 0 or gap <= 0 or gap > period:
        raise A2SBError(f"need 0 < gap <= period, got gap {gap} s, period {period} s")
    count = int(np.floor(duration / period))
    return [(k * period + (period - gap) / 2, k * period + (period + gap) / 2) for k in range(count)]
