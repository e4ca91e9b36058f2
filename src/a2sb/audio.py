"""Audio file input and output: read anything libsndfile reads (whole, or piece by piece with `FileWave`),
resample with soxr (whole, or streamed with `StreamResampler`), write atomically (`atomic_write`, the one
place a result is renamed into place; `AudioWriter` for audio).

Audio arrays are float32 NumPy arrays shaped (channels, samples).

Damaged files: libsndfile trusts a WAV/AIFF/AU file whose header promises more sample data than the
file holds and reports only the frames that are there, and it decodes Ogg streams across corrupt or
missing pages, so neither is an error when reading. `audio_info` therefore compares the header's
data size with the file's length itself, and with `verify=True` also walks every Ogg page (checksum,
sequence, a complete last page, end of stream) before a file is restored.
"""

from __future__ import annotations

import functools
import mmap
import os
import secrets
import struct
import weakref
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from .errors import A2SBError

SAMPLE_RATE = 44100  # the rate of the model's picture (docs/method.md §Representation); the one constant
# file name endings of the audio files a folder is searched for (what libsndfile and its decoders read)
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".w64",
                              ".rf64", ".caf", ".au", ".snd"})
# containers written by name ending, and the sample format `write_audio` uses when none is given
CONTAINERS = {".wav": "WAV", ".flac": "FLAC", ".aif": "AIFF", ".aiff": "AIFF", ".aifc": "AIFF", ".w64": "W64",
              ".rf64": "RF64", ".caf": "CAF", ".au": "AU", ".snd": "AU"}
DEFAULT_SUBTYPES = {"FLAC": "PCM_24", "AU": "FLOAT"}  # others: FLOAT


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


def audio_info(path: str | os.PathLike, verify: bool = False) -> AudioInfo:
    """Header information of an audio file, with a clear error for missing, unreadable or truncated files.

    A WAV/RF64/AIFF/AU header whose data size runs past the end of the file is an error (a truncated
    file). `verify` also reads the whole file and checks what its container can check (every Ogg
    page), so that a damaged file is refused before any work is done."""
    path = str(path)
    if not os.path.exists(path):
        raise A2SBError(f"no such file: {path}")
    if os.path.isdir(path):
        raise A2SBError(f"expected an audio file, got a folder: {path}")
    try:
        _check_container(path, verify)  # also opens the file: an unreadable one is named with the reason
    except OSError as err:
        raise A2SBError(f"cannot read audio file {path}: {err.strerror or err}") from None
    try:
        info = sf.info(path)
    except Exception as err:  # libsndfile raises several types for bad headers
        raise A2SBError(f"cannot read audio file {path}: {error_line(err, path)}") from None
    frames = int(info.frames)
    if info.format in ("MP3", "MPEG"):  # an MP3's sample count is an estimate (LAME at 56 kbit/s: 2 082 too many)
        stat = os.stat(path)
        frames = mpeg_frames(path, stat.st_size, stat.st_mtime_ns)
    return AudioInfo(path, int(info.samplerate), int(info.channels), frames, info.format, info.subtype)


@functools.lru_cache(maxsize=32)
def mpeg_frames(path: str, size: int, mtime_ns: int) -> int:
    """The number of samples an MP3 file decodes to, counted by decoding it (one pass; `size` and
    `mtime_ns` key the cache, so a changed file is counted again)."""
    count = 0
    try:
        with sf.SoundFile(path) as f:
            while True:
                block = f.read(1 << 17, dtype="float32", always_2d=True)
                if not len(block):
                    return count
                count += len(block)
    except Exception as err:
        raise A2SBError(f"cannot decode audio file {path}: {error_line(err, path)}") from None


# ------------------------------------------------------------------------------------ damaged files

def _check_container(path: str, verify: bool) -> None:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        extent = _sample_data_extent(f, head, size)
        if extent is not None:
            start, declared = extent
            if start + declared > size:
                raise A2SBError(f"{path} is truncated: its header promises {declared} bytes of samples, "
                                f"the file holds {max(0, size - start)}")
        if verify and head[:4] == b"OggS" and size:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                problem = _ogg_problem(data)
            if problem:
                raise A2SBError(f"{path} is damaged: {problem}")


def _sample_data_extent(f, head: bytes, size: int) -> tuple[int, int] | None:
    """(offset, declared size) of the sample data of a WAV/RF64, AIFF/AIFC or AU file, or None for other
    formats and for headers that leave the size open (0 or 0xFFFFFFFF, as written by streaming tools)."""
    unknown = (0, 0xFFFFFFFF)
    max_chunks = 4096  # a damaged header of tiny chunks must not make this a long walk
    if head[:4] in (b"RIFF", b"RIFX", b"RF64", b"BW64") and head[8:12] == b"WAVE":
        endian = ">" if head[:4] == b"RIFX" else "<"
        pos, data64 = 12, None
        for _ in range(max_chunks):
            if pos + 8 > size:
                break
            f.seek(pos)
            chunk, length = struct.unpack(endian + "4sI", f.read(8))
            if chunk == b"ds64":  # RF64: the real sizes (64 bit) live here
                body = f.read(16)
                data64 = struct.unpack("<QQ", body)[1] if len(body) == 16 else None
            elif chunk == b"data":
                if length == 0xFFFFFFFF and data64 is not None:
                    length = data64
                return None if length in unknown else (pos + 8, length)
            pos += 8 + length + (length & 1)
        return None
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        pos = 12
        for _ in range(max_chunks):
            if pos + 8 > size:
                break
            f.seek(pos)
            chunk, length = struct.unpack(">4sI", f.read(8))
            if chunk == b"SSND":  # offset and block size, then the samples
                return None if length in unknown else (pos + 8, length)
            pos += 8 + length + (length & 1)
        return None
    if head[:4] == b".snd" and len(head) >= 12:
        offset, length = struct.unpack(">II", head[4:12])
        return None if length in unknown else (offset, length)
    return None


_BIT_REVERSED = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def _ogg_crc(page: bytes) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value and final xor 0), computed with
    zlib's reflected CRC-32 on bit-reversed bytes."""
    reflected = ~zlib.crc32(page.translate(_BIT_REVERSED), 0xFFFFFFFF) & 0xFFFFFFFF
    return int.from_bytes(reflected.to_bytes(4, "little").translate(_BIT_REVERSED), "big")


def _ogg_problem(data) -> str | None:
    """What is wrong with an Ogg file's pages, or None: each page must be whole, carry its checksum and
    follow the previous page of its stream, and the last page of every stream must be flagged
    end-of-stream. (Pages after one so flagged that continue its sequence are accepted: some tools
    write them, and decoders play them.) Bytes after every stream has ended are ignored."""
    size, pos = len(data), 0
    streams: dict[int, tuple[int, bool]] = {}  # serial -> (last page sequence number, ended)
    while pos < size:
        if data[pos:pos + 4] != b"OggS":
            if pos == 0 or not all(ended for _, ended in streams.values()):
                return f"no Ogg page where one should begin (byte {pos})"
            return None
        if pos + 27 > size:
            return f"truncated: the last Ogg page is incomplete (byte {pos})"
        flags, serial, sequence, crc, segments = struct.unpack_from("<B8xIIIB", data, pos + 5)
        header = 27 + segments
        if pos + header > size:
            return f"truncated: the last Ogg page is incomplete (byte {pos})"
        end = pos + header + sum(data[pos + 27:pos + header])
        if end > size:
            return f"truncated: the last Ogg page is incomplete (byte {pos})"
        page = bytearray(data[pos:end])
        page[22:26] = bytes(4)
        if _ogg_crc(bytes(page)) != crc:
            return f"corrupt Ogg page at byte {pos} (checksum mismatch)"
        if not flags & 0x02:  # not the beginning of a stream: must continue one
            if serial not in streams:
                return f"Ogg page of an unknown stream at byte {pos}"
            if sequence != streams[serial][0] + 1:
                return f"Ogg pages missing before byte {pos}"
        streams[serial] = (sequence, bool(flags & 0x04))
        pos = end
    if not all(ended for _, ended in streams.values()):
        return "truncated: the Ogg stream stops without its end-of-stream page"
    return None


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = SAMPLE_RATE,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read (a part of) a file as float32 (channels, samples), resampled to `sample_rate` (None keeps it).

    `start`/`duration` are in seconds and read with seeking, so a crop never decodes the whole file.
    In Ogg files a seek may land a block off or lap the first block wrongly (see FileWave): right for
    random training crops read with margins, not for restoring; FileWave reads exactly.
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
        raise A2SBError(f"cannot decode audio file {path}: {error_line(err, path)}") from None
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


def container_of(path: str | os.PathLike) -> str:
    """libsndfile's container for an output name (by its ending), or an A2SBError naming the choices."""
    suffix = Path(path).suffix.lower()
    if suffix not in CONTAINERS:
        raise A2SBError(f"unsupported output format '{suffix or Path(path).name}': use "
                        f"{', '.join(sorted(CONTAINERS))}")
    return CONTAINERS[suffix]


def write_audio(path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str | None = None) -> None:
    """Write (channels, samples) audio (container from the name: .wav, .flac, ...) atomically. Integer
    sample formats clip rather than wrap around."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    container = container_of(path)
    with AudioWriter(path, sample_rate, audio.shape[0], container,
                     subtype or DEFAULT_SUBTYPES.get(container, "FLOAT")) as writer:
        writer.write(audio)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[str]:
    """The one way results are written: yields the name of a new empty temporary file beside `path`; when
    the block ends without an error it is renamed onto `path`, otherwise removed. Readers never see half
    a file, and a failed or interrupted run leaves nothing behind."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise A2SBError(f"output folder does not exist: {folder}")
    tmp = temporary_beside(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def check_writable(folder: str | os.PathLike) -> None:
    """Refuse (before any work) a folder in which no file can be created: the test really creates one,
    since permission bits do not tell (root ignores them; read-only mounts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise A2SBError(f"output folder does not exist: {folder}")
    try:
        os.unlink(temporary_beside(folder / "write-test"))
    except OSError as err:
        raise A2SBError(f"cannot write to folder {folder}: {err.strerror or err}") from None


class AudioWriter:
    """Writes (channels, n) float chunks to an audio file through `atomic_write`: the file appears at
    `path` when the `with` block ends without an error. Integer sample formats clip rather than wrap
    around (`clipped` counts the samples)."""

    def __init__(self, path: str | os.PathLike, rate: int, channels: int, container: str, subtype: str,
                 tags: dict[str, str] | None = None):
        self.path, self.clipped = Path(path), 0
        self.integer = not subtype.startswith(("FLOAT", "DOUBLE"))
        self._stack = ExitStack()
        try:
            tmp = self._stack.enter_context(atomic_write(self.path))
            self.file = self._stack.enter_context(sf.SoundFile(tmp, "w", rate, channels, subtype, format=container))
            for name, value in (tags or {}).items():
                try:
                    setattr(self.file, name, value)
                except Exception:  # noqa: BLE001 - a tag this container cannot carry is left out
                    pass
        except BaseException as err:
            self._stack.__exit__(type(err), err, err.__traceback__)
            raise

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if self.integer and chunk.dtype.kind == "f":
            over = np.abs(chunk) > 1.0
            if over.any():
                self.clipped += int(over.sum())
                chunk = np.clip(chunk, -1.0, 1.0)
        self.file.write(np.ascontiguousarray(chunk.T))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._stack.__exit__(*exc)


def temporary_beside(path: str | os.PathLike) -> str:
    """Create an empty, uniquely named hidden file next to `path` (same folder and suffix) and return its
    name, for writing a result that is then renamed into place with os.replace.

    Unlike tempfile.mkstemp (always mode 0600) it is created with mode 0666 less the umask, as open()
    creates files, so the renamed result has the permissions of any other new file."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    while True:
        tmp = folder / f".{path.stem}.{secrets.token_hex(4)}{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)


def error_line(err: Exception, path: str | None = None) -> str:
    """The last line of a libsndfile error, without the "Error opening 'PATH': " it repeats."""
    text = str(err).strip().splitlines()
    line = text[-1] if text else type(err).__name__
    if path is not None:
        line = line.replace(f"Error opening {path!r}: ", "")
        if line.startswith("File does not exist") and os.path.isfile(path):  # libsndfile on damaged MP3
            line = "not a readable audio file (unknown format, or damaged)"
    return line


# ------------------------------------------------------------------------------ reading piece by piece

def read_chunks(path: str | os.PathLike, size: int, downmix: bool = False):
    """(channels, n) float32 chunks of `size` samples of a file, read once in order (mixed to one
    channel with `downmix`); a decoding error is one A2SBError."""
    try:
        with sf.SoundFile(str(path)) as f:
            while True:
                data = f.read(frames=size, dtype="float32", always_2d=True)
                if not len(data):
                    return
                data = data.T
                yield np.ascontiguousarray(data.mean(axis=0, keepdims=True) if downmix else data)
    except A2SBError:
        raise
    except Exception as err:
        raise A2SBError(f"cannot decode audio file {path}: {error_line(err, str(path))}") from None


class ArrayWave:
    """Random access to an in-memory (channels, samples) float32 waveform."""

    def __init__(self, audio: np.ndarray):
        self.audio = audio
        self.channels, self.length = audio.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[:, start:stop]


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class FileWave:
    """Random access to an audio file's samples as float32 (channels, n) at `rate` (None: the file's own),
    reading with seeking (or through a streaming resampler), so memory does not depend on the length.

    Requests should move forward; a request before the resampler's buffer restarts it. Non-finite
    samples read as 0; `downmix` averages all channels to mono.

    libsndfile's seeks in Ogg files (Vorbis, Opus) are not sample exact: a read after a seek can start
    hundreds of samples off or with a wrongly lapped first block (libsndfile issue 885; measured with
    1.2.2: 2-16 % of random seeks in Vorbis files, 1 % in Opus). So such a file is never seeked: a read
    further on decodes what lies between, and the first read further back decodes the file once, in
    order, into a temporary float file (in the system's temporary folder, deleted on close) that is read
    from then on."""

    HISTORY = 1 << 16  # resampled samples kept behind the last request
    INEXACT_SEEKS = ("OGG",)  # containers whose seeks are not sample exact in libsndfile

    def __init__(self, path: str | os.PathLike, rate: int | None = SAMPLE_RATE, downmix: bool = False):
        self.path = str(path)
        info = audio_info(self.path)
        self.rate_in, self.frames_in = int(info.sample_rate), int(info.frames)
        self.rate = self.rate_in if rate is None else int(rate)
        self.downmix = downmix
        self.channels = 1 if downmix else int(info.channels)
        # soxr gives round(n·ratio) samples, both in one call and streamed
        self.length = self.frames_in if self.rate == self.rate_in else round(self.frames_in * self.rate / self.rate_in)
        self._file = sf.SoundFile(self.path)
        self._exact_seeks = self._file.format not in self.INEXACT_SEEKS
        self._position = 0  # where the next decode starts, in the file's samples
        self._copy: str | None = None  # the decoded temporary copy, once made
        self._resampler = None
        self._buffer = np.zeros((self.channels, 0), np.float32)
        self._buffer_start = 0
        self._consumed = 0

    def close(self):
        self._file.close()
        if self._copy is not None:
            self._remove_copy()  # (also run when the reader is garbage-collected or Python exits)
            self._copy = None

    def _seek(self, position: int) -> None:
        """Move the decoder to `position` (the file's samples), exactly."""
        if position == self._position:
            return
        if not self._exact_seeks and position > self._position:  # forward: decode what lies between
            while self._position < position and self._decode(min(1 << 16, position - self._position)).size:
                pass
            if self._position == position:
                return
        if not self._exact_seeks:  # backward: one decoded copy, read from then on
            self._decode_to_copy()
        self._file.seek(position)
        self._position = position

    def _decode_to_copy(self) -> None:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="a2sb-", suffix=".w64")
        os.close(fd)
        try:
            with sf.SoundFile(self.path) as source, \
                    sf.SoundFile(name, "w", source.samplerate, source.channels, "FLOAT", format="W64") as copy:
                for block in source.blocks(blocksize=1 << 16, dtype="float32", always_2d=True):
                    copy.write(block)
        except Exception as err:  # a file that stops decoding, a full temporary folder
            os.unlink(name)
            raise A2SBError(f"cannot decode audio file {self.path} into a temporary copy: {error_line(err)}") \
                from None
        self._file.close()
        self._file, self._copy, self._exact_seeks = sf.SoundFile(name), name, True
        self._remove_copy = weakref.finalize(self, _unlink_quietly, name)
        self._position = 0

    def _decode(self, frames: int) -> np.ndarray:
        try:
            data = self._file.read(frames=frames, dtype="float32", always_2d=True)
        except Exception as err:
            raise A2SBError(f"cannot decode audio file {self.path}: {error_line(err)}") from None
        self._position += data.shape[0]
        data = data.T
        if self.downmix:
            data = data.mean(axis=0, keepdims=True)
        if not np.isfinite(data).all():
            data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
        return np.ascontiguousarray(data, dtype=np.float32)

    def read(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.length)
        if stop <= start:
            return np.zeros((self.channels, 0), np.float32)
        if self.rate == self.rate_in:
            self._seek(start)
            data = self._decode(stop - start)
            if data.shape[1] < stop - start:
                raise A2SBError(f"cannot decode audio file {self.path}: file is truncated")
            return data
        return self._read_resampled(start, stop)

    def _read_resampled(self, start: int, stop: int) -> np.ndarray:
        if self._resampler is None or start < self._buffer_start:
            self._seek(0)
            self._resampler = soxr.ResampleStream(self.rate_in, self.rate, self.channels, dtype="float32",
                                                  quality="HQ")
            self._buffer = np.zeros((self.channels, 0), np.float32)
            self._buffer_start, self._consumed = 0, 0
        while self._buffer_start + self._buffer.shape[1] < stop:
            chunk = self._decode(1 << 16)
            self._consumed += chunk.shape[1]
            last = self._consumed >= self.frames_in or chunk.shape[1] == 0
            out = self._resampler.resample_chunk(np.ascontiguousarray(chunk.T), last=last).T
            if last:  # pad/trim to the promised length
                have = self._buffer_start + self._buffer.shape[1] + out.shape[1]
                out = np.pad(out, ((0, 0), (0, max(0, self.length - have))))[:, :out.shape[1] + self.length - have]
            self._buffer = np.concatenate([self._buffer, out], axis=1)
            drop = max(0, min(start, self._buffer_start + self._buffer.shape[1]) - self.HISTORY - self._buffer_start)
            if drop:
                self._buffer, self._buffer_start = self._buffer[:, drop:], self._buffer_start + drop
            if last:
                break
        return self._buffer[:, start - self._buffer_start:stop - self._buffer_start].copy()


class StreamResampler:
    """Resamples a stream of (channels, n) chunks from rate_in to rate_out, delivering exactly `length`
    output samples in total (soxr's streamed output, padded or trimmed at the end)."""

    def __init__(self, rate_in: int, rate_out: int, channels: int, length: int, write: Callable[[np.ndarray], None]):
        self.stream = soxr.ResampleStream(rate_in, rate_out, channels, dtype="float32", quality="HQ")
        self.channels, self.length, self.done, self.write_out = channels, length, 0, write

    def write(self, chunk: np.ndarray, last: bool = False) -> None:
        out = self.stream.resample_chunk(np.ascontiguousarray(np.asarray(chunk, np.float32).T), last=last).T
        if last:
            out = np.pad(out, ((0, 0), (0, max(0, self.length - self.done - out.shape[1]))))
        out = out[:, :max(0, self.length - self.done)]
        self.done += out.shape[1]
        if out.shape[1]:
            self.write_out(out)

    def close(self) -> None:
        self.write(np.zeros((self.channels, 0), np.float32), last=True)
