"""Which cells of the picture are generated (docs/method.md §Masks): 1 = generate, 0 = known.

Bandwidth extension generates every row at or above the cutoff's row; inpainting every frame whose
STFT window reaches into a gap; codec repair the holes a lossy encoder left below its band limit
(`a2sb.holes`, cells found in the input's own spectrum, `HoleCells`). A mask is the same in the
picture's three channels (and in all audio channels), so one channel is made and broadcast.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .holes import MARGIN_FRAMES, hole_cells, hole_share
from .representation import HOP, N_FFT, N_ROWS, frame_of_time, row_of_frequency, spread_blocks

FILL_NOISE = 0.5  # std of the white noise that fills the region to generate in x1
GAP_WIDEN_FRAMES = 2  # a frame's window reaches two hops each way: its neighbours carry some of a gap
MIN_WORK_SAMPLES = 2 * N_FFT  # shorter audio is zero-padded for the transforms, then trimmed


def gap_samples(gaps) -> list[tuple[int, int]]:
    """Gaps given in seconds [(start, end), ...] as sample ranges at 44.1 kHz."""
    return [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in gaps]


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


HOLE_BLOCK_FRAMES = 256  # the hole share of a long recording: from blocks of a training segment's length
HOLE_BLOCKS = 16


class HoleCells:
    """The codec holes of frames [a, b) of a recording: `hole_cells` of its spectrum over
    [a − MARGIN_FRAMES, b + MARGIN_FRAMES) (clipped to the `frames` of the picture), margins cut off, so
    a frame's cells are the same in every window that holds it. `spectrum(a, b)`: the complex STFT
    (C×1025×(b − a)); `stop_hz`: the top of the band searched (None: every row).

    The cells are found for aligned blocks of HOLE_BLOCK_FRAMES frames, the last few kept, so overlapping
    windows (MultiDiffusion) do not search a frame twice: the median filter is the costly part."""

    KEPT_BLOCKS = 4

    def __init__(self, spectrum, frames: int, stop_hz: float | None = None):
        self.spectrum, self.frames, self.stop_hz = spectrum, frames, stop_hz
        self.stop_row = None if stop_hz is None else row_of_frequency(stop_hz)
        self._blocks: dict[int, torch.Tensor] = {}

    def cells(self, a: int, b: int) -> torch.Tensor:
        """(1024, b − a) bool, searched now."""
        lo, hi = max(0, a - MARGIN_FRAMES), min(self.frames, b + MARGIN_FRAMES)
        return hole_cells(self.spectrum(lo, hi), self.stop_row)[:, a - lo:b - lo]

    def _block(self, k: int) -> torch.Tensor:
        if k not in self._blocks:
            if len(self._blocks) >= self.KEPT_BLOCKS:
                del self._blocks[min(self._blocks)]
            start = k * HOLE_BLOCK_FRAMES
            self._blocks[k] = self.cells(start, min(self.frames, start + HOLE_BLOCK_FRAMES))
        return self._blocks[k]

    def __call__(self, a: int, b: int) -> torch.Tensor:
        """(1024, b − a) bool (from the kept blocks)."""
        n = HOLE_BLOCK_FRAMES
        parts = [self._block(k)[:, max(a, k * n) - k * n:min(b, (k + 1) * n) - k * n]
                 for k in range(a // n, (b - 1) // n + 1)]
        return torch.cat(parts, dim=1) if parts else torch.zeros(N_ROWS, 0, dtype=torch.bool)

    def share(self, blocks: int = HOLE_BLOCKS, block_frames: int = HOLE_BLOCK_FRAMES) -> float:
        """The share of holes in the band searched, measured on up to `blocks` evenly spread blocks of
        `block_frames` frames (so hours cost no more than minutes)."""
        cells = torch.cat([self.cells(a, b) for a, b in spread_blocks(self.frames, blocks, block_frames)], dim=1)
        return hole_share(cells, self.stop_row)


class PictureMask:
    """The mask of a restoration of `length` samples at 44.1 kHz: rows from `cutoff` (Hz, or None) up,
    the frames of `gaps` (seconds) and the cells `holes(a, b)` gives ((1024, b − a) bool, e.g. a
    `HoleCells`; None: none), over the picture of the waveform extended to whole hops."""

    def __init__(self, length: int, cutoff: float | None, gaps: list[tuple[float, float]], holes=None):
        self.length, self.cutoff, self.gaps, self.holes = length, cutoff, list(gaps), holes
        self.work_length = max(length, MIN_WORK_SAMPLES)
        self.frames = 1 + -(-self.work_length // HOP)
        self.first_row = None if cutoff is None else row_of_frequency(cutoff)
        self.gap_frames = np.zeros(self.frames, dtype=bool)
        for start, end in self.gaps:
            self.gap_frames[gap_frames(start, end, self.frames)] = True

    @property
    def mode(self) -> str:
        """"whole" (a band or codec holes: the whole output is the model's), "gaps" (model output spliced
        into the gaps) or "none"."""
        if self.cutoff is not None or self.holes is not None:
            return "whole"
        return "gaps" if self.gaps else "none"

    def __call__(self, a: int, b: int) -> torch.Tensor:
        """(1, 1, 1024, b − a) mask of frames [a, b)."""
        rows = torch.zeros(N_ROWS, 1)
        if self.first_row is not None:
            rows[self.first_row:] = 1.0
        cols = torch.from_numpy(self.gap_frames[a:b].astype(np.float32))[None, :]
        mask = torch.maximum(rows, cols)
        if self.holes is not None:
            mask = torch.maximum(mask, self.holes(a, b).to(mask.dtype))
        return mask[None, None]
