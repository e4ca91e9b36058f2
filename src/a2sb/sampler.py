"""Bridge sampling with MultiDiffusion over overlapping windows (docs/method.md §Sampler and
§MultiDiffusion): the reference sampler and the streaming one restoration runs.

`sample` runs the published sampler on a whole picture held in memory. Its random numbers are a
function of (seed, step, kind, batch item, block of frames) only, never of the order in which windows
are processed, so `stream_sample`, which visits the picture piece by piece, reproduces it.

Wavefront order (`stream_sample`)
---------------------------------
`sample` runs every diffusion step over the whole picture before the next one, so it holds several
full-length copies of the picture. `stream_sample` cuts the frames into blocks of g = gcd(window, hop)
frames (window and hop are whole numbers of blocks) and runs the work items "(step i, window k)" in an
order in which each one's inputs are ready:

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
alive at any time, so memory depends on window, steps and batch size, not on the length. The network
outputs are accumulated in the same order as `sample`, so the result equals `sample(...)` on the whole
picture up to the rounding of differently composed network batches.

Fast inpainting
---------------
Outside the mask the sampler forces x̂0 = x1 and x_t = x1 (+ σ_b·ε), whatever the network says. So
a window that contains no masked frame only produces numbers that are thrown away, and every window
covering a masked frame contains it. Skipping the windows that touch no masked frame (`masked_frames`)
therefore changes nothing: the result is still exactly the full sampler's, but the network runs only
around the gaps, blocks no active window touches are never even transformed (their output is the
input), and a gap of any length is covered by as many windows as it needs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from .bridge import BridgeSchedule
from .errors import A2SBError

NOISE_BLOCK = 128  # frames per independently seeded noise block
DenoiseFn = Callable[[torch.Tensor, float], torch.Tensor]  # (windows, t) -> predicted scaled noise


def time_grid(steps: int, t_end: float = 0.05) -> torch.Tensor:
    """Published grid linspace(1, 0.05, N) in float32: N − 1 network evaluations."""
    if steps < 2:
        raise ValueError("steps must be at least 2 (steps − 1 network evaluations)")
    return torch.linspace(1.0, t_end, steps, dtype=torch.float32)


def padded_width(width: int, window: int, hop: int) -> int:
    """Width after the wrap-around padding of docs/method.md §MultiDiffusion (any window/hop)."""
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
    """The published sampler (docs/method.md §Sampler) on a B×3×H×W picture x1 with mask (B or 1)×(1 or 3)×H×W.

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
        if i == len(t_list) - 2:  # the final posterior step is discarded (docs/method.md §Sampler)
            return x0[..., :width]
        def draw(kind: int, step: int = i, like: torch.Tensor = xt) -> torch.Tensor | None:
            return noise.frames(step, kind, items, 0, padded).to(like) if sde else None

        xt = posterior_step(xt, x0, x1p, maskp, float(std_f[i]), float(std_f[i + 1]), float(std_b[i + 1]), draw)
    raise AssertionError("unreachable")


def posterior_step(xt, x0, x1, mask, std_t: float, std_next: float, std_sb_next: float, draw) -> torch.Tensor:
    """x_t' from p(x_t' | x0_hat, x_t), then the known region re-noised from x1 (docs/method.md
    §Sampler). `draw(kind)` returns the noise for kind 0 (posterior) or 1 (replacement), or None for
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


# ------------------------------------------------------------------------------------ wavefront order

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
    """The sampler of `sample` in wavefront order (see the module docstring).

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
    """`stream_sample` on a picture held in memory (B×3×H×W): the same result as `sample`.

    With `skip_unmasked`, windows without masked frames are not run (fast inpainting)."""
    b, _, h, width = x1.shape
    mask = mask.to(x1.dtype)
    masked = (mask.expand(b, -1, h, width) > 0).any(dim=(0, 1, 2)).cpu().numpy() if skip_unmasked else None
    out = torch.empty_like(x1)
    for start, stop, x0 in stream_sample(denoise, lambda s, e: (x1[..., s:e], mask[..., s:e]), width, b, t_steps,
                                         masked_frames=masked, **options):
        out[..., start:stop] = x1[..., start:stop] if x0 is None else x0.to(out)
    return out
