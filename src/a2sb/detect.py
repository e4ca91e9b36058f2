"""Automatic detection of what needs restoring: the lowpass cutoff of band-limited audio and silent gaps.

Audio is float (channels, samples) or 1-D, at any sample rate.

Cutoff: unlike the published tool (mean of per-frame 99 % roll-offs, pulled down by quiet passages and
pushed up by noise), this looks for a *cliff* in the long-term spectrum: a fall of at least
`CLIFF_DROP_DB` within `CLIFF_SPAN_OCT` octaves after which nothing above rises back (the spectrum stays
at its floor up to Nyquist). The edge is then located by fitting a Butterworth-shaped knee, so the
result is the -3 dB point for gentle filters and the edge for brick-wall, resampling and MP3 cutoffs.

Gaps: runs where every channel is digitally silent, or is at the recording's noise floor and far
(`GAP_DEPTH_DB`) below the surrounding second of music. A dropout in one channel only is not a gap:
inpainting works on the whole signal and the other channel still carries the music there.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import grey_opening, maximum_filter1d, uniform_filter1d
from scipy.signal import get_window

from .errors import A2SBError

# Edges at or above this are "full band" at 44.1 kHz (ADC and 320 kbps MP3 filters sit around 20 kHz).
FULL_BAND_HZ = 0.9 * 22050
MIN_CUTOFF_HZ = 500.0
CLIFF_DROP_DB = 30.0
CLIFF_SPAN_OCT = 1.5

# Knee fit (octaves are on the warped axis, see _warp)
FIT_DEPTH_DB = 60.0  # fit the fall down to this far below the passband ...
FLOOR_MARGIN_DB = 15.0  # ... or to this far above the floor, where noise bends the slope
FIT_BELOW_OCT = 1.0  # passband included in the first pass
KNEE_BELOW_START_OCT = 0.25  # how far below the cliff's start the knee may lie
REFINE_OCT = 1.5  # second pass: this much passband and fall around the first knee
OPENING_OCT = 1 / 12  # peaks narrower than this are removed before the search
KNEE_ORDERS = np.array([2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 128, 256])

GRID_STEPS_PER_OCT = 192
SMOOTH_OCT = 1 / 48
LOUD_FRAME_RANGE_DB = 40.0
BIN_HZ = 10.77  # 4096-point frames at 44.1 kHz
MAX_FRAMES = 6000

GAP_DEPTH_DB = 50.0
FLOOR_RANGE_DB = 10.0
BLOCK_SECONDS = 0.001
CONTEXT_SECONDS = 1.0

CHUNK = 1 << 20  # samples per slice when scanning long audio


def _validated(audio, sample_rate) -> np.ndarray:
    """`audio` as a float (channels, samples) array (float32 input is not copied), or an A2SBError."""
    try:
        x = np.asarray(audio)
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
    except (TypeError, ValueError):
        raise A2SBError("audio must be a numeric array") from None
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise A2SBError(f"audio must be 1-D or (channels, samples), got shape {x.shape}")
    if x.size == 0:
        raise A2SBError("audio is empty")
    # in slices: an hour of stereo would otherwise need a 300 MB mask
    if not all(np.isfinite(x[:, i : i + CHUNK]).all() for i in range(0, x.shape[1], CHUNK)):
        raise A2SBError("audio contains NaN or infinite values")
    if not (np.isfinite(sample_rate) and sample_rate > 0):
        raise A2SBError(f"sample rate must be positive, got {sample_rate}")
    return x


# ----------------------------------------------------------------------------------------------------
# Cutoff


def detect_cutoff(audio, sample_rate: float) -> float | None:
    """Frequency (Hz) above which `audio` has lost its content, or None when it is full band.

    An input sampled below 44.1 kHz is band-limited by its own Nyquist at most, so then a cutoff is
    always returned (Nyquist when no lower edge is found).
    """
    x = _validated(audio, sample_rate)
    nyquist = sample_rate / 2
    freqs, power = _long_term_spectrum(x, sample_rate)
    edge = None
    if power is not None:
        edge = _find_edge(freqs, power, nyquist)
    if edge is None and nyquist < FULL_BAND_HZ:
        edge = nyquist
    if edge is None or edge >= FULL_BAND_HZ:
        return None
    return float(min(edge, nyquist))


def _long_term_spectrum(x: np.ndarray, rate: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Power spectrum averaged over the loud frames (linear power: loud frames dominate).

    Channels are averaged in power so out-of-phase content cannot cancel. None when all is silent.
    """
    n_fft = int(np.clip(2 ** round(np.log2(rate / BIN_HZ)), 256, 32768))
    channels, n = x.shape
    if n < n_fft:
        x = np.pad(x, ((0, 0), (0, n_fft - n)))
        n = n_fft
    hop = max(n_fft // 2, (n - n_fft) // MAX_FRAMES + 1)  # long files: a spread-out subset of frames
    starts = np.arange(0, n - n_fft + 1, hop)
    # Blackman-Harris: -92 dB side lobes, so deep cliffs are not filled in by leakage.
    window = get_window("blackmanharris", n_fft)
    frames_power = []
    for chunk in np.array_split(starts, max(1, len(starts) // 128)):
        frames = x[:, chunk[:, None] + np.arange(n_fft)] * window
        frames_power.append((np.abs(np.fft.rfft(frames, axis=-1)) ** 2).mean(axis=0))
    spectra = np.concatenate(frames_power)
    energy = spectra.sum(axis=1)
    loud = np.percentile(energy, 95)
    freqs = np.fft.rfftfreq(n_fft, 1 / rate)
    if loud <= 0:
        return freqs, None
    keep = energy >= loud * 10 ** (-LOUD_FRAME_RANGE_DB / 10)  # silence and noise-only frames excluded
    return freqs, spectra[keep].mean(axis=0)


def _warp(freq, nyquist: float):
    """Bilinear-transform frequency axis, log2 tan(π/2 · f/Nyquist): digital IIR lowpasses are analog
    prototypes on it (exactly 6·order dB per octave), where a log-frequency axis would make them
    steeper and steeper towards Nyquist. Below Nyquist/4 it is nearly log2 f."""
    return np.log2(np.tan(np.pi / 2 * np.asarray(freq) / nyquist))


def _unwarp(warped, nyquist: float):
    return nyquist * 2 / np.pi * np.arctan(2.0 ** np.asarray(warped))


def _warped_spectrum_db(freqs: np.ndarray, power: np.ndarray, nyquist: float) -> tuple[np.ndarray, np.ndarray]:
    """Spectrum in dB on a uniform grid of the warped axis, each point the mean power over
    ±SMOOTH_OCT/2 (at least ±1.5 bins). Averaging power, not dB, fills MP3's intermittent band holes."""
    bin_hz = freqs[1]
    top = _warp(nyquist - 2 * bin_hz, nyquist)
    grid = np.arange(_warp(MIN_CUTOFF_HZ / 2, nyquist), top, 1 / GRID_STEPS_PER_OCT)
    centre = _unwarp(grid, nyquist) / bin_hz
    low = np.minimum(_unwarp(grid - SMOOTH_OCT / 2, nyquist) / bin_hz, centre - 1.5)
    high = np.maximum(_unwarp(grid + SMOOTH_OCT / 2, nyquist) / bin_hz, centre + 1.5)
    lo = np.clip(np.floor(low).astype(int), 0, len(power) - 1)
    hi = np.clip(np.ceil(high).astype(int), lo + 1, len(power))
    cumulative = np.concatenate([[0.0], np.cumsum(power)])
    mean = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    tiny = power.max() * 1e-20  # numerical zero: 200 dB below the peak
    return grid, 10 * np.log10(np.maximum(mean, tiny))


def _find_edge(freqs: np.ndarray, power: np.ndarray, nyquist: float) -> float | None:
    grid, level = _warped_spectrum_db(freqs, power, nyquist)
    if len(grid) < 8:
        return None
    step = GRID_STEPS_PER_OCT
    # An opening (min then max filter) removes peaks narrower than its width (strong partials) but
    # leaves monotone stretches, hence filter slopes and edges, exactly as they are.
    level = grey_opening(level, size=max(1, int(OPENING_OCT * step)) | 1, mode="nearest")
    # ceiling[i]: the loudest level anywhere at or above grid[i]; a cliff is where it falls for good.
    ceiling = np.maximum.accumulate(level[::-1])[::-1]
    span = int(CLIFF_SPAN_OCT * step)
    drop = ceiling - ceiling[np.minimum(np.arange(len(grid)) + span, len(grid) - 1)]
    is_cliff = (drop >= CLIFF_DROP_DB) & (grid >= _warp(MIN_CUTOFF_HZ, nyquist))
    if not is_cliff.any():
        return None
    start = int(np.argmax(is_cliff))  # the lowest cliff: content above it is at most residue
    # The fit covers the passband below and the fall down to FIT_DEPTH_DB or to just above the floor.
    # A second pass centres the window on the first knee, so both sides weigh alike.
    floor = max(ceiling[start] - FIT_DEPTH_DB, ceiling[-1] + FLOOR_MARGIN_DB)
    below_floor = np.flatnonzero(level[start:] <= floor)
    end = start + (below_floor[0] if len(below_floor) else len(grid) - start)
    end = min(max(end, start + 2), len(grid))
    first = start - int(FIT_BELOW_OCT * step)
    knee = _fit_knee(grid, level, first, end, start - int(KNEE_BELOW_START_OCT * step), end, 4)
    k = int(np.searchsorted(grid, knee))
    end = min(end, k + int(REFINE_OCT * step))
    knee = _fit_knee(grid, level, k - int(REFINE_OCT * step), end, k - step // 8, k + step // 8)
    return float(_unwarp(knee, nyquist))


def _fit_knee(grid, level, first: int, end: int, knee_lo: int, knee_hi: int, knee_stride: int = 1) -> float:
    """Least-squares knee k of a + b·(x − k) − 10·log10(1 + 2^(2n(x − k))) over grid[first:end].

    That is a Butterworth of order n (any n, on the warped axis) on a music spectrum of slope b; its
    knee k is the -3 dB point. Large n models brick-wall, resampling and MP3 edges.
    """
    first, knee_lo = max(0, first), max(0, knee_lo)
    knee_hi = min(max(knee_hi, knee_lo + 1), end)
    x = grid[first:end]
    y = level[first:end]
    knees = grid[knee_lo:knee_hi:knee_stride]
    best = (np.inf, grid[knee_lo])
    for order in KNEE_ORDERS:
        # undo the order-n rolloff for every candidate knee (rows)
        u = x[None, :] - knees[:, None]
        target = y[None, :] + 10 * np.log10(1 + 2.0 ** np.clip(2 * order * u, -60, 60))
        # the rest must be the music's own smooth spectrum: a + b·u + c·u² (curved: music spectra
        # steepen or flatten across the two octaves around a low cutoff), per-knee least squares
        basis = np.stack([np.ones_like(u), u, u**2], axis=-1)  # knees × points × 3
        gram = np.einsum("kpi,kpj->kij", basis, basis)
        coef = np.linalg.solve(gram, np.einsum("kpi,kp->ki", basis, target)[..., None])
        residual = ((target - (basis @ coef)[..., 0]) ** 2).sum(axis=1)
        i = int(np.argmin(residual))
        if residual[i] < best[0]:
            best = (residual[i], knees[i])
    return float(best[1])


# ----------------------------------------------------------------------------------------------------
# Gaps


def detect_gaps(audio, sample_rate: float, min_gap: float = 0.02) -> list[tuple[float, float]]:
    """(start, end) seconds of silent gaps of at least `min_gap` s inside the music.

    A gap is where all channels are digitally silent or at least GAP_DEPTH_DB below the surrounding
    second. Leading and trailing silence are not gaps, nor are soft passages and fades.
    """
    x = _validated(audio, sample_rate)
    if not min_gap > 0:
        raise A2SBError(f"minimum gap length must be positive, got {min_gap}")
    block = max(1, int(round(sample_rate * BLOCK_SECONDS)))
    n = x.shape[1]
    n_blocks = -(-n // block)
    block_power = _block_power(x, block)
    block_db = _db(block_power)

    context = int(round(CONTEXT_SECONDS / BLOCK_SECONDS))
    smooth_db = _db(uniform_filter1d(block_power, 50, mode="nearest"))  # 50 ms: ignore single clicks
    surround_db = maximum_filter1d(smooth_db, 2 * context + 1, mode="nearest")
    # Near-silence must also sit at the recording's noise floor (its quietest blocks), so that the
    # quietest moments of a soft passage, still well above the floor, are not taken for gaps.
    audible = block_power > 0
    floor_db = np.percentile(block_db[audible], 1) if audible.any() else -300.0
    quiet = (block_db <= surround_db - GAP_DEPTH_DB) & (block_db <= floor_db + FLOOR_RANGE_DB)
    quiet |= ~audible

    gaps = []
    for first, last in _runs(quiet):
        # extend over the same floor: the middle of a long gap is far from any music
        limit = block_db[first:last].max() + 6.0
        first, last = _extend(block_db, first, last, limit)
        if first == 0 or last == n_blocks:
            continue  # leading or trailing silence
        if gaps and first < gaps[-1][1]:
            continue  # already covered by the previous run's extension
        before = block_power[max(0, first - context) : first].mean()
        after = block_power[last : last + context].mean()
        inside = block_power[first:last].mean()
        if inside > 0 and _db(max(before, after)) - _db(inside) < GAP_DEPTH_DB:
            continue
        start, end = _refine(x, first * block, min(last * block, n), block, inside)
        if (end - start) / sample_rate >= min_gap:
            gaps.append((first, last, start, end))
    return [(start / sample_rate, end / sample_rate) for _, _, start, end in gaps]


def _block_power(x: np.ndarray, block: int) -> np.ndarray:
    """Mean power per block of the loudest channel (all channels must be silent for a gap)."""
    n = x.shape[1]
    chunk = CHUNK // block * block
    powers = []
    for i in range(0, n, chunk):
        part = x[:, i : i + chunk].astype(np.float64)
        size = part.shape[1]
        blocks = -(-size // block)
        part = np.pad(part, ((0, 0), (0, blocks * block - size)))
        counts = np.full(blocks, float(block))
        counts[-1] = size - (blocks - 1) * block
        powers.append(((part**2).reshape(len(part), blocks, block).sum(axis=2) / counts).max(axis=0))
    return np.concatenate(powers)


def _db(power):
    return 10 * np.log10(np.maximum(power, 1e-30))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, last) index ranges of the True runs."""
    change = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(change[::2].tolist(), change[1::2].tolist()))


def _extend(block_db: np.ndarray, first: int, last: int, limit: float) -> tuple[int, int]:
    """Grow [first, last) while the neighbouring blocks stay at or below `limit` dB."""
    look = 1024
    while first > 0:
        louder = np.flatnonzero(block_db[max(0, first - look) : first] > limit)
        if len(louder):
            first = max(0, first - look) + louder[-1] + 1
            break
        first = max(0, first - look)
        look *= 2
    look = 1024
    while last < len(block_db):
        louder = np.flatnonzero(block_db[last : last + look] > limit)
        if len(louder):
            last += louder[0]
            break
        last = min(len(block_db), last + look)
        look *= 2
    return first, last


def _refine(x: np.ndarray, start: int, end: int, block: int, inside_power: float) -> tuple[int, int]:
    """Move the block-aligned boundaries outwards to the last/first sample above the gap's noise."""
    threshold = 4 * np.sqrt(inside_power)  # ~4 sigma of the gap's own noise; 0 for digital silence
    before = np.abs(x[:, max(0, start - block) : start]).max(axis=0, initial=0)
    louder = np.flatnonzero(before > threshold)
    start -= len(before) - (louder[-1] + 1) if len(louder) else len(before)
    after = np.abs(x[:, end : end + block]).max(axis=0, initial=0)
    louder = np.flatnonzero(after > threshold)
    end += louder[0] if len(louder) else len(after)
    return start, end
