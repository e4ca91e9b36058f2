"""Which cells of the picture are generated (docs/method.md §Masks): 1 = generate, 0 = known.

Bandwidth extension generates every row at or above the cutoff's row; inpainting every frame whose
STFT window reaches into a gap. A mask is the same in the picture's three channels, so one channel is
made and broadcast.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .representation import HOP, N_FFT, N_ROWS, frame_of_time, row_of_frequency

FILL_NOISE = 0.5  # std of the white noise that fills the region to generate in x1
GAP_WIDEN_FRAMES = 2  # a frame's window reaches two hops each way: its neighbours carry some of a gap
MIN_WORK_SAMPLES = 2 * N_FFT  # shorter audio is zero-padded for the transforms, then trimmed


def gap_frames(start: float, end: float, frames: int) -> slice:
    """Frames to generate for a gap [start, end) s: frame_of_time widened by two frames each side (the
    published timestamp convention), extended to every frame whose window has non-zero weight on a
    gap sample (its window spans samples 512·j ± 1023)."""
    first = frame_of_time(start) - GAP_WIDEN_FRAMES
    stop = frame_of_time(end) + GAP_WIDEN_FRAMES
    s, e = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    first = min(first, -(-(s - (N_FFT // 2 - 1)) // HOP))
    stop = max(stop, (e - 1 + N_FFT // 2 - 1) // HOP + 1)
    return slice(max(first, 0), min(stop, frames))


class PictureMask:
    """The mask of a restoration of `length` samples at 44.1 kHz: rows from `cutoff` (Hz, or None) up,
    and the frames of `gaps` (seconds), over the picture of the waveform extended to whole hops."""

    def __init__(self, length: int, cutoff: float | None, gaps: list[tuple[float, float]]):
        self.length, self.cutoff, self.gaps = length, cutoff, list(gaps)
        self.work_length = max(length, MIN_WORK_SAMPLES)
        self.frames = 1 + -(-self.work_length // HOP)
        self.first_row = None if cutoff is None else row_of_frequency(cutoff)
        self.gap_frames = np.zeros(self.frames, dtype=bool)
        for start, end in self.gaps:
            self.gap_frames[gap_frames(start, end, self.frames)] = True

    @property
    def mode(self) -> str:
        """"bwe" (the whole output is the model's), "gaps" (model output spliced into the gaps) or "none"."""
        if self.cutoff is not None:
            return "bwe"
        return "gaps" if self.gaps else "none"

    def __call__(self, a: int, b: int) -> torch.Tensor:
        """(1, 1, 1024, b − a) mask of frames [a, b)."""
        rows = torch.zeros(N_ROWS, 1)
        if self.first_row is not None:
            rows[self.first_row:] = 1.0
        cols = torch.from_numpy(self.gap_frames[a:b].astype(np.float32))[None, :]
        return torch.maximum(rows, cols)[None, None]
