"""Automatic detection of what needs restoring: the lowpass cutoff of band-limited audio and silent gaps.

Audio is float (channels, samples) or 1-D, at any sample rate.

Cutoff: a lowpass, a resampler or an MP3 encoder leaves the spectrum at its *floor* (dither, noise,
numerical zero) above the cutoff, in every frame. So the edge is the **final descent into the floor**
of the long-term spectrum (a quiet or dark passage only ever lowers the music, never the floor), not
its first steep stretch: music with little treble falls steeply by itself, often far below any
filter. Found on the warped axis (see `_warp`):

1. the floor is the level just below Nyquist;
2. a *wall* (a fall of `WALL_DROP_DB` within `WALL_SPAN_OCT`, steeper than any music) is a cutoff
   even when something remains above it (an elliptic filter's stopband, codec noise);
3. otherwise the content edge is where nothing above stands `EDGE_REACH_DB` out of the floor; the
   descent into it is followed down while it keeps falling steeply; its top must stand
   `EDGE_RISE_DB` above the floor and it must be a cliff (`CLIFF_DROP_DB` within `CLIFF_SPAN_OCT`):
   a gentle roll-off (a 2nd-order filter, or dark music fading out) is no cutoff;
4. a Butterworth-shaped knee fitted to the descent gives the -3 dB point (gentle filters) or the edge
   (brick-wall, resampling, MP3). The fit must also predict the floor beyond the descent.

When knees far apart explain the descent about equally well (`AMBIGUITY`: a gentle filter over
music that falls by itself), the music already falls steeply in the octave below the knee
(`PASSBAND_SLOPE_DB_OCT`), or the roll-off is too gentle to place, the estimate is *unsure*:
`estimate_cutoff` says so with a reason and `detect_cutoff` returns None, rather than a wrong edge. Its
result (`CutoffEstimate`) also says what kind of limit it found and, for an unsure one, where the roll-off
starts ("gentle roll-off from about 9.8 kHz (a gentle filter, or the music's own): not regenerated;
..."): the descent followed down while the spectrum above falls at least `ONSET_SLOPE_DB_OCT`, or the
knee when a knee was fitted and lies lower. A brick wall between `MP3_LIKE_HZ` is named MP3-like.
Thresholds were measured on held-out real music lowpassed at 2-16 kHz (experiments/detect_grid.py and
its section of benchmarks/README.md).

Gaps: only *digital dropouts* are reported, never music's own quiet. A dropout is

1. a run of at least `MIN_DROPOUT_SECONDS` in which every channel repeats one exact value: digital
   silence (exact zeros) or a held sample (a converter or a damaged file repeating its last value).
   Dithered, noisy or recorded silence is never exactly constant, so rests, room tone and fade tails
   above the last bit are not candidates at all;
2. inside sounding audio, with the music loud right up to both edges: the `EDGE_SECONDS` next to the
   run on each side stand within `EDGE_DROP_DB` of the music's level over the `CONTEXT_SECONDS` on
   the same side (levels of the departure from the held value, loudest channel). Music cut off by a
   dropout is as loud at the cut as around it (on real music the 10 ms next to any point stand at most
   20 dB below the second around it, 16 dB at the 99.9th percentile), while a fade-out, a decaying
   note or a rest reach digital silence from far below their context (a linear fade to zero 40 dB
   below it over 10 ms, any 16-bit fade more). So the digital silence between joined tracks, which
   sits between a fade-out or a decay and the next track's start, is not a dropout;
3. shorter than `MAX_DROPOUT_SECONDS`: longer digital silence is taken as intended (a pause, the
   2 s between tracks on a CD), and runs that touch the start or the end are leading or trailing silence.

The run is reported exactly, to the sample: from its first sample with the held value to the sample
after its last (a held sample's run thus starts at the last good sample, which it repeats). A dropout
in one channel only is not a gap: inpainting works on the whole signal and the other channel still
carries the music there. A dropout that was later dithered or re-encoded (no longer exactly constant)
is not found: give it explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import grey_opening
from scipy.signal import get_window

from .errors import A2SBError

# Edges at or above this are "full band" at 44.1 kHz (ADC and 320 kbps MP3 filters sit around 20 kHz).
FULL_BAND_HZ = 0.9 * 22050
MIN_CUTOFF_HZ = 500.0

# The edge (levels in dB of the long-term spectrum, spans in octaves of the warped axis)
FLOOR_BAND = (0.92, 0.98)  # the floor: median level in this part of the band (fractions of Nyquist)
WALL_DROP_DB = 40.0  # a fall this deep ...
WALL_SPAN_OCT = 0.25  # ... within this span is a cutoff whatever remains above it
EDGE_REACH_DB = 20.0  # above the content edge nothing stands more than this above the floor
EDGE_RISE_DB = 20.0  # the top of the final descent stands at least this far above the floor
DESCENT_SLOPE_DB_OCT = 12.0  # the descent is followed down while it falls at least this steeply ...
DESCENT_STEP_OCT = 1 / 3  # ... over this span
ONSET_SLOPE_DB_OCT = 4.5  # a gentle roll-off starts where the spectrum above falls at least this steeply
# (on Butterworths of order 2-4 over synthetic music the onset then lies within 0.77-1.21 of the -3 dB point)
CLIFF_DROP_DB = 30.0  # a cliff falls this far (or, into a nearer floor, all the way) ...
CLIFF_SPAN_OCT = 1.5  # ... within this span
GENTLE_FULL_BAND = 0.85  # a gentle roll-off starting above this fraction of Nyquist (at most 22.05 kHz's) is
# full band, not unsure: at 48 or 96 kHz as at 44.1 kHz
MP3_LIKE_HZ = (15000.0, FULL_BAND_HZ)  # a brick wall in this range is named MP3-like
AMBIGUITY = 0.10  # unsure when a knee this far off ...
AMBIGUITY_FAR = 0.15  # ... (relative frequency) fits within this fraction of the best residual
# Unsure when the octave below a knee that is not a wall (PASSBAND_SPAN_OCT: from 1 to 0.15 octave below
# it) already falls faster than this: the music darkens by itself there and a gentle filter over it
# cannot be placed (on the saved grid spectra it halved the answers more than 30 % off, see
# benchmarks/README.md, at a few points of hit rate on the steep families).
PASSBAND_SLOPE_DB_OCT = 15.0
PASSBAND_SPAN_OCT = (1.0, 0.15)
# Unsure, for a knee that is not a wall, when the fitted roll-off is no steeper than GENTLE_ORDER (6 dB
# per octave per order: music darkening by itself falls like that), or when it falls less than
# SHALLOW_FALL_DB in the octave above the knee although it stands SHALLOW_RISE_DB or more above the
# floor (a gentle slope, not an edge). Chosen on the saved grid spectra of experiments/detect_grid.py:
# they removed about half the answers more than 30 % off (low-order Butterworth knees placed far above
# the -3 dB point), at the cost of Butterworth hits only (see benchmarks/README.md).
GENTLE_ORDER = 4.0
SHALLOW_FALL_DB = 33.0
SHALLOW_RISE_DB = 38.0

# Knee fit
FIT_DEPTH_DB = 60.0  # fit the fall down to this far below the passband ...
FLOOR_MARGIN_DB = 15.0  # ... or to this far above the floor, where noise bends the slope
FIT_BELOW_OCT = 1.0  # passband included below the lowest candidate knee
KNEE_BELOW_START_OCT = 0.25  # how far below the descent's top the knee may lie
PENALTY_OCT = 0.5  # beyond the fit, predicted content above the floor is penalised over this span
REFINE_OCT = 1.0  # second pass: this much passband and fall around the first knee
OPENING_OCT = 1 / 12  # peaks narrower than this are removed before the search
KNEE_ORDERS = np.array([2, 2.5, 3, 3.5, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 32, 48, 64, 128, 256])

GRID_STEPS_PER_OCT = 192
SMOOTH_OCT = 1 / 48
LOUD_FRAME_RANGE_DB = 40.0
BIN_HZ = 10.77  # 4096-point frames at 44.1 kHz
MAX_FRAMES = 6000

# Dropouts (see the module docstring)
MIN_DROPOUT_SECONDS = 0.02  # shorter runs of a held value are not reported
MAX_DROPOUT_SECONDS = 2.0  # longer ones are intended silence (a pause, a CD's 2 s between tracks)
EDGE_SECONDS = 0.01  # the music next to a run ...
CONTEXT_SECONDS = 1.0  # ... against its level over this much on the same side
EDGE_DROP_DB = 30.0  # a dropout's edges stand within this of the context; a fade or decay falls further
LEVEL_SECONDS = 10.0  # the music's level around a run: this much on each side ...
BLOCK_SECONDS = 0.1  # ... in blocks this long ...
LEVEL_PERCENTILE = 95.0  # ... their power at this percentile
QUIET_DB = 45.0  # a dropout's edges stand within this of the music's level

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


@dataclass(frozen=True)
class CutoffEstimate:
    """What `estimate_cutoff` found: `cutoff` in Hz (None: full band, or unsure), whether it is unsure,
    with the reason in words, and what kind of band limit it is:

    - "full band": nothing lost (also a gentle roll-off that starts above GENTLE_FULL_BAND of 22.05 kHz);
    - "silent": nothing to judge;
    - "lowpass": an edge at `cutoff` (its -3 dB point, or the edge of a steep one);
    - "wall": a brick wall at `cutoff`; between MP3_LIKE_HZ it is named MP3-like (lossy encoders cut
      there; their intermittent band holes below it are not checked);
    - "gentle": a roll-off from about `onset` Hz whose -3 dB point cannot be placed: no cutoff is guessed
      (None, or the input's Nyquist when that is below full band), the user should give one;
    - "nyquist": no edge below the input's own Nyquist (input sampled below 44.1 kHz).

    `note` says it in words, as the restore path and `a2sb info` print it."""

    cutoff: float | None
    unsure: bool = False
    reason: str = ""
    kind: str = "full band"
    onset: float | None = None

    @property
    def note(self) -> str:
        khz = None if self.cutoff is None else f"{self.cutoff / 1000:.1f} kHz"
        if self.kind == "gentle":
            onset = "" if self.onset is None else f" from about {self.onset / 1000:.1f} kHz"
            if khz:  # an input sampled below 44.1 kHz: its own Nyquist frequency is the cutoff
                return (f"gentle roll-off{onset} (a gentle filter, or the music's own) up to the sample rate's "
                        f"limit, {khz}, taken as the cutoff (pass --cutoff for another)")
            # a gentle filter, or music that darkens by itself (clipping flattens the band below it too):
            # nothing is regenerated unless asked, since a cutoff there would replace what the file has
            return f"gentle roll-off{onset} (a gentle filter, or the music's own): not regenerated; pass --cutoff to"\
                " choose a band"
        if self.kind == "wall":
            mp3 = " (MP3-like)" if MP3_LIKE_HZ[0] <= self.cutoff < MP3_LIKE_HZ[1] else ""
            return f"brick-wall lowpass at {khz}{mp3}"
        if self.kind == "lowpass":
            return f"lowpass at {khz}"
        if self.kind == "nyquist":
            return f"band-limited by the sample rate at {khz}"
        return "silent: no cutoff" if self.kind == "silent" else "full band"


def detect_cutoff(audio, sample_rate: float) -> float | None:
    """Frequency (Hz) above which `audio` has lost its content, or None when it is full band or the
    edge cannot be placed reliably (see `estimate_cutoff` for which).

    An input sampled below 44.1 kHz is band-limited by its own Nyquist at most, so then a cutoff is
    always returned (Nyquist when no lower edge is found).
    """
    return estimate_cutoff(audio, sample_rate).cutoff


def estimate_cutoff(audio, sample_rate: float) -> CutoffEstimate:
    """`detect_cutoff` with the reason: an unsure estimate has cutoff None (or the input's Nyquist when
    that is below full band) and unsure=True."""
    x = _validated(audio, sample_rate)
    return _estimate(*_long_term_spectrum(x, sample_rate), sample_rate / 2)


def _estimate(freqs: np.ndarray, power: np.ndarray | None, nyquist: float) -> CutoffEstimate:
    """`estimate_cutoff` from the long-term spectrum."""
    if power is None:
        return CutoffEstimate(nyquist if nyquist < FULL_BAND_HZ else None, kind="silent")
    edge, reason, onset, wall = _find_edge(freqs, power, nyquist)
    unsure = bool(reason)
    onset = float(onset) if unsure and onset is not None else None
    kind = "gentle" if unsure else ("wall" if wall else "lowpass")
    if edge is not None and edge >= FULL_BAND_HZ:
        edge, unsure, reason, kind = None, False, "", "full band"  # an edge up where ADCs put theirs is full band
    if edge is None and not unsure:
        kind = "full band"
    if edge is None and nyquist < FULL_BAND_HZ:
        edge, kind = nyquist, kind if unsure else "nyquist"
    if edge is None:
        return CutoffEstimate(None, unsure, reason, kind, onset)
    return CutoffEstimate(float(min(edge, nyquist)), unsure, reason, kind, onset)


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
    cumulative = np.concatenate([[0.0], np.cumsum(np.asarray(power, dtype=np.float64))])
    mean = (cumulative[hi] - cumulative[lo]) / (hi - lo)
    tiny = power.max() * 1e-20  # numerical zero: 200 dB below the peak
    return grid, 10 * np.log10(np.maximum(mean, tiny))


def _find_edge(freqs: np.ndarray, power: np.ndarray, nyquist: float) -> tuple[float | None, str, float | None, bool]:
    """(edge Hz or None, reason it is unsure or "", where the roll-off starts (Hz, when one was found),
    whether the edge is a wall): see the module docstring."""
    grid, level = _warped_spectrum_db(freqs, power, nyquist)
    n = len(grid)
    if n < 8:
        return None, "", None, False
    step = GRID_STEPS_PER_OCT
    # An opening (min then max filter) removes peaks narrower than its width (strong partials) but
    # leaves monotone stretches, hence filter slopes and edges, exactly as they are.
    level = grey_opening(level, size=max(1, int(OPENING_OCT * step)) | 1, mode="nearest")
    freq = _unwarp(grid, nyquist)
    top = (freq >= FLOOR_BAND[0] * nyquist) & (freq <= FLOOR_BAND[1] * nyquist)
    floor = float(np.median(level[top])) if top.any() else float(level[-1])
    # ceiling[i]: the loudest level anywhere at or above grid[i]; the edge is where it falls for good.
    ceiling = np.maximum.accumulate(level[::-1])[::-1]
    lowest = int(np.searchsorted(grid, _warp(MIN_CUTOFF_HZ, nyquist)))
    index = np.arange(n)
    wall = ceiling - ceiling[np.minimum(index + int(WALL_SPAN_OCT * step), n - 1)] >= WALL_DROP_DB
    walls = np.flatnonzero(wall & (index >= lowest))
    if len(walls):
        start = int(walls[0])
    else:
        standing = np.flatnonzero(ceiling > floor + EDGE_REACH_DB)
        if not len(standing) or standing[-1] + 1 >= n:
            return None, "", None, False  # silence at the floor, or content up to Nyquist: full band
        edge = int(standing[-1]) + 1
        if freq[edge] >= FLOOR_BAND[0] * nyquist:
            return None, "", None, False  # content reaches the band where the floor is measured: full band
        span, steep = max(1, int(DESCENT_STEP_OCT * step)), DESCENT_SLOPE_DB_OCT * DESCENT_STEP_OCT
        start = edge - 1
        while start - span >= lowest and ceiling[start - span] - ceiling[start] >= steep:
            start -= 1
        rise = ceiling[start] - floor
        if rise < EDGE_RISE_DB:
            return None, "", None, False  # what reaches the floor there is too faint to be the music's edge
        if start < lowest:
            return None, "the spectrum falls steadily from below the lowest cutoff considered", MIN_CUTOFF_HZ, False
        # a cliff: somewhere in the descent the ceiling falls CLIFF_DROP_DB within CLIFF_SPAN_OCT, or
        # (into a nearer floor) all the way within WALL_SPAN_OCT
        top = ceiling[start:edge + 1]
        later = ceiling[np.minimum(index[start:edge + 1] + int(CLIFF_SPAN_OCT * step), n - 1)]
        sooner = ceiling[np.minimum(index[start:edge + 1] + int(WALL_SPAN_OCT * step), n - 1)]
        if not ((top - later >= CLIFF_DROP_DB).any() or (top - sooner >= rise - 5.0).any()):
            # where it starts: followed further down while it falls at least ONSET_SLOPE_DB_OCT
            gentle, slow = start, ONSET_SLOPE_DB_OCT * DESCENT_STEP_OCT
            while gentle - span >= lowest and ceiling[gentle - span] - ceiling[gentle] >= slow:
                gentle -= 1
            if _unwarp(grid[start], nyquist) >= GENTLE_FULL_BAND * min(nyquist, 22050.0):
                return None, "", None, False  # a gentle roll-off whose descent starts near 22 kHz: full band
            where = float(_unwarp(grid[gentle], nyquist))
            return None, f"the spectrum rolls off gently from about {where:.0f} Hz, without a clear edge", where, False
    onset = float(_unwarp(grid[start], nyquist))
    # The fit covers the passband below and the fall down to FIT_DEPTH_DB or to just above the floor.
    fit_floor = max(ceiling[start] - FIT_DEPTH_DB, floor + FLOOR_MARGIN_DB)
    below = np.flatnonzero(level[start:] <= fit_floor)
    end = start + (below[0] if len(below) else n - start)
    end = min(max(end, start + 2), n)
    penalty_end = end + int(PENALTY_OCT * step)
    knee_lo = start - int(KNEE_BELOW_START_OCT * step)
    knee, knees, residual, _ = _fit_knee(grid, level, knee_lo - int(FIT_BELOW_OCT * step), end, knee_lo, end,
                                         penalty_end, 4)
    knee_hz, candidates_hz = _unwarp(grid[knee], nyquist), _unwarp(grid[knees], nyquist)
    far = np.abs(candidates_hz / knee_hz - 1) > AMBIGUITY_FAR
    if far.any() and residual[far].min() <= (1 + AMBIGUITY) * residual.min():
        other = candidates_hz[far][np.argmin(residual[far])]
        if min(knee_hz, other) < FULL_BAND_HZ:  # (both up where full band starts: no cutoff either way)
            return (None, f"knees at {knee_hz:.0f} Hz and {other:.0f} Hz fit the roll-off about equally well",
                    float(min(onset, knee_hz, other)), False)
    refine_end = min(end, knee + int(REFINE_OCT * step))
    knee, _, _, order = _fit_knee(grid, level, knee - int(REFINE_OCT * step), refine_end, knee - step // 8,
                                  knee + step // 8, penalty_end)
    knee_hz = float(_unwarp(grid[knee], nyquist))
    if not len(walls) and knee_hz < FULL_BAND_HZ:
        if order <= GENTLE_ORDER:
            return None, (f"the knee at {knee_hz:.0f} Hz rolls off only about {6 * order:.0f} dB/octave, no "
                          "steeper than music that darkens by itself"), min(onset, knee_hz), False
        fall = float(ceiling[knee] - ceiling[min(knee + step, n - 1)])
        if fall < SHALLOW_FALL_DB and ceiling[knee] - floor >= SHALLOW_RISE_DB:
            return None, (f"the spectrum falls only {fall:.0f} dB in the octave above the knee at {knee_hz:.0f} "
                          "Hz, too gently for an edge"), min(onset, knee_hz), False
        lo, hi = (max(0, knee - int(span * step)) for span in PASSBAND_SPAN_OCT)
        below = slice(lo, hi + 1)
        if below.stop - below.start > 10:
            slope = float(np.polyfit(grid[below], level[below], 1)[0])
            if slope < -PASSBAND_SLOPE_DB_OCT:
                return (None, f"the spectrum already falls {-slope:.0f} dB/octave in the octave below the knee "
                              f"at {knee_hz:.0f} Hz: the music's own fall and the filter's cannot be told apart",
                        min(onset, knee_hz), False)
    return knee_hz, "", onset, bool(len(walls))


_ROLLOFF_CACHE: dict[tuple[float, int], np.ndarray] = {}


def _rolloff(order: float, n: int) -> np.ndarray:
    """10·log10(1 + 2^(2·order·d)) for grid offsets d = -n..n (in grid steps): a Butterworth's loss."""
    key = (float(order), n)
    if key not in _ROLLOFF_CACHE:
        d = np.arange(-n, n + 1) / GRID_STEPS_PER_OCT
        _ROLLOFF_CACHE[key] = 10 * np.log10(1 + 2.0 ** np.clip(2 * order * d, -60, 60))
    return _ROLLOFF_CACHE[key]


def _fit_knee(grid, level, first: int, end: int, knee_lo: int, knee_hi: int, penalty_end: int,
              knee_stride: int = 1) -> tuple[int, np.ndarray, np.ndarray, float]:
    """Least-squares knee k of a + b·(x − k) + c·(x − k)² − 10·log10(1 + 2^(2n(x − k))) over
    grid[first:end]: a Butterworth of order n (any n, on the warped axis) on a smooth music spectrum
    (curved: music spectra steepen or flatten across the two octaves around a low cutoff); its knee is
    the -3 dB point, and large n models brick-wall, resampling and MP3 edges. Over
    grid[end:penalty_end] the model must not predict content above the measured level (+ margin): a
    knee that leaves music standing where the spectrum is at its floor is wrong.

    Returns (index of the best knee, candidate knee indices, best residual of each over the orders, the
    best knee's order).
    """
    n = len(grid)
    first, knee_lo = max(0, first), max(0, knee_lo)
    end, penalty_end = min(end, n), min(max(penalty_end, end), n)
    knee_hi = min(max(knee_hi, knee_lo + 1), end)
    x, y = grid[first:end], level[first:end]
    y_beyond = level[end:penalty_end]
    knees = np.arange(knee_lo, knee_hi, knee_stride)
    # A quadratic in (x − k) spans the same space for every k, so one projection serves every knee.
    centre, scale = x.mean(), max(float(np.ptp(x)), 1e-9)
    basis = np.stack([((x - centre) / scale) ** p for p in range(3)], axis=1)
    beyond = np.stack([((grid[end:penalty_end] - centre) / scale) ** p for p in range(3)], axis=1)
    q, r = np.linalg.qr(basis)
    to_coef = np.linalg.inv(r).T
    offsets = np.arange(first, end)[None, :] - knees[:, None] + n
    offsets_beyond = np.arange(end, penalty_end)[None, :] - knees[:, None] + n
    best_residual = np.full(len(knees), np.inf)
    best = (np.inf, int(knees[0]), float(KNEE_ORDERS[0]))
    for order in KNEE_ORDERS:
        loss = _rolloff(order, n)
        music = y[None, :] + loss[offsets]  # the spectrum with the order-n roll-off undone, per knee
        coef = music @ q
        residual = ((music - coef @ q.T) ** 2).sum(axis=1)
        if len(y_beyond):
            predicted = (coef @ to_coef) @ beyond.T - loss[offsets_beyond]
            residual += (np.maximum(0.0, predicted - y_beyond[None, :] - FLOOR_MARGIN_DB) ** 2).sum(axis=1)
        best_residual = np.minimum(best_residual, residual)
        i = int(np.argmin(residual))
        if residual[i] < best[0]:
            best = (float(residual[i]), int(knees[i]), float(order))
    return best[1], knees, best_residual, best[2]


# ----------------------------------------------------------------------------------------------------
# Gaps


def detect_gaps(audio, sample_rate: float, min_gap: float = MIN_DROPOUT_SECONDS,
                max_gap: float = MAX_DROPOUT_SECONDS) -> list[tuple[float, float]]:
    """(start, end) seconds of the digital dropouts inside the music: runs of at least `min_gap` and
    under `max_gap` seconds in which every channel holds one exact value, with the music loud right up
    to both edges (see the module docstring). `start`·rate and `end`·rate are the first sample of the
    run and the one after its last, exactly.
    """
    x = _validated(audio, sample_rate)
    if not min_gap > 0:
        raise A2SBError(f"minimum gap length must be positive, got {min_gap}")
    if not max_gap > min_gap:
        raise A2SBError(f"maximum gap length must exceed the minimum ({min_gap:g} s), got {max_gap}")
    n = x.shape[1]
    shortest = max(2, int(math.ceil(min_gap * sample_rate)))
    edge = max(1, int(round(EDGE_SECONDS * sample_rate)))
    context = max(edge, int(round(CONTEXT_SECONDS * sample_rate)))
    block = max(1, int(round(BLOCK_SECONDS * sample_rate)))
    blocks = _block_power(x, block)
    reach = int(round(LEVEL_SECONDS / BLOCK_SECONDS))
    gaps = []
    for start, end in _constant_runs(x, shortest):
        if (end - start) / sample_rate >= max_gap or start < edge or end > n - edge:
            continue  # intended silence, or leading/trailing silence
        value = x[:, start : start + 1].astype(np.float64)  # the held value of each channel (0: digital silence)
        before, after = x[:, max(0, start - context) : start], x[:, end : end + context]
        near = np.concatenate([blocks[max(0, start // block - reach) : start // block],
                               blocks[-(-end // block) : -(-end // block) + reach]])
        music = float(np.percentile(near, LEVEL_PERCENTILE)) * 10 ** (-QUIET_DB / 10)
        if _abrupt(before[:, -edge:], before, value, music) and _abrupt(after[:, :edge], after, value, music):
            gaps.append((start / sample_rate, end / sample_rate))
    return gaps


def _block_power(x: np.ndarray, block: int) -> np.ndarray:
    """Mean power of the loudest channel in blocks of `block` samples (the last one shorter)."""
    n = x.shape[1]
    step = max(1, CHUNK // block) * block
    powers = []
    for i in range(0, n, step):
        part = x[:, i : i + step].astype(np.float64) ** 2
        whole = part.shape[1] // block * block
        powers.append(part[:, :whole].reshape(len(part), -1, block).mean(axis=2).max(axis=0))
        if whole < part.shape[1]:
            powers.append(part[:, whole:].mean(axis=1).max(keepdims=True))
    return np.concatenate(powers)


def _constant_runs(x: np.ndarray, shortest: int) -> list[tuple[int, int]]:
    """[start, end) sample ranges of at least `shortest` samples over which every channel keeps one
    exact value (scanned in slices that overlap by one sample, so long audio needs no big mask)."""
    n = x.shape[1]
    runs: list[tuple[int, int]] = []
    for i in range(0, n - 1, CHUNK):
        part = x[:, i : min(n, i + CHUNK + 1)]
        same = (part[:, 1:] == part[:, :-1]).all(axis=0)  # same[k]: sample i+k+1 repeats sample i+k
        a, b = _runs(same)
        keep = (b - a + 1 >= shortest) | (a == 0) | (b == len(same))  # (the slice's ends may continue)
        for start, end in zip((i + a[keep]).tolist(), (i + b[keep] + 1).tolist()):
            if runs and runs[-1][1] == start + 1:  # a run that crosses the slice border
                start = runs.pop()[0]
            runs.append((start, end))
    return [(start, end) for start, end in runs if end - start >= shortest]


def _abrupt(edge: np.ndarray, context: np.ndarray, value: np.ndarray, music: float) -> bool:
    """Whether the music right next to a run (`edge`) stands within EDGE_DROP_DB of its level over
    `context` on that side and above `music` (power). Levels are of the departure from the run's held
    `value`, the loudest channel's."""
    def power(part):
        return float(((part.astype(np.float64) - value) ** 2).mean(axis=1).max())

    level = power(edge)
    return level > 0 and level >= music and level >= power(context) * 10 ** (-EDGE_DROP_DB / 10)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(firsts, stops): the [first, stop) index ranges of the True runs."""
    change = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return change[::2], change[1::2]
