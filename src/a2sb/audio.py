"""Audio file input and output: read anything libsndfile reads, resample with soxr, write atomically.

Audio arrays are float32 NumPy arrays shaped (channels, samples).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import A2SBError

SAMPLE_RATE = 44100
WRITE_FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}


@dataclass
class AudioInfo:
    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Header information of an audio file, with a clear error for missing or unreadable files."""
    path = str(path)
    if not os.path.exists(path):
        raise A2SBError(f"no such file: {path}")
    if os.path.isdir(path):
        raise A2SBError(f"expected an audio file, got a folder: {path}")
    try:
        info = sf.info(path)
    except Exception as err:  # libsndfile raises several types for bad headers
        raise A2SBError(f"cannot read audio file {path}: {_short(err)}") from None
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames), info.format, info.subtype)


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read (a part of) a file as float32 (channels, samples), resampled to `sample_rate` (None keeps it).

    `start`/`duration` are in seconds and read with seeking, so a crop never decodes the whole file.
    """
    info = audio_info(path)
    first = int(round(start * info.sample_rate))
    frames = -1 if duration is None else int(round(duration * info.sample_rate))
    try:
        with sf.SoundFile(str(path)) as f:
            if first:
                f.seek(min(first, info.frames))
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except A2SBError:
        raise
    except Exception as err:
        raise A2SBError(f"cannot decode audio file {path}: {_short(err)}") from None
    audio = np.ascontiguousarray(data.T)
    rate = info.sample_rate
    if sample_rate is not None and rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
        rate = sample_rate
    return audio, rate


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """High-quality resampling (soxr 'HQ') of a (channels, samples) array."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    out = soxr.resample(np.ascontiguousarray(audio.T, dtype=np.float32), rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write (channels, samples) audio as WAV or FLAC through a temporary file renamed into place,
    so an interrupted write never leaves a half-written result."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_FORMATS:
        raise A2SBError(f"unsupported output format '{suffix or path.name}': use .wav or .flac")
    fmt, default_subtype = WRITE_FORMATS[suffix]
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if fmt == "FLAC":  # integer format: clip instead of wrapping around
        audio = np.clip(audio, -1.0, 1.0)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.exists():
        raise A2SBError(f"output folder does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        sf.write(tmp, audio.T, sample_rate, format=fmt, subtype=subtype or default_subtype)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[-1] if text else type(err).__name__
