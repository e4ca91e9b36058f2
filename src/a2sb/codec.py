"""Lossy round trips through libsndfile for the codec task of `a2sb bench quality` (--task codec).

`encode(audio, rate, codec, kbps, path)` writes an MP3, Ogg Vorbis or Ogg Opus file whose actual bitrate is
the nearest libsndfile's `compression_level` reaches to `kbps`: the level is searched by bisection, encoding
the middle 4 s at each try (the bitrate falls with the level, in steps: LAME picks standard MP3 bitrates),
then the whole audio is encoded at the level found; the level and the file's actual kbit/s
(size · 8 / duration) are returned. `align(decoded, reference)` undoes the codec's delay.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import A2SBError

CODECS = {  # name -> (libsndfile format, subtype, file extension, encoding rate or None for the input's)
    "mp3": ("MP3", "MPEG_LAYER_III", ".mp3", None),
    "vorbis": ("OGG", "VORBIS", ".ogg", None),
    "opus": ("OGG", "OPUS", ".opus", 48000),
}
SEARCH_STEPS = 6  # bisections of the compression level in [0, 1]
SEARCH_SECONDS = 4.0  # the level is searched on at most this much of the middle of the audio
MAX_LAG = 4096  # samples searched for the codec delay


@dataclass(frozen=True)
class Encoded:
    path: Path
    level: float  # libsndfile compression_level
    kbps: float  # actual bitrate of the file
    rate: int  # the rate it was encoded at


def _encode_bytes(x: np.ndarray, rate: int, codec: str, level: float) -> bytes:
    fmt, subtype, _, _ = CODECS[codec]
    buffer = io.BytesIO()
    extra = {"bitrate_mode": "CONSTANT"} if codec == "mp3" else {}
    sf.write(buffer, x.T, rate, format=fmt, subtype=subtype, compression_level=level, **extra)
    return buffer.getvalue()


def encode(audio: np.ndarray, rate: int, codec: str, kbps: float, path) -> Encoded:
    """Encode (channels, samples) `audio` to `path` (its extension is set to the codec's) at the compression
    level whose actual bitrate is nearest `kbps`; Opus is resampled to 48 kHz first."""
    if codec not in CODECS:
        raise A2SBError(f"codec must be one of {', '.join(CODECS)}, got '{codec}'")
    if kbps <= 0:
        raise A2SBError(f"bitrate must be positive, got {kbps} kbit/s")
    fmt, subtype, extension, codec_rate = CODECS[codec]
    if not sf.check_format(fmt, subtype):
        raise A2SBError(f"this libsndfile cannot write {codec} ({fmt}/{subtype})")
    x = np.atleast_2d(np.asarray(audio, dtype=np.float32))
    if codec_rate is not None and codec_rate != rate:
        from .audio import resample

        x, rate = resample(x, rate, codec_rate), codec_rate
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
    out = Path(path).with_suffix(extension)
    out.write_bytes(data)
    return Encoded(out, best, round(len(data) * 8 / (x.shape[-1] / rate) / 1000, 1), rate)


def align(decoded: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`decoded` (channels, samples) shifted earlier by the lag (0 to MAX_LAG samples) that best correlates its
    mono mix with `reference`'s, then cut or zero-padded to the reference's length."""
    decoded, reference = np.atleast_2d(decoded), np.atleast_2d(reference)
    n = reference.shape[-1]
    ref, dec = reference.mean(axis=0), decoded.mean(axis=0)
    length = min(len(ref), len(dec), 1 << 16)
    lag = 0
    if length >= 64 and np.any(ref[:length]):
        import scipy.signal

        corr = scipy.signal.correlate(dec[: length + MAX_LAG], ref[:length], mode="valid", method="fft")
        lag = int(np.argmax(corr[: MAX_LAG + 1]))
    shifted = decoded[:, lag : lag + n]
    if shifted.shape[-1] < n:
        shifted = np.pad(shifted, ((0, 0), (0, n - shifted.shape[-1])))
    return np.ascontiguousarray(shifted, dtype=np.float32)
