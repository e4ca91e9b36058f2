"""Degradation masks on the picture (SPEC section 2). 1 = region to generate, 0 = known.

Masks are (..., 1, H, W): the same in all three channels, so one channel is stored and broadcast.
"""

from __future__ import annotations

import torch

from .representation import N_ROWS, frame_of_time, row_of_frequency

FILL_NOISE = 0.5


def bwe_mask(cutoff_hz: float, width: int, n_rows: int = N_ROWS, device=None) -> torch.Tensor:
    """Bandwidth extension: rows at or above row_of_frequency(cutoff) (F11), all frames."""
    rows = torch.arange(n_rows, device=device)
    m = (rows >= row_of_frequency(cutoff_hz, n_rows)).float()
    return m[None, :, None].expand(1, n_rows, width).contiguous()


def gap_mask(gaps: list[tuple[float, float]], width: int, n_rows: int = N_ROWS, widen: int = 0,
             device=None) -> torch.Tensor:
    """Inpainting: frames [int(sr/hop·start), int(sr/hop·end)) of each gap, widened by `widen` frames
    on each side (a frame's window reaches two hops past its centre, so truly missing audio also
    corrupts the two frames next to a gap)."""
    cols = torch.zeros(width, device=device)
    for start, end in gaps:
        a = max(frame_of_time(start) - widen, 0)
        b = min(frame_of_time(end) + widen, width)
        if b > a:
            cols[a:b] = 1.0
    return cols[None, None, :].expand(1, n_rows, width).contiguous()


def span_mask(start_col: int, end_col: int, width: int, n_rows: int = N_ROWS, device=None) -> torch.Tensor:
    cols = torch.zeros(width, device=device)
    cols[max(start_col, 0):min(end_col, width)] = 1.0
    return cols[None, None, :].expand(1, n_rows, width).contiguous()


def union(*masks: torch.Tensor) -> torch.Tensor:
    """Several degradations applied in sequence: the clipped sum of their masks."""
    return torch.clamp(sum(masks), 0.0, 1.0)


def noise_fill(x0: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, level: float = FILL_NOISE) -> torch.Tensor:
    """Degraded picture (F13): the known region as is, white noise of std `level` in the hole (all channels)."""
    return x0 * (1 - mask) + mask * level * noise
