"""Lossy codec round trips (MP3, Vorbis, Opus) through libsndfile, in memory.

`encode_decode` encodes audio with a real encoder (LAME, libvorbis, libopus, as libsndfile carries
them) and decodes it again, aligned sample for sample with the input: the degradation of codec
training items and of the "mp3" lowpass kind of `a2sb.degrade`.

libsndfile sets the bitrate through a compression level in [0, 1] (0 = best). `level_for_kbps` turns a
bitrate into a level with LEVEL_TABLES, measured on 10 s of a full-band FluidSynth render
(data/rendered, peak 0.9), as the file size in kbit/s:

- MP3 (constant bitrate): LAME's standard bitrates, the same for mono and stereo (the encoder spends the
  bitrate on one channel when there is one); the level picks the nearest step (in log bitrate).
- Vorbis (quality-based variable bitrate): about 0.45 × the stereo bitrate for mono; the bitrate of a
  level depends on the music, so the table is a guide (the actual bitrate is returned).
- Opus (at 48 kHz: the input is resampled there and back with soxr): linear in the level, about
  256 kbit/s per channel at level 0 down to 32 per channel at 0.9.

Levels between table points are interpolated linearly against log bitrate; bitrates outside a table are
clipped to its ends.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from .errors import A2SBError

CODECS = ("mp3", "vorbis", "opus")

# codec -> (libsndfile format, subtype, sample rate it is encoded at (None: the input's))
_FORMATS = {
    "mp3": ("MP3", "MPEG_LAYER_III", None),
    "vorbis": ("OGG", "VORBIS", None),
    "opus": ("OGG", "OPUS", 48000),
}

# (compression level, kbit/s), by codec and channel count (1 or 2), measured as the module docstring says.
_MP3_STEPS = [(0.0, 320), (0.15, 256), (0.3, 224), (0.4, 192), (0.5, 160), (0.65, 128), (0.7, 112),
              (0.75, 96), (0.85, 80), (0.87, 64), (0.9, 56), (0.95, 48), (0.97, 40), (0.99, 32)]
LEVEL_TABLES = {
    ("mp3", 1): _MP3_STEPS,
    ("mp3", 2): _MP3_STEPS,
    ("vorbis", 1): [(0.0, 193), (0.1, 148), (0.2, 122), (0.3, 111), (0.4, 103), (0.5, 91), (0.6, 82),
                    (0.7, 72), (0.8, 63), (0.9, 53)],
    ("vorbis", 2): [(0.0, 433), (0.1, 311), (0.2, 244), (0.3, 219), (0.4, 201), (0.5, 173), (0.6, 144),
                    (0.7, 118), (0.8, 94), (0.9, 74)],
    ("opus", 1): [(0.0, 259), (0.1, 234), (0.2, 209), (0.3, 183), (0.4, 158), (0.5, 133), (0.6, 108),
                  (0.7, 83), (0.8, 58), (0.9, 33)],
    ("opus", 2): [(0.0, 514), (0.1, 466), (0.2, 416), (0.3, 366), (0.4, 316), (0.5, 265), (0.6, 215),
                  (0.7, 164), (0.8, 114), (0.9, 64)],
}
STEPPED = ("mp3",)  # codecs whose bitrate takes a few values only: the nearest step is taken

SEARCH_STEPS = 6  # encode_file: bisections of the compression level in [0, 1]
SEARCH_SECONDS = 4.0  # encode_file: the level is searched on at most this much of the middle of the audio
HEADROOM = 0.99  # codecs clip: louder input is scaled down to this peak and back up after decoding
MAX_LAG = 4096  # the longest codec delay searched for (samples)


def _check_codec(codec: str) -> tuple[str, str, int | None]:
    if codec not in _FORMATS:
        raise A2SBError(f"unknown codec {codec!r}; choose from {', '.join(CODECS)}")
    return _FORMATS[codec]


def available(codec: str) -> bool:
    """Whether this libsndfile can write `codec`."""
    import soundfile as sf

    fmt, subtype, _ = _check_codec(codec)
    try:
        return subtype in sf.available_subtypes(fmt)
    except Exception:  # a format this libsndfile does not know at all
        return False


def level_for_kbps(codec: str, kbps: float, channels: int = 1) -> float:
    """The libsndfile compression level that gives about `kbps` kbit/s for `channels` channels (more
    than two: the stereo table at 2/channels of the bitrate)."""
    _check_codec(codec)
    if not kbps > 0:
        raise A2SBError(f"bitrate must be positive, got {kbps} kbit/s")
    if channels > 2:
        kbps, channels = kbps * 2 / channels, 2
    table = LEVEL_TABLES[(codec, max(int(channels), 1))]
    levels = np.array([lv for lv, _ in table])
    logs = np.log([k for _, k in table])
    target = math.log(kbps)
    if codec in STEPPED:
        return float(levels[int(np.argmin(np.abs(logs - target)))])
    # the bitrate falls with the level: interpolate on the reversed (increasing) table
    return float(np.interp(target, logs[::-1], levels[::-1]))


def encode_decode(audio, rate: int, codec: str, kbps: float | None = None, level: float | None = None
                  ) -> tuple[np.ndarray, float]:
    """(decoded, actual_kbps): `audio` ((C, n) or 1-D float) encoded with `codec` at about `kbps` kbit/s
    (or at the compression `level` when given), decoded, and aligned to the input (same shape, float32).

    The encoder sees float32; input peaking above HEADROOM is scaled down for it and back up after.
    actual_kbps is the encoded size over the duration. A2SBError when libsndfile lacks the codec or
    cannot encode this input."""
    import soundfile as sf

    _, _, codec_rate = _check_codec(codec)
    x = np.asarray(audio, dtype=np.float32)
    was_1d = x.ndim == 1
    if was_1d:
        x = x[None]
    if x.ndim != 2:
        raise A2SBError(f"audio must be 1-D or (channels, samples), got shape {x.shape}")
    channels, n = x.shape
    if n == 0:
        return (x[0] if was_1d else x).copy(), 0.0
    if level is None:
        if kbps is None:
            raise A2SBError("encode_decode needs a bitrate or a compression level")
        level = level_for_kbps(codec, kbps, channels)
    if not available(codec):
        raise A2SBError(f"this libsndfile ({sf.__libsndfile_version__}) cannot write {codec}")
    peak = float(np.max(np.abs(x)))
    scale = HEADROOM / peak if peak > HEADROOM else 1.0
    signal = (x * np.float32(scale)).T
    at = codec_rate or int(rate)
    if at != rate:
        signal = soxr.resample(signal, rate, at, quality="HQ").astype(np.float32)
    try:
        data = _encode_bytes(signal.T, at, codec, float(min(max(level, 0.0), 0.99)))
        size = len(data)
        decoded, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as err:  # a rate or channel count the codec cannot carry
        raise A2SBError(f"{codec} round trip failed: {err}") from err
    if at != rate:
        decoded = soxr.resample(decoded, at, rate, quality="HQ")
    decoded = align(decoded.T.astype(np.float32) / np.float32(scale), x, n)
    actual = size * 8 / (n / rate) / 1000
    return (decoded[0] if was_1d else decoded), float(actual)


def fit_length(y: np.ndarray, n: int) -> np.ndarray:
    """(C, m) -> (C, n): cut, or zero-pad at the end."""
    if y.shape[-1] >= n:
        return y[..., :n]
    return np.pad(y, ((0, 0), (0, n - y.shape[-1])))


def align(decoded: np.ndarray, original: np.ndarray, n: int) -> np.ndarray:
    """Undo the codec delay: shift by the lag (0 to MAX_LAG samples) that best correlates the mono
    mixes of `decoded` and `original` ((C, m) arrays), then fit to n samples."""
    import scipy.signal as sps

    ref = original.mean(axis=0)
    dec = decoded.mean(axis=0)
    length = min(len(ref), len(dec), 1 << 16)
    if length < 64 or not np.any(ref[:length]):
        return fit_length(decoded, n)
    corr = sps.correlate(dec[: length + MAX_LAG], ref[:length], mode="valid", method="fft")
    lag = int(np.argmax(corr[: MAX_LAG + 1]))
    return fit_length(decoded[:, lag:], n)


@dataclass(frozen=True)
class Encoded:
    path: Path
    level: float  # libsndfile compression_level
    kbps: float  # actual bitrate of the file
    rate: int  # the rate it was encoded at


def _encode_bytes(x: np.ndarray, rate: int, codec: str, level: float) -> bytes:
    import soundfile as sf

    fmt, subtype, _ = _check_codec(codec)
    buffer = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if codec == "mp3" else {}
    sf.write(buffer, np.ascontiguousarray(x.T), rate, format=fmt, subtype=subtype, compression_level=level, **extra)
    return buffer.getvalue()


def encode_file(audio: np.ndarray, rate: int, codec: str, kbps: float, path) -> Encoded:
    """Encode (channels, samples) `audio` to `path` (its extension set to the codec's: .mp3, .ogg, .opus)
    at the compression level whose actual bitrate is nearest `kbps` for this very audio (the benchmark's
    codec task): the level is searched by bisection, encoding the middle SEARCH_SECONDS at each try (the
    bitrate falls with the level, in steps for MP3), then the whole audio is encoded at the level found.
    Opus is resampled to 48 kHz first."""
    if not kbps > 0:
        raise A2SBError(f"bitrate must be positive, got {kbps} kbit/s")
    _, _, codec_rate = _check_codec(codec)
    if not available(codec):
        raise A2SBError(f"this libsndfile cannot write {codec}")
    x = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if codec_rate is not None and codec_rate != rate:
        x, rate = soxr.resample(x.T, rate, codec_rate, quality="HQ").T.astype(np.float32), codec_rate
    excerpt = x[:, max((x.shape[-1] - int(SEARCH_SECONDS * rate)) // 2, 0):][:, : int(SEARCH_SECONDS * rate)]
    tried: dict[float, float] = {}

    def bitrate(level: float) -> float:
        if level not in tried:
            tried[level] = len(_encode_bytes(excerpt, rate, codec, level)) * 8 / (excerpt.shape[-1] / rate) / 1000
        return tried[level]

    low, high = 0.0, 1.0  # bitrate(low) >= bitrate(high)
    for _ in range(SEARCH_STEPS):
        middle = round((low + high) / 2, 6)
        if bitrate(middle) > kbps:
            low = middle
        else:
            high = middle
    for level in (low, high):
        bitrate(level)
    best = min(tried, key=lambda level: (abs(tried[level] - kbps), level))
    data = _encode_bytes(x, rate, codec, best)
    out = Path(path).with_suffix({"mp3": ".mp3", "vorbis": ".ogg", "opus": ".opus"}[codec])
    out.write_bytes(data)
    return Encoded(out, best, round(len(data) * 8 / (x.shape[-1] / rate) / 1000, 1), rate)
