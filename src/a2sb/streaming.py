"""Bounded-memory sampling for long audio, and the streaming STFT pieces around it.

Wavefront order
---------------
`a2sb.sampler.sample` runs every diffusion step over the whole picture before the next one, so it
holds several full-length copies of the picture. Here the frames are cut into blocks of
g = gcd(window, hop) frames (window and hop are whole numbers of blocks) and the work items
"(step i, window k)" are run in an order in which each one's inputs are ready:

* window k at step i reads x_t^(i) on its blocks;
* x_t^(i+1) of block b needs the step-i network outputs of every window covering b, the last of
  which is window k + lag for the blocks of window k (lag = (window/g − 1) // (hop/g));
* so item (i, k) goes into group q = k // G + i·E with E = ceil(lag / G) + 1, and the groups are run
  in order q = 0, 1, 2, ... (all items of one group are independent and are batched together, over
  steps, positions and channels). G windows per step and group are chosen so that a group fills
  about one network batch.

After each group, every block whose covering windows are all done at step i is finalised: its
averaged network output gives x̂0, then either x_t^(i+1) (posterior step) or, at the last step, the
finished output block, which is handed to the caller and forgotten. Only a band of blocks per step is
alive at any time, so memory depends on window, steps and batch size, not on the length. Every
random number comes from `PositionalNoise` addressed by (step, kind, item, frame), and the network
outputs are accumulated in the same order as the full-array sampler, so the result equals
`sample(...)` on the whole picture up to the rounding of differently composed network batches.

Fast inpainting
---------------
Outside the mask the sampler forces x̂0 = x1 and x_t = x1 (+ σ_b·ε), whatever the network says. So
a window that contains no masked frame only produces numbers that are thrown away, and every window
covering a masked frame contains it. Skipping the windows that touch no masked frame (`masked_frames`)
therefore changes nothing: the result is still exactly the full sampler's, but the network runs only
around the gaps, blocks no active window touches are never even transformed (their output is the
input), and a gap of any length is covered by as many windows as it needs.

Streaming transforms
--------------------
`WaveformPicture` cuts frames [a, b) of the STFT picture out of a waveform read piece by piece; the
STFT of a slice with 1024 samples of context on each side gives exactly the frames of the whole
signal, and the reflect padding at both ends is reproduced by index mapping. `OverlapAdd` is the
matching streaming inverse (weighted overlap-add divided by the window envelope, as torch.istft).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from .audio import temporary_beside
from .bridge import BridgeSchedule
from .errors import A2SBError
from .representation import HOP, N_FFT, SAMPLE_RATE, spec_to_representation
from .sampler import PositionalNoise, padded_width, posterior_step, window_starts

# (windows (n, 3, H, window), t (n,) float32) -> predicted scaled noise. Each window has its own t,
# because one batch mixes windows of several steps.
BatchDenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (start, stop) -> (x1 (items, 3, H, n), mask broadcastable to it) for frames [start, stop) of the picture.
SourceFn = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


class _Geometry:
    """Blocks, windows and coverage of a picture of `width` frames after the wrap padding."""

    def __init__(self, width: int, window: int, hop: int, masked_frames: np.ndarray | None):
        if window <= 0 or hop <= 0 or hop > window:
            raise A2SBError(f"need 0 < hop <= window, got window {window}, hop {hop}")
        self.width, self.window, self.hop = width, window, hop
        self.block = math.gcd(window, hop)
        self.per_window = window // self.block  # blocks per window
        self.per_hop = hop // self.block  # blocks per hop
        self.padded = padded_width(width, window, hop)
        self.n_blocks = self.padded // self.block
        self.n_windows = len(window_starts(self.padded, window, hop))
        self.lag = (self.per_window - 1) // self.per_hop
        if masked_frames is None:
            self.active = np.ones(self.n_windows, dtype=bool)
        else:
            masked = np.asarray(masked_frames, dtype=bool)
            if masked.shape != (width,):
                raise ValueError(f"masked_frames must have {width} entries, got {masked.shape}")
            padded_masked = masked[np.arange(self.padded) % width]  # the wrap padding copies the mask too
            self.active = np.array([padded_masked[k * hop:k * hop + window].any() for k in range(self.n_windows)])
        self.covered = np.zeros(self.n_blocks, dtype=bool)
        for k in np.flatnonzero(self.active):
            self.covered[k * self.per_hop:k * self.per_hop + self.per_window] = True

    def last_window(self, b: int) -> int:
        return min(b // self.per_hop, self.n_windows - 1)

    def count(self, b: int) -> int:
        """Number of windows (active or not) covering block b: the full sampler's divisor."""
        first = max(0, -(-(b - self.per_window + 1) // self.per_hop))
        return self.last_window(b) - first + 1

    def blocks_of(self, k: int) -> range:
        return range(k * self.per_hop, k * self.per_hop + self.per_window)


def count_windows(width: int, window: int, hop: int, masked_frames: np.ndarray | None = None) -> int:
    """Windows per item and step that `stream_sample` runs (all of them, or those touching the mask)."""
    return int(_Geometry(width, window, hop, masked_frames).active.sum())


def stream_sample(denoise: BatchDenoiseFn, source: SourceFn, width: int, n_items: int, t_steps: torch.Tensor, *,
                  schedule: BridgeSchedule | None = None, sde: bool = True, window: int = 256,
                  hop: int = 128, seed: int = 0, batch_size: int = 16, items: list[int] | None = None,
                  masked_frames: np.ndarray | None = None, device: torch.device | str | None = None,
                  group: int | None = None, progress: Callable[[int], None] | None = None
                  ) -> Iterator[tuple[int, int, torch.Tensor | None]]:
    """The sampler of `a2sb.sampler.sample` in wavefront order (see the module docstring).

    Yields (start, stop, x0) for consecutive frame ranges covering [0, width), where x0 is the final
    masked clean estimate of those frames (items, 3, H, stop − start), or None where no window was run
    (the output there is x1). `masked_frames` (bool per frame) enables skipping windows without any
    masked frame; None runs every window. `progress(n)` is called with the number of windows just run.
    """
    geo = _Geometry(width, window, hop, masked_frames)
    items = list(range(n_items)) if items is None else list(items)
    schedule = schedule or BridgeSchedule()
    noises: dict[tuple[int, int], PositionalNoise] = {}  # by picture (channels, rows)
    t_list = [float(v) for v in t_steps]
    n_eval = len(t_list) - 1
    if n_eval < 1:
        raise ValueError("need at least two time points")
    std_f = [float(v) for v in schedule.std_fwd(torch.tensor(t_list, dtype=torch.float64))]
    std_b = [float(v) for v in schedule.std_sb(torch.tensor(t_list, dtype=torch.float64))]
    g = geo.block
    n_active = int(geo.active.sum())
    if group is None:  # enough windows per step in one group to fill a batch once all steps are under way
        group = max(1, math.ceil(batch_size / (n_items * n_eval)))
    group = max(1, min(int(group), geo.n_windows))
    spacing = -(-geo.lag // group) + 1
    n_groups = -(-geo.n_windows // group)

    head: tuple[torch.Tensor, torch.Tensor] | None = None  # first frames, source of the wrap padding
    inputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # block -> (x1, mask) until the last step
    states: list[dict[int, torch.Tensor]] = [{} for _ in range(n_eval)]  # x_t^(i) per block
    sums: list[dict[int, torch.Tensor]] = [{} for _ in range(n_eval)]  # summed network outputs
    finalised = [0] * n_eval  # next block to finalise, per step
    emitted = 0

    def fetch(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        x1, mask = source(start, stop)
        if x1.shape[0] != n_items:
            raise ValueError(f"source gave {x1.shape[0]} items, expected {n_items}")
        return x1.to(device), mask.to(device=device, dtype=x1.dtype)

    def block_input(b: int) -> tuple[torch.Tensor, torch.Tensor]:
        nonlocal head
        if b in inputs:
            return inputs[b]
        lo, hi = b * g, (b + 1) * g
        x_parts, m_parts = [], []
        if lo < width:
            x, m = fetch(lo, min(hi, width))
            x_parts.append(x)
            m_parts.append(m)
        if hi > width:
            if head is None:
                head = fetch(0, min(width, geo.padded - width))
            idx = torch.arange(max(lo, width), hi, device=head[0].device)
            idx = (idx - width) % width
            x_parts.append(head[0].index_select(-1, idx))
            m_parts.append(head[1].index_select(-1, idx))
        inputs[b] = (torch.cat(x_parts, -1), torch.cat(m_parts, -1)) if len(x_parts) > 1 else (x_parts[0], m_parts[0])
        return inputs[b]

    def state(i: int, b: int) -> torch.Tensor:
        return block_input(b)[0] if i == 0 else states[i][b]

    def draw(i: int, b: int, like: torch.Tensor):
        if not sde:
            return lambda kind: None
        key = (like.shape[-3], like.shape[-2])
        if key not in noises:
            noises[key] = PositionalNoise(seed, key[1], key[0])
        return lambda kind: noises[key].frames(i, kind, items, b * g, (b + 1) * g).to(like)

    def finalise(i: int, b: int):
        """Block b is complete at step i: x̂0 from the averaged outputs, then x_t^(i+1) or the output."""
        if not geo.covered[b]:
            return None
        x1, mask = block_input(b)
        xt = state(i, b)
        v = sums[i].pop(b) / float(geo.count(b))
        x0 = xt - std_f[i] * v
        x0 = mask * x0 + (1 - mask) * x1
        states[i].pop(b, None)
        if i == n_eval - 1:
            inputs.pop(b, None)
            return x0
        states[i + 1][b] = posterior_step(xt, x0, x1, mask, std_f[i], std_f[i + 1], std_b[i + 1], draw(i, b, xt))
        return None

    def run(jobs: list[tuple[int, int]]):
        entries = [(i, k, c) for i, k in jobs for c in range(n_items)]
        for start in range(0, len(entries), batch_size):
            chunk = entries[start:start + batch_size]
            first = state(chunk[0][0], chunk[0][1] * geo.per_hop)
            batch = first.new_empty(len(chunk), *first.shape[1:-1], window)
            for n, (i, k, c) in enumerate(chunk):  # copy the window's blocks straight into the batch
                for j, b in enumerate(geo.blocks_of(k)):
                    batch[n, ..., j * g:(j + 1) * g] = state(i, b)[c]
            t = torch.tensor([t_list[i] for i, _, _ in chunk], dtype=torch.float32)
            out = denoise(batch, t.to(batch.device))
            for (i, k, c), v in zip(chunk, out):
                for j, b in enumerate(geo.blocks_of(k)):
                    acc = sums[i].get(b)
                    if acc is None:
                        acc = sums[i][b] = torch.zeros_like(state(i, b))
                    acc[c] += v[..., j * g:(j + 1) * g]
            if progress is not None:
                progress(len(chunk))

    if n_active == 0:  # nothing masked: the output is the input
        for lo in range(0, width, g):
            yield lo, min(lo + g, width), None
        return

    for q in range(n_groups + (n_eval - 1) * spacing):
        jobs = []
        for i in range(n_eval):
            gi = q - i * spacing
            if 0 <= gi < n_groups:
                jobs += [(i, k) for k in range(gi * group, min(geo.n_windows, (gi + 1) * group)) if geo.active[k]]
        if jobs:
            run(jobs)
        for i in range(n_eval):
            done = min(max((q - i * spacing + 1) * group, 0), geo.n_windows)  # windows < done are finished
            while finalised[i] < geo.n_blocks and geo.last_window(finalised[i]) < done:
                out = finalise(i, finalised[i])
                finalised[i] += 1
                if i == n_eval - 1:
                    b = finalised[i] - 1
                    if b * g < width:
                        stop = min((b + 1) * g, width)
                        yield b * g, stop, None if out is None else out[..., :stop - b * g]
                        emitted = stop
    assert emitted == width, (emitted, width)


def sample_streaming(denoise: BatchDenoiseFn, x1: torch.Tensor, mask: torch.Tensor, t_steps: torch.Tensor, *,
                     skip_unmasked: bool = False, **options) -> torch.Tensor:
    """`stream_sample` on a picture held in memory (B×3×H×W): the same result as `sampler.sample`.

    With `skip_unmasked`, windows without masked frames are not run (fast inpainting)."""
    b, _, h, width = x1.shape
    mask = mask.to(x1.dtype)
    masked = (mask.expand(b, -1, h, width) > 0).any(dim=(0, 1, 2)).cpu().numpy() if skip_unmasked else None
    out = torch.empty_like(x1)
    for start, stop, x0 in stream_sample(denoise, lambda s, e: (x1[..., s:e], mask[..., s:e]), width, b, t_steps,
                                         masked_frames=masked, **options):
        out[..., start:stop] = x1[..., start:stop] if x0 is None else x0.to(out)
    return out


# ------------------------------------------------------------------------------------------ waveforms

class ArrayWave:
    """Random access to an in-memory (channels, samples) float32 waveform."""

    def __init__(self, audio: np.ndarray):
        self.audio = audio
        self.channels, self.length = audio.shape

    def read(self, start: int, stop: int) -> np.ndarray:
        return self.audio[:, start:stop]


class FileWave:
    """Random access to an audio file's samples as float32 (channels, n) at `rate` (None: the file's own),
    reading with seeking (or through a streaming resampler), so memory does not depend on the length.

    Requests should move forward; a request before the resampler's buffer restarts it. Non-finite
    samples read as 0; `downmix` averages all channels to mono."""

    HISTORY = 1 << 16  # resampled samples kept behind the last request

    def __init__(self, path: str | os.PathLike, rate: int | None = SAMPLE_RATE, downmix: bool = False):
        self.path = str(path)
        info = sf.info(self.path)
        self.rate_in, self.frames_in = int(info.samplerate), int(info.frames)
        self.rate = self.rate_in if rate is None else int(rate)
        self.downmix = downmix
        self.channels = 1 if downmix else int(info.channels)
        # soxr gives round(n·ratio) samples, both in one call and streamed
        self.length = self.frames_in if self.rate == self.rate_in else round(self.frames_in * self.rate / self.rate_in)
        self._file = sf.SoundFile(self.path)
        self._resampler = None
        self._buffer = np.zeros((self.channels, 0), np.float32)
        self._buffer_start = 0
        self._consumed = 0

    def close(self):
        self._file.close()

    def _decode(self, frames: int) -> np.ndarray:
        try:
            data = self._file.read(frames=frames, dtype="float32", always_2d=True)
        except Exception as err:
            raise A2SBError(f"cannot decode audio file {self.path}: {str(err).strip().splitlines()[-1]}") from None
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
            self._file.seek(start)
            data = self._decode(stop - start)
            if data.shape[1] < stop - start:
                raise A2SBError(f"cannot decode audio file {self.path}: file is truncated")
            return data
        return self._read_resampled(start, stop)

    def _read_resampled(self, start: int, stop: int) -> np.ndarray:
        if self._resampler is None or start < self._buffer_start:
            self._file.seek(0)
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


class WaveformPicture:
    """Frames [a, b) of the picture of a long waveform, equal to `to_representation` of the whole.

    The waveform of `length` samples is first extended to a multiple of the hop by reflection (so the
    inverse gives back every sample), then centred with reflect padding as torch.stft does; both
    paddings are index mappings into the original samples, so any range of frames needs only a
    bounded read."""

    def __init__(self, read: Callable[[int, int], np.ndarray], length: int):
        if length < N_FFT:
            raise ValueError(f"waveform too short for block transforms ({length} < {N_FFT} samples)")
        self.read, self.length = read, length
        self.extended = -(-length // HOP) * HOP
        self.frames = 1 + self.extended // HOP
        self.window = torch.hann_window(N_FFT, periodic=True)

    def samples(self, positions: np.ndarray) -> np.ndarray:
        """Samples of the centred, extended signal at positions relative to the extended start."""
        n = np.where(positions < 0, -positions, positions)
        n = np.where(n >= self.extended, 2 * (self.extended - 1) - n, n)
        n = np.where(n >= self.length, 2 * (self.length - 1) - n, n)
        lo, hi = int(n.min()), int(n.max()) + 1
        return self.read(lo, hi)[:, n - lo]

    def spectrum(self, a: int, b: int) -> torch.Tensor:
        """Complex STFT (channels, 1025, b − a) of frames [a, b)."""
        positions = np.arange(HOP * a - N_FFT // 2, HOP * (b - 1) + N_FFT // 2)
        seg = torch.from_numpy(np.ascontiguousarray(self.samples(positions), dtype=np.float32))
        return torch.stft(seg, N_FFT, HOP, window=self.window, center=False, return_complex=True)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        return spec_to_representation(self.spectrum(a, b))


class OverlapAdd:
    """Streaming inverse STFT: push complex frames (channels, 1025, n) in order from `first_frame`; get
    back the samples that no later frame touches, as torch.istft computes them (window-weighted
    overlap-add divided by the summed squared window). Samples are in the extended signal's time; the
    first returned sample is 0 when starting at frame 0, else the first one all of whose frames were
    pushed."""

    def __init__(self, channels: int, first_frame: int = 0):
        self.window = torch.hann_window(N_FFT, periodic=True)
        self.next_frame = first_frame
        self.base = HOP * first_frame - N_FFT // 2  # sample index of buffer[0]
        self.emit_from = 0 if first_frame == 0 else HOP * first_frame + HOP
        self.buffer = torch.zeros(channels, 0)
        self.envelope = torch.zeros(0)

    def push(self, spec: torch.Tensor) -> tuple[int, torch.Tensor]:
        """Add frames; returns (first sample index, samples (channels, m)) now complete."""
        n = spec.shape[-1]
        if n == 0:
            return self._take(self.emit_from)
        frames = torch.fft.irfft(spec, n=N_FFT, dim=-2) * self.window[:, None]  # (C, 2048, n)
        span = HOP * (n - 1) + N_FFT
        offset = HOP * self.next_frame - N_FFT // 2 - self.base
        need = offset + span
        if need > self.buffer.shape[-1]:
            grow = need - self.buffer.shape[-1]
            self.buffer = torch.cat([self.buffer, self.buffer.new_zeros(self.buffer.shape[0], grow)], -1)
            self.envelope = torch.cat([self.envelope, self.envelope.new_zeros(grow)])
        fold = torch.nn.functional.fold
        self.buffer[:, offset:need] += fold(frames, (1, span), (1, N_FFT), stride=(1, HOP))[:, 0, 0]
        sq = (self.window**2)[None, :, None].expand(1, N_FFT, n)
        self.envelope[offset:need] += fold(sq, (1, span), (1, N_FFT), stride=(1, HOP))[0, 0, 0]
        self.next_frame += n
        return self._take(HOP * self.next_frame - N_FFT // 2)

    def finish(self) -> tuple[int, torch.Tensor]:
        """The rest, after the signal's last frame: up to that frame's centre, like torch.istft."""
        return self._take(HOP * (self.next_frame - 1))

    def _take(self, complete_until: int) -> tuple[int, torch.Tensor]:
        start = max(self.emit_from, self.base)
        stop = max(start, complete_until)
        lo, hi = start - self.base, stop - self.base
        out = self.buffer[:, lo:hi] / self.envelope[lo:hi].clamp_min(1e-11)
        self.buffer, self.envelope = self.buffer[:, hi:], self.envelope[hi:]
        self.base += hi
        self.emit_from = stop
        return start, out


# -------------------------------------------------------------------------------------------- writing

class ArraySink:
    """Collects written chunks into one (channels, samples) array."""

    def __init__(self, channels: int):
        self.channels = channels
        self.chunks: list[np.ndarray] = []

    def write(self, chunk: np.ndarray) -> None:
        self.chunks.append(np.asarray(chunk, np.float32))

    def result(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((self.channels, 0), np.float32)
        return np.concatenate(self.chunks, axis=1)


class FileSink:
    """Writes chunks to a temporary file next to `path`, renamed into place by `commit` (so a failed run
    never leaves a partial output). Use as a context manager: leaving it without `commit` removes it."""

    FORMATS = {".wav": ("WAV", "FLOAT"), ".flac": ("FLAC", "PCM_24")}

    def __init__(self, path: str | os.PathLike, rate: int, channels: int):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in self.FORMATS:
            raise A2SBError(f"unsupported output format '{suffix or self.path.name}': use .wav or .flac")
        self.format, self.subtype = self.FORMATS[suffix]
        self.tmp = temporary_beside(self.path)  # mode 0666 less the umask, like any new file
        try:
            self.file = sf.SoundFile(self.tmp, "w", rate, channels, self.subtype, format=self.format)
        except BaseException:
            os.unlink(self.tmp)
            raise
        self.clipped = 0
        self.committed = False

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, np.float32)
        if self.format == "FLAC":  # integer samples: clip rather than wrap around
            over = np.abs(chunk) > 1.0
            if over.any():
                self.clipped += int(over.sum())
                chunk = np.clip(chunk, -1.0, 1.0)
        self.file.write(np.ascontiguousarray(chunk.T))

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)
        self.committed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if not self.committed:
            self.file.close()
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
        return False


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
