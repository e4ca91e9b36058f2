"""Codec holes (docs/method.md §Masks): time-frequency cells below a lossy decode's band limit that its
encoder left (nearly) empty. A perceptual coder spends no bits on a band it judges masked, so the decode
has cells far quieter than the music around them; codec repair regenerates them with the band above
the cutoff (one time-frequency mask).

A cell is a hole when its power (mean of the channels) lies at least HOLE_DEPTH_DB below the median
power of its neighbourhood (HOLE_BINS bins × HOLE_FRAMES frames), between HOLE_MIN_HZ and the cutoff,
and the neighbourhood is not near silence. The test sees only the decode, so it is the same in training
(items degraded by real encoders) and in restoration. Measured on a full-band render through LAME and
libvorbis (experiment in docs/experiments.md, "codec holes"): it marks 4–7 % of the cells below the
cutoff of a 56–75 kbit/s decode with a precision of 0.7–0.9 against cells ≥ 15 dB below the original,
and 1.1–1.4 % of the cells of the original itself (harmonic valleys that move): so it is only used on
audio the analysis calls a lossy decode, and only where the holes are more than HOLE_GATE_SHARE.
"""

from __future__ import annotations

import numpy as np
import torch

from .audio import SAMPLE_RATE
from .representation import N_FFT, N_ROWS

HOLE_DEPTH_DB = 15.0
HOLE_BINS = 5
HOLE_FRAMES = 15
HOLE_MIN_HZ = 2000.0
MARGIN_FRAMES = HOLE_FRAMES // 2  # frames each side a window's holes depend on
# A neighbourhood quieter than this (STFT power; a full-scale sine's bin is 2.6e5, i.e. 90 dB above)
# is near silence: a dip there is no coder's doing that anyone would hear.
SILENCE_POWER = 2.6e-4
# Holes are regenerated only where they are more than this share of the band from HOLE_MIN_HZ to the
# cutoff: LAME at 56 / 113 / 161 kbit/s on a full-band render gave 4.3 / 3.6 / 2.2 % marked cells (at
# 161 kbit/s mostly false: precision 0.3), the original itself 1.1 %.
HOLE_GATE_SHARE = 0.03


def first_hole_row() -> int:
    """Picture row (DC dropped) of the lowest bin that may be a hole."""
    return int(np.ceil(HOLE_MIN_HZ * N_FFT / SAMPLE_RATE)) - 1


def hole_cells(spec: torch.Tensor, stop_row: int | None = None) -> torch.Tensor:
    """(N_ROWS, W) bool: the holes of a complex STFT `spec` (C×1025×W or 1025×W, as
    representation.stft gives), in picture rows (row r is bin r + 1), below `stop_row` (the cutoff's
    row; None: every row). The first and last MARGIN_FRAMES frames see a truncated neighbourhood: give
    a window with that many frames of margin on each side and cut them off."""
    from scipy.ndimage import median_filter

    power = spec.abs().square()
    if power.dim() == 3:
        power = power.mean(0)
    power = power[1:].float().cpu().numpy()  # picture rows
    stop = N_ROWS if stop_row is None else int(min(max(stop_row, 0), N_ROWS))
    first = first_hole_row()
    holes = np.zeros(power.shape, dtype=bool)
    if stop <= first or power.shape[1] == 0:
        return torch.from_numpy(holes)
    # The neighbourhood reaches HOLE_BINS // 2 rows past the band; the median is taken on log power.
    lo, hi = max(first - HOLE_BINS // 2, 0), min(stop + HOLE_BINS // 2, N_ROWS)
    level = 10.0 * np.log10(power[lo:hi] + 1e-20)
    # separable: the median over HOLE_FRAMES frames, then over HOLE_BINS bins (3.5× faster than the 2-D
    # median, which found the same share of holes with the same precision on the decodes measured)
    around = median_filter(median_filter(level, size=(1, HOLE_FRAMES), mode="nearest"), size=(HOLE_BINS, 1),
                           mode="nearest")
    band = slice(first - lo, stop - lo)
    deep = level[band] < around[band] - HOLE_DEPTH_DB
    audible = around[band] > 10.0 * np.log10(SILENCE_POWER)
    holes[first:stop] = deep & audible
    return torch.from_numpy(holes)


def hole_share(holes: torch.Tensor, stop_row: int | None = None) -> float:
    """Fraction of the cells from HOLE_MIN_HZ up to `stop_row` that are holes."""
    stop = N_ROWS if stop_row is None else int(stop_row)
    band = holes[first_hole_row():stop]
    return float(band.float().mean()) if band.numel() else 0.0
