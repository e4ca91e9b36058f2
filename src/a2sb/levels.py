"""Level matching of regenerated audio (ours, not in the published method).

- Gap fills: `match_context_level` gives the fill the spectral level of the music around the gap.
- Gap fills, after splicing: `make_fill_safe` bounds the fill's level per octave and its peak by the
  music around the gap (gaps longer than the model fills well are filled too, with a warning:
  a2sb.plan.gap_warnings).
- Bandwidth extension: `match_band_level` raises a regenerated band by the model's own measured level
  deficit (its band gain table), then brings it to band replication's level ("match") or never above
  it ("cap"), that target optionally lowered by the model's band level offsets (`octave_table_db`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.ndimage import minimum_filter1d, uniform_filter1d

from .audio import SAMPLE_RATE
from .masks import gap_samples
from .representation import HOP, N_FFT, N_ROWS, istft, representation_to_spec, row_of_frequency, stft

CONTEXT_LEVEL_SECONDS = 1.0  # context on each side of a gap whose level the fill is matched to
CONTEXT_LEVEL_ROWS = 9  # the level correction is smoothed over this many frequency rows (~190 Hz)
CONTEXT_LEVEL_DB = (-120.0, 20.0)  # bounds of the correction (dB of |S|)
BAND_LEVEL_OCTAVES = 1 / 3  # bandwidth extension: the level of each row's band this wide is corrected ...
BAND_LEVEL_DB = (-40.0, 40.0)  # ... within these bounds (dB)


def context_level_gain(fill: torch.Tensor, context: torch.Tensor, rows: int = CONTEXT_LEVEL_ROWS,
                       bounds_db: tuple[float, float] = CONTEXT_LEVEL_DB, floor: float = 1e-10) -> torch.Tensor:
    """Per-bin gains (channels, bins) that give the magnitudes `fill` (channels, bins, frames) the same mean
    log level over time as `context` (channels, bins, frames), smoothed over `rows` bins and bounded by
    `bounds_db` (dB). The mean of log magnitude is the statistic LSD compares; `floor` (|S| units) keeps
    digital silence finite."""
    gain = (torch.log(context.double() + floor).mean(-1) - torch.log(fill.double() + floor).mean(-1))[:, None]
    if rows > 1:
        gain = torch.nn.functional.pad(gain, (rows // 2, rows // 2), mode="replicate")
        gain = torch.nn.functional.avg_pool1d(gain, rows, stride=1)
    lo, hi = (d / 20 * math.log(10) for d in bounds_db)
    return gain[:, 0].clamp(lo, hi).exp()


def band_level_gain(fill: torch.Tensor, reference: torch.Tensor, first_row: int,
                    octaves: float = BAND_LEVEL_OCTAVES, bounds_db: tuple[float, float] = BAND_LEVEL_DB,
                    floor: float = 1e-10, offsets_db: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row gains (channels, rows) for the magnitudes `fill` (channels, rows, frames) that give every
    row from `first_row` up the mean over frames of log band power of `reference` (same shape): the band
    is `octaves` wide around the row, clipped to the rows from `first_row` (the known rows below are
    alike in both and would dilute the correction). The statistic is that of the per-octave level bias
    (a2sb.metrics.level_bias) at a finer resolution; rows below `first_row` get 1. `floor` in |S|².
    `offsets_db` (rows,) lowers each row's target by that much (after the band averaging: no smoothing)."""
    rows = fill.shape[-2]
    r = torch.arange(rows)
    lo = torch.floor(r * 2.0 ** (-octaves / 2)).long().clamp(min=first_row, max=rows - 1)
    hi = torch.ceil((r + 1) * 2.0 ** (octaves / 2)).long().clamp(max=rows)
    lo, hi = torch.minimum(lo, r), torch.maximum(hi, r + 1)

    def mean_log_band(magnitude: torch.Tensor) -> torch.Tensor:
        power = torch.nn.functional.pad(magnitude.double().square().cumsum(-2), (0, 0, 1, 0))
        band = (power[..., hi, :] - power[..., lo, :]) / (hi - lo)[:, None]
        return torch.log(band + floor).mean(-1)

    gain_db = 10 / math.log(10) * (mean_log_band(reference) - mean_log_band(fill))
    if offsets_db is not None:
        gain_db = gain_db - offsets_db.to(gain_db)
    gain = 10 ** (gain_db.clamp(*bounds_db) / 20)
    gain[..., :first_row] = 1.0
    return gain


def octave_table_db(table: dict, cutoff_hz: float, rows: int = N_ROWS) -> torch.Tensor:
    """Per picture row (rows,), a table's dB for the band above `cutoff_hz`: a model's band level offsets
    (sampling.band_level_offsets, fitted by experiments/level_predictability.py: by how much band
    replication's level is too loud) or band gain (sampling.band_gain, fitted by
    experiments/fit_band_gain.py: by how much the model's own band is too quiet). `table` holds its dB per
    octave [fc·2^k, fc·2^(k+1)) above each of some cutoffs fc, as the level bias
    metric counts octaves (the last value also serves the octaves above it). Between tabulated cutoffs it
    is interpolated linearly in log2 of the cutoff (held beyond). Rows at or below the cutoff get 0."""
    nyquist = SAMPLE_RATE / 2
    octaves_up = np.log2(np.maximum((np.arange(rows) + 1) * nyquist / rows, cutoff_hz) / cutoff_hz)
    octave = np.floor(octaves_up + 1e-9).astype(int)  # 1e-9: a row on an octave edge starts the octave

    def at(values: list[float]) -> np.ndarray:
        return np.asarray(values)[np.minimum(octave, len(values) - 1)]

    cutoffs = np.log2(table["cutoffs_hz"])
    here = float(np.clip(math.log2(cutoff_hz), cutoffs[0], cutoffs[-1]))
    i = int(np.clip(np.searchsorted(cutoffs, here) - 1, 0, max(len(cutoffs) - 2, 0)))
    j = min(i + 1, len(cutoffs) - 1)
    w = 0.0 if j == i else (here - cutoffs[i]) / (cutoffs[j] - cutoffs[i])
    offsets = (1 - w) * at(table["octaves_db"][i]) + w * at(table["octaves_db"][j])
    offsets[: row_of_frequency(cutoff_hz)] = 0.0
    return torch.from_numpy(offsets)


def match_band_level(a: int, b: int, x0: torch.Tensor, reference: torch.Tensor, first_row: int,
                      bounds_db: tuple[float, float] = BAND_LEVEL_DB, offsets_db: torch.Tensor | None = None,
                      gain_db: torch.Tensor | None = None):
    """Ours, not published: bring the band a bandwidth extension generates to band replication's level.

    Small models and a few sampling steps leave the regenerated band too quiet or too loud (ours: 8-27 dB
    too quiet per octave above 4 kHz before stage 5, then ~6 dB too loud just above the cutoff;
    benchmarks/README.md), while band replication's envelope (a2sb.sbr) is right on average. Each
    finished block of frames gets one gain per row (band_level_gain against `reference`, the estimate's
    picture of the same frames), so the model's timing and fine structure are kept. The picture the
    network makes is not an exact STFT: its inverse loses some of the band's power (a few dB where the
    phases are incoherent), so the gain is judged a second time on the block resynthesised and analysed
    again (without the frames at its ends, which lack their neighbours). `bounds_db` with 0 dB at the top
    ("cap") only ever lowers the band, in both passes: where resynthesis loses power, a capped band can
    end a few dB below band replication's level, never above it. `offsets_db` (rows,), when given, is
    band replication's expected level error per row (octave_table_db): the target is that much lower.
    `gain_db` (rows,), when given, first raises the band by the model's own measured level deficit per
    row (its band gain, octave_table_db; 0 below the cutoff): with "cap", a band that a squared error in
    the compressed magnitude leaves too quiet gets its expected level, still never above band replication's."""
    if x0 is None:
        return a, b, x0
    if gain_db is not None:
        x0 = x0.clone()
        x0[:, 0] *= (10 ** (gain_db.to(x0.device).double() / 80)).to(x0.dtype)[:, None]  # power dB -> |S|^0.25
    target = reference[:, 0].to(x0.device).float() ** 4  # |S| from the picture's |S|^0.25
    gain = band_level_gain(x0[:, 0].float() ** 4, target, first_row, bounds_db=bounds_db, offsets_db=offsets_db)
    edge = 2 if x0.shape[-1] > 8 else 0
    if x0.shape[-1] - 2 * edge >= 4:
        fixed = x0.float().clone()
        fixed[:, 0] *= gain[..., None].to(fixed) ** 0.25
        again = stft(istft(representation_to_spec(fixed, phase_fix=True)))[:, 1:, edge:x0.shape[-1] - edge]
        gain = gain * band_level_gain(again.abs(), target[..., edge:x0.shape[-1] - edge], first_row,
                                      bounds_db=bounds_db, offsets_db=offsets_db).to(gain)
    x0 = x0.clone()
    x0[:, 0] *= gain[..., None].to(x0) ** 0.25
    return a, b, x0


def match_context_level(wave: np.ndarray, region: dict, picture, gap_frames, weight: np.ndarray) -> np.ndarray:
    """Ours, not published: correct the spectral level of a gap fill to that of the music around it.

    The fill of a small model after resynthesis is often a few dB too quiet where there is music and
    tens of dB too loud in bands that are empty around the gap (the top octave of a lossy source). The
    fill is spliced into the input as the output will be, analysed, and every frame that overlaps a gap
    gets one gain per frequency bin (context_level_gain: the known frames within CONTEXT_LEVEL_SECONDS
    against the frames centred inside the gaps), so the model's timing and fine structure are kept.
    `wave` is the region's model waveform at 44.1 kHz (samples n0..n1), `picture` the input's
    WaveformPicture, `weight` the splice weight of the model's waveform over n0..n1; returns its replacement."""
    n0, n1 = region["n0"], region["n1"]
    inside = gap_samples(region["gaps"])
    if not inside or wave.shape[1] != n1 - n0:
        return wave
    reach = int(round(CONTEXT_LEVEL_SECONDS * SAMPLE_RATE / HOP))
    lo_f = max(0, inside[0][0] // HOP - reach)
    hi_f = min(len(gap_frames), -(-inside[-1][1] // HOP) + reach)
    known = np.flatnonzero(~gap_frames[lo_f:hi_f]) + lo_f
    if len(known) < 8:  # too little context to say what level the fill should have
        return wave
    context = picture.spectrum(lo_f, hi_f)[:, 1:, known - lo_f].abs()  # (channels, 1024, K): |S|
    # the output around the region, as it will be spliced: input, then the fill with its crossfades
    lo, hi = max(0, n0 - N_FFT), min(picture.length, n1 + N_FFT)
    z = picture.read(lo, hi).astype(np.float32, copy=True)
    z[:, n0 - lo:n1 - lo] = z[:, n0 - lo:n1 - lo] * (1 - weight) + wave * weight
    spec = stft(torch.from_numpy(z).double())
    centres = lo + HOP * np.arange(spec.shape[-1])
    centred = np.zeros(len(centres), bool)  # frames centred inside a gap: what the fill is judged on
    touching = np.zeros(len(centres), bool)  # frames whose window overlaps a gap: what is corrected
    for a, b in inside:
        centred |= (centres >= a) & (centres < b)
        touching |= (centres > a - N_FFT // 2) & (centres < b + N_FFT // 2)
    if not centred.any():
        return wave
    gain = context_level_gain(spec[:, 1:, centred].abs(), context)  # rows are bins 1..1024
    gain = torch.cat([gain[:, :1], gain], dim=1)  # DC bin: as bin 1
    spec[:, :, touching] *= gain[..., None]
    fixed = istft(spec, length=z.shape[1]).numpy()
    return fixed[:, n0 - lo:n1 - lo].astype(np.float32)


# ------------------------------------------------------------------------------------- safe gap fills

FILL_CONTEXT_SECONDS = 1.0  # the neighbourhood of a gap: this much of the input on each side
FILL_LEVEL_DB = 1.5  # the fill's level per octave is brought within this of its context's ...
FILL_LEVEL_PASSES = 8  # ... judged again after each resynthesis, this many times at most (an octave next
# to an empty one, as above a lowpass, converges over several: the ramp between them leaks)
FILL_BAND_RAMP_OCT = 1 / 24  # the gain changes from one octave's to the next's over this much on each side
FILL_PEAK_DB = 3.0  # no sample of a fill above the neighbourhood's peak + this (nor above full scale)
FILL_LIMIT_SECONDS = 0.0025  # the limiter's gain reaches its floor this long before a peak and recovers as slowly


def octave_edges(rate: float = SAMPLE_RATE) -> np.ndarray:
    """Band edges (Hz) of the octaves the fill's level is judged in: Nyquist/2^k down to ~20 Hz, and 0."""
    edges = rate / 2 / 2.0 ** np.arange(11)[::-1]
    return np.concatenate([[0.0], edges])


def band_power(x: np.ndarray, valid: np.ndarray | None, segment: int, edges: np.ndarray,
               rate: float = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """Mean power per band between `edges` (Hz) of `x` (channels, n), summed over channels, averaged over
    Hann-windowed segments of `segment` samples (hop segment/4) that lie wholly where `valid` (n,) is True
    (all when None). Returns (power per band, number of segments)."""
    n = x.shape[1]
    starts = np.arange(0, n - segment + 1, max(1, segment // 4))
    if valid is not None and len(starts):
        bad = np.concatenate([[0], np.cumsum(~valid)])
        starts = starts[bad[starts + segment] == bad[starts]]
    if not len(starts):
        return np.zeros(len(edges) - 1), 0
    window = np.hanning(segment + 1)[:-1]
    freqs = np.fft.rfftfreq(segment, 1 / rate)
    band = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, len(edges) - 2)
    total = np.zeros(len(edges) - 1)
    for chunk in np.array_split(starts, max(1, len(starts) // 64)):
        spec = np.abs(np.fft.rfft(x[:, chunk[:, None] + np.arange(segment)] * window, axis=-1)) ** 2
        total += np.bincount(band, weights=spec.sum(axis=(0, 1)), minlength=len(edges) - 1)
    return total / len(starts), len(starts)


def _band_gains_db(fill: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], tolerance_db: float) -> np.ndarray:
    """dB per band that bring the fill's band powers to no less than `tolerance_db` under the lower bound's
    and no more than `tolerance_db` over the upper bound's (0 where they already are); `bounds` is a pair of
    band powers (the same array twice: within `tolerance_db` of it). Bands empty in the fill and in both
    bounds get 0."""
    tiny = 1e-20
    low, high = bounds
    level = 10 * np.log10(fill + tiny)
    gain = np.clip(level, 10 * np.log10(low + tiny) - tolerance_db, 10 * np.log10(high + tiny) + tolerance_db) - level
    return np.where((fill <= tiny) & (low <= tiny) & (high <= tiny), 0.0, gain)


def fill_bounds(x: np.ndarray, known: np.ndarray, gap: tuple[int, int], reach: int, segment: int,
                edges: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], int]:
    """The band powers a fill of `gap` (start, end in `x`'s samples) is held to: those of `x` (channels, n)
    within `reach` samples on each side of the gap where `known`, one array for both the lower and the upper
    bound (make_fill_safe); with the number of segments they were measured on (0: no context)."""
    a, b = max(0, gap[0] - reach), min(x.shape[1], gap[1] + reach)
    context, count = band_power(x[:, a:b], known[a:b], segment, edges)
    return (context, context), count


def _bin_gains(gains_db: np.ndarray, edges: np.ndarray, bins: int, rate: float = SAMPLE_RATE) -> np.ndarray:
    """Per-bin linear gains (bins,) of an N_FFT-point STFT: each band's gain (dB) across the band, changing
    linearly in log frequency over FILL_BAND_RAMP_OCT around each band edge, so no step in frequency smears
    the fill in time while each band still gets (nearly) its own gain."""
    low = np.log2(np.maximum(edges[:-1], edges[1] / 2))
    high = np.log2(edges[1:])
    ramp = np.minimum(FILL_BAND_RAMP_OCT, (high - low) / 4)
    points = np.stack([low + ramp, high - ramp], axis=1).ravel()
    freqs = np.log2(np.maximum(np.arange(bins) * rate / N_FFT, rate / N_FFT))
    return 10 ** (np.interp(freqs, points, np.repeat(gains_db, 2)) / 20)


def make_fill_safe(wave: np.ndarray, n0: int, weight: np.ndarray, gaps: list[tuple[int, int]],
                   all_gaps: list[tuple[int, int]], read, length: int) -> np.ndarray:
    """Ours, not published: bound what a gap fill can do to the music, after it is spliced.

    `wave` (channels, n) is the model's waveform over input samples [n0, n0 + n), spliced in with
    `weight` (n,) (1 inside the `gaps`, ramps just outside them); `all_gaps` are every gap of the audio
    (sample ranges: the input there is no music), `read(lo, hi)` gives input samples, `length` their count.
    Returns the corrected waveform:

    1. level: per octave (band_power over Hann segments of up to 2048 samples, octave_edges), the fill
       inside each gap is brought within FILL_LEVEL_DB of the input's level over FILL_CONTEXT_SECONDS
       on each side (known samples only); a fill within the bound is left as it is. The gains are
       interpolated across frequency and applied in the STFT domain, and judged again on the result;
    2. peak: no sample of the spliced output above the neighbourhood's peak + FILL_PEAK_DB (nor above
       full scale when the neighbourhood is below it): a smooth gain (reaching its floor over
       FILL_LIMIT_SECONDS) on the fill only, so a burst is turned down without clipping its waveform;
    3. edges: the splice's crossfades just outside the gap then join the input to a fill of the music's
       level, so the joins make no click.
    """
    channels, n = wave.shape
    if not gaps or n == 0:
        return wave
    reach = int(round(FILL_CONTEXT_SECONDS * SAMPLE_RATE))
    lo, hi = max(0, gaps[0][0] - reach), min(length, gaps[-1][1] + reach)
    x = np.asarray(read(lo, hi), dtype=np.float64)
    known = np.ones(hi - lo, bool)
    for s, e in all_gaps:
        known[max(0, s - lo):max(0, min(hi, e) - lo)] = False
    wave = wave.astype(np.float32)
    edges = octave_edges()
    padded = N_FFT  # zeros around the region, so that short regions have whole frames
    segments = [int(min(N_FFT, 2 ** math.floor(math.log2(max(e - s, 16))))) for s, e in gaps]
    contexts = [fill_bounds(x, known, (s - lo, e - lo), reach, segment, edges)
                for segment, (s, e) in zip(segments, gaps)]
    for _ in range(FILL_LEVEL_PASSES):
        gains, changed = [], False
        for (s, e), segment, (bounds, found) in zip(gaps, segments, contexts):
            fill, count = band_power(wave[:, s - n0:e - n0], None, segment, edges)
            gain = _band_gains_db(fill, bounds, FILL_LEVEL_DB) if count and found else np.zeros(len(edges) - 1)
            changed |= bool(np.abs(gain).max() > 0.05)
            gains.append(_bin_gains(gain, edges, N_FFT // 2 + 1))
        if not changed:
            break
        spec = stft(torch.from_numpy(np.pad(wave, ((0, 0), (padded, padded)))))
        centres = n0 - padded + HOP * np.arange(spec.shape[-1])
        # each frame takes the gains of the gap nearest to it (the borders lie halfway between gaps)
        middles = [(gaps[i][1] + gaps[i + 1][0]) / 2 for i in range(len(gaps) - 1)]
        nearest = np.searchsorted(middles, centres)
        per_frame = torch.from_numpy(np.stack(gains)[nearest].T.astype(np.float32))  # (bins, frames)
        wave = istft(spec * per_frame, length=n + 2 * padded).numpy()[:, padded:padded + n]
    # the peak: of the neighbourhood's known samples
    peak = float(np.abs(x[:, known]).max()) if known.any() else 0.0
    limit = min(peak * 10 ** (FILL_PEAK_DB / 20), max(peak, 1.0)) * (1 - 1e-4)
    loudest = np.abs(wave).max(axis=0) * (weight > 0)
    if loudest.max() > limit:
        need = np.minimum(1.0, limit / np.maximum(loudest, 1e-30))
        span = max(1, int(round(FILL_LIMIT_SECONDS * SAMPLE_RATE)))
        # a minimum over ±span then a mean over ±span: smooth, and nowhere above what each sample needs
        floor = minimum_filter1d(need, 2 * span + 1, mode="nearest")
        gain = np.minimum(uniform_filter1d(floor, 2 * span + 1, mode="nearest"), need)
        wave = wave * gain
    return wave.astype(np.float32)
