"""The picture of a long waveform, piece by piece (docs/method.md §Representation).

`WaveformPicture` cuts frames [a, b) of the STFT picture out of a waveform read piece by piece; the
STFT of a slice with 1024 samples of context on each side gives exactly the frames of the whole
signal, and the reflect padding at both ends is reproduced by index mapping. `OverlapAdd` is the
matching streaming inverse (weighted overlap-add divided by the window envelope, as torch.istft).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .representation import HOP, N_FFT, spec_to_representation


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

    def dc_row(self, a: int, b: int) -> torch.Tensor:
        """The DC bin of frames [a, b) as `spectrum` gives it (channels, 1, b − a), without the rest of the
        transform: each frame's window-weighted sum."""
        positions = np.arange(HOP * a - N_FFT // 2, HOP * (b - 1) + N_FFT // 2)
        seg = torch.from_numpy(np.ascontiguousarray(self.samples(positions), dtype=np.float32))
        frames = seg.unfold(-1, N_FFT, HOP)  # (channels, b − a, N_FFT)
        return (frames @ self.window).unsqueeze(-2).to(torch.complex64)

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
