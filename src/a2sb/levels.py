"""Level matching of regenerated audio (ours, not in the published method).

- Gap fills: `match_context_level` gives the fill the spectral level of the music around the gap.
- Bandwidth extension: `match_band_level` brings a regenerated band to band replication's level
  ("match") or never above it ("cap"), optionally lowered by a model's `band_level_offsets_db` table.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .audio import SAMPLE_RATE
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


def band_level_offsets_db(table: dict, cutoff_hz: float, rows: int = N_ROWS) -> torch.Tensor:
    """Per picture row (rows,), the dB by which band replication's level is taken to be too loud above
    `cutoff_hz`: `table` (a model's sampling.band_level_offsets, fitted by benchmarks/level_predictability.py)
    holds that error per octave [fc·2^k, fc·2^(k+1)) above each of some cutoffs fc, as the level bias
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
                      bounds_db: tuple[float, float] = BAND_LEVEL_DB, offsets_db: torch.Tensor | None = None):
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
    band replication's expected level error per row (band_level_offsets_db): the target is that much lower."""
    if x0 is None:
        return a, b, x0
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
    inside = [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in region["gaps"]]
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
