"""Bridge sampling with MultiDiffusion over overlapping windows (SPEC sections 5 and 6).

`sample` runs the published sampler on a whole picture held in memory. Its random numbers are a
function of (seed, step, kind, batch item, block of frames) only, never of the order in which windows
are processed, so a streaming implementation that visits the picture piece by piece can reproduce
it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .bridge import BridgeSchedule

NOISE_BLOCK = 128  # frames per independently seeded noise block
DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # (windows, t) -> predicted scaled noise


def time_grid(steps: int, t_end: float = 0.05) -> torch.Tensor:
    """Published grid linspace(1, 0.05, N) in float32: N − 1 network evaluations."""
    if steps < 2:
        raise ValueError("steps must be at least 2 (steps − 1 network evaluations)")
    return torch.linspace(1.0, t_end, steps, dtype=torch.float32)


def padded_width(width: int, window: int, hop: int) -> int:
    """Width after the wrap-around padding of SPEC 6.2 (generalised to any window/hop)."""
    if width <= window:
        return window
    return math.ceil((width - window) / hop) * hop + window


def window_starts(padded: int, window: int, hop: int) -> list[int]:
    return list(range(0, padded - window + 1, hop))


def wrap_pad(x: torch.Tensor, padded: int) -> torch.Tensor:
    """Append copies of the first frames (repeating the picture if it is shorter than the pad)."""
    width = x.shape[-1]
    reps = math.ceil(padded / width)
    return torch.cat([x] * reps, dim=-1)[..., :padded] if reps > 1 else x


def _mix64(*values: int) -> int:
    """SplitMix64-style hash of integers to a 63-bit seed."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (v & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class PositionalNoise:
    """Standard normal noise addressed by (step, kind, item, frame): the same numbers whatever part of
    the picture is asked for and in whatever order."""

    def __init__(self, seed: int, rows: int, channels: int = 3):
        self.seed, self.rows, self.channels = int(seed), rows, channels

    def block(self, step: int, kind: int, item: int, index: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(_mix64(self.seed, step, kind, item, index))
        return torch.randn(self.channels, self.rows, NOISE_BLOCK, generator=gen)

    def frames(self, step: int, kind: int, items: list[int], start: int, stop: int) -> torch.Tensor:
        """(len(items), C, rows, stop − start) noise for frames [start, stop)."""
        first, last = start // NOISE_BLOCK, (stop - 1) // NOISE_BLOCK
        out = []
        for item in items:
            blocks = torch.cat([self.block(step, kind, item, i) for i in range(first, last + 1)], dim=-1)
            out.append(blocks[..., start - first * NOISE_BLOCK: stop - first * NOISE_BLOCK])
        return torch.stack(out)


def multidiffusion(denoise: DenoiseFn, x: torch.Tensor, t: float, window: int, hop: int,
                   batch_size: int) -> torch.Tensor:
    """Network output averaged over overlapping windows (uniform weights) for a padded picture x."""
    b, _, _, padded = x.shape
    starts = window_starts(padded, window, hop)
    jobs = [(i, s) for i in range(b) for s in starts]  # batch-major, then position
    total = torch.zeros_like(x)
    count = torch.zeros(padded, dtype=x.dtype, device=x.device)
    for s in starts:
        count[s:s + window] += 1
    for k in range(0, len(jobs), batch_size):
        chunk = jobs[k:k + batch_size]
        v = denoise(torch.stack([x[i, :, :, s:s + window] for i, s in chunk]), t)
        for (i, s), vi in zip(chunk, v):
            total[i, :, :, s:s + window] += vi
    return total / count


def sample(denoise: DenoiseFn, x1: torch.Tensor, mask: torch.Tensor, t_steps: torch.Tensor, *,
           schedule: BridgeSchedule | None = None, sde: bool = True, window: int = 256, hop: int = 128,
           seed: int | None = None, batch_size: int = 16, items: list[int] | None = None,
           progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """The published sampler (SPEC 5.2) on a B×3×H×W picture x1 with mask (B or 1)×(1 or 3)×H×W.

    Returns the masked clean estimate of the last network call; outside the mask it equals x1.
    `items` names the batch rows for the positional noise (default 0..B−1).
    """
    schedule = schedule or BridgeSchedule()
    if seed is None:
        seed = int(torch.randint(0, 2**62, ()).item())
    b, c, h, width = x1.shape
    mask = mask.to(x1.dtype).expand(b, -1, h, width)
    padded = padded_width(width, window, hop)
    x1p, maskp = wrap_pad(x1, padded), wrap_pad(mask, padded)
    noise = PositionalNoise(seed, h, c)
    items = list(range(b)) if items is None else items
    t_list = [float(v) for v in t_steps]
    std_f = schedule.std_fwd(torch.tensor(t_list, dtype=torch.float64))
    std_b = schedule.std_sb(torch.tensor(t_list, dtype=torch.float64))
    xt = x1p.clone()
    for i in range(len(t_list) - 1):
        v = multidiffusion(denoise, xt, t_list[i], window, hop, batch_size)
        x0 = xt - float(std_f[i]) * v
        x0 = maskp * x0 + (1 - maskp) * x1p
        if progress is not None:
            progress(i)
        if i == len(t_list) - 2:  # the final posterior step is discarded (SPEC 5.3)
            return x0[..., :width]
        def draw(kind: int, step: int = i, like: torch.Tensor = xt) -> torch.Tensor | None:
            return noise.frames(step, kind, items, 0, padded).to(like) if sde else None

        xt = posterior_step(xt, x0, x1p, maskp, float(std_f[i]), float(std_f[i + 1]), float(std_b[i + 1]), draw)
    raise AssertionError("unreachable")


def posterior_step(xt, x0, x1, mask, std_t: float, std_next: float, std_sb_next: float, draw) -> torch.Tensor:
    """x_t' from p(x_t' | x0_hat, x_t) (SPEC 5.2, step 5), then the known region re-noised from x1
    (step 6). `draw(kind)` returns the noise for kind 0 (posterior) or 1 (replacement), or None for
    the deterministic OT-ODE sampler."""
    var_t, var_next = std_t**2, std_next**2
    var_delta = var_t - var_next
    out = (var_delta / var_t) * x0 + (var_next / var_t) * xt
    eps1 = draw(0) if std_next > 0 else None
    if eps1 is not None:
        out = out + math.sqrt(var_next * var_delta / var_t) * eps1
    eps2 = draw(1)
    known = x1 if eps2 is None else x1 + std_sb_next * eps2
    return (1 - mask) * known + mask * out
