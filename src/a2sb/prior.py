"""The degraded picture x1 that the bridge starts from (t = 1), and the DSP estimate of the missing
audio, for training batches and restoration alike (docs/method.md §Masks): the one module both use.

Two kinds, recorded in a model's config.json (`"prior"`) so that restoration builds x1 exactly as the
model was trained:

- ``noise`` (published, F13): the region to generate holds white noise of std `noise` in all three
  channels. NVIDIA's released checkpoints and models without a `"prior"` entry use this.
- ``dsp`` (ours): the region holds a DSP estimate of the missing content plus noise of std `noise`:
  spectral band replication above a cutoff (`a2sb.sbr`) and, in gaps, a copy of the passage whose
  surroundings match the gap's surroundings best (`similarity_source`, on the magnitude picture). The
  network then refines an estimate instead of inventing the band from noise; where no estimate exists
  (a gap with no usable passage around it) the region holds the noise alone.

The estimate has two entry points over the same steps (`similarity_source`, `band_estimate`):
`batch_estimate` for a batch of training items (a crop and the audio around it) and `PictureEstimate`
for a long recording restored window by window.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .errors import A2SBError, reject_unknown_keys
from .masks import FILL_NOISE
from .representation import HOP, N_ROWS, SAMPLE_RATE, compress, spec_to_representation, spread_blocks, stft
from .sbr import sbr_slope, sbr_spectrum

PRIOR_KINDS = ("noise", "dsp")
SIMILARITY_CONTEXT_FRAMES = 22  # ≈ 0.25 s of known frames on each side of a gap form the template
MATCH_BINS = 8  # neighbouring bins averaged for the search: the same choices at an eighth of the cost
LEAK_FRAMES = 2  # a frame's window reaches two hops each way: frames this close to a gap carry some of it


@dataclass(frozen=True)
class Prior:
    """How the region to generate is filled in x1: `kind` (noise | dsp), the std of the added noise,
    (dsp) the seconds of audio on each side of a gap searched for a passage to copy, and (dsp, stereo
    restorations only) how much of the band replication of the mid both channels share (`stereo_blend`)."""

    kind: str = "noise"
    noise: float = FILL_NOISE
    context_s: float = 4.0
    stereo_mix: float = 0.0

    def __post_init__(self):
        if self.kind not in PRIOR_KINDS:
            raise A2SBError(f"prior kind must be one of {', '.join(PRIOR_KINDS)}, got {self.kind!r}")
        if not (self.noise >= 0 and self.context_s >= 0):
            raise A2SBError(f"prior noise and context must be >= 0, got {self.noise}, {self.context_s}")
        if not 0 <= self.stereo_mix <= 1:
            raise A2SBError(f"prior stereo_mix must be in [0, 1], got {self.stereo_mix}")

    @classmethod
    def from_dict(cls, d: dict | None) -> Prior:
        d = dict(d or {})
        reject_unknown_keys(d, [f.name for f in dataclasses.fields(cls)], "unknown prior setting(s)")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def informative(self) -> bool:
        return self.kind == "dsp"


def fill(known: torch.Tensor, mask: torch.Tensor, noise: torch.Tensor, prior: Prior,
         estimate: torch.Tensor | None = None) -> torch.Tensor:
    """x1: `known` (…×3×H×W picture) outside the mask (…×1×H×W, 1 = generate); inside, the picture of the
    DSP `estimate` (same shape as `known`, zero where there is none; ignored for the noise prior) plus
    `prior.noise` × `noise`."""
    inside = prior.noise * noise
    if prior.informative and estimate is not None:
        inside = inside + estimate
    return known * (1 - mask) + mask * inside


def similarity_source(magnitude: torch.Tensor, damaged: torch.Tensor, first: int, stop: int,
                      context: int = SIMILARITY_CONTEXT_FRAMES) -> int | None:
    """Start frame of the passage that best replaces frames [first, stop) of a picture, or None.

    `magnitude`: (H, F) compressed magnitudes (the channels' mean for multichannel audio); `damaged`:
    (F,) bool, frames that may not be copied or matched (every gap, its leaking neighbours, padding).
    The template is up to `context` undamaged frames on each side of the gap; every candidate passage
    of the gap's length whose own surroundings (same offsets) and body are undamaged is scored by the
    normalised cross-correlation of the surroundings with the template (the similarity baseline's rule,
    on the picture instead of the waveform)."""
    h, frames = magnitude.shape
    length = stop - first
    left, right = min(context, first), min(context, frames - stop)
    span = left + length + right
    if length <= 0 or left + right == 0 or span > frames:
        return None
    weight = torch.zeros(span, dtype=magnitude.dtype, device=magnitude.device)
    weight[:left] = 1
    weight[left + length:] = 1
    around = slice(first - left, stop + right)
    weight = weight * (~damaged[around]).to(weight.dtype)  # a neighbouring gap is no template
    template = magnitude[:, around] * weight
    norm = template.square().sum().sqrt()
    if norm <= 0:
        return None
    x = magnitude[None]  # (1, H, F)
    score = torch.nn.functional.conv1d(x, template[None])[0, 0]  # candidate p covers frames [p, p + span)
    energy = torch.nn.functional.conv1d(magnitude.square().sum(0)[None, None], weight[None, None])[0, 0]
    bad = torch.nn.functional.conv1d(damaged.to(magnitude.dtype)[None, None],
                                     torch.ones(1, 1, span, dtype=magnitude.dtype, device=magnitude.device))[0, 0]
    ncc = score / (energy.clamp_min(0).sqrt() * norm + 1e-12)
    ncc = torch.where((bad == 0) & (energy > 0), ncc, torch.full_like(ncc, -torch.inf))
    best = int(torch.argmax(ncc))
    return best + left if torch.isfinite(ncc[best]) else None


def gap_runs(columns: torch.Tensor) -> list[tuple[int, int]]:
    """[first, stop) of each run of True in a (F,) bool tensor."""
    flags = columns.to(torch.int8).tolist()
    runs, start = [], None
    for j, flag in enumerate(flags + [0]):
        if flag and start is None:
            start = j
        elif not flag and start is not None:
            runs.append((start, j))
            start = None
    return runs


def widen(columns: torch.Tensor, frames: int = LEAK_FRAMES) -> torch.Tensor:
    """Frames within `frames` of a True frame (the frames whose STFT window reaches into a gap)."""
    if frames <= 0 or not bool(columns.any()):
        return columns.clone()
    x = columns.to(torch.float32)[None, None]
    return torch.nn.functional.max_pool1d(x, 2 * frames + 1, stride=1, padding=frames)[0, 0] > 0


def match_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """What the similarity search compares: the channels' mean compressed magnitude of a complex STFT
    (C×1025×F), averaged over MATCH_BINS neighbouring bins: (1024 / MATCH_BINS, F)."""
    magnitude = compress(spec[..., 1:, :].abs()).mean(0)
    return torch.nn.functional.avg_pool1d(magnitude.T[None], MATCH_BINS)[0].T


def similarity_spectrum(spec: torch.Tensor, damaged: torch.Tensor, runs: list[tuple[int, int]],
                        context: int = SIMILARITY_CONTEXT_FRAMES) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy, into each run [first, stop) of frames of a complex STFT (C×1025×F, all channels alike), the
    best-matching passage (`similarity_source` on the channels' mean compressed magnitude, averaged over
    MATCH_BINS neighbouring bins). Returns the
    filled spectrum and a (F,) bool of the frames that received a copy."""
    magnitude = match_magnitude(spec)
    out, filled = spec.clone(), torch.zeros(spec.shape[-1], dtype=torch.bool, device=spec.device)
    for first, stop in runs:
        source = similarity_source(magnitude, damaged, first, stop, context)
        if source is not None:
            out[..., first:stop] = spec[..., source:source + stop - first]
            filled[first:stop] = True
    return out, filled


STEREO_BLEND_BINS = 32  # ≈ 690 Hz: the band over which each channel keeps its own level in stereo_blend


def _band_power(spec: torch.Tensor, bins: int) -> torch.Tensor:
    """|spec|² averaged over `bins` neighbouring bins (…×1025×F)."""
    power = spec.abs().square()
    flat = power.transpose(-1, -2).reshape(-1, 1, power.shape[-2])
    smooth = torch.nn.functional.avg_pool1d(flat, bins, 1, bins // 2, count_include_pad=False)[..., :power.shape[-2]]
    return smooth.reshape(*power.shape[:-2], power.shape[-1], power.shape[-2]).transpose(-1, -2)


def stereo_blend(spec: torch.Tensor, mix: float, bins: int = STEREO_BLEND_BINS) -> torch.Tensor:
    """Two channels' estimates (2×1025×F) made more alike: each becomes mix·(the mid, at the channel's
    level) + (1 − mix)·itself, rescaled to its own level (band power over `bins` bins per frame).

    Band replication copies each channel's own octave below the cutoff, so its band is only as coherent
    between channels as that octave; music's upper band is often far more coherent (centred cymbals and
    sibilants, joint-stereo coding). mix = 0 keeps the channels' own estimates, 1 gives both the mid's
    fine structure; the level of every channel in every band and frame is kept either way."""
    if mix <= 0 or spec.shape[0] != 2:
        return spec
    own = _band_power(spec, bins)
    mid = spec.mean(0, keepdim=True)
    tiny = torch.finfo(own.dtype).tiny
    blend = mix * mid * torch.sqrt(own / (_band_power(mid, bins) + tiny)) + (1 - mix) * spec
    return blend * torch.sqrt(own / (_band_power(blend, bins) + tiny))


def band_estimate(spec: torch.Tensor, cutoff: float, slope: torch.Tensor | None = None,
                  stereo_mix: float = 0.0) -> torch.Tensor:
    """The band above `cutoff` of a complex STFT (…×1025×F) rebuilt by band replication (`a2sb.sbr`,
    with the given envelope `slope` or the spectrum's own), channels blended by `stereo_mix`."""
    return stereo_blend(sbr_spectrum(spec, cutoff, slope), stereo_mix)


SLOPE_BLOCK_FRAMES = 256  # the envelope slope of a long recording: from blocks of a training segment's length
SLOPE_BLOCKS = 16


class PictureEstimate:
    """The dsp prior's estimate for frames [a, b) of a long recording, as `batch_estimate` makes it for
    training items: gaps filled with the best-matching passage within `prior.context_s` on each
    side, then spectral band replication above `cutoff` with the envelope slope of the recording
    (fitted on up to SLOPE_BLOCKS evenly spread blocks of frames, so hours cost no more than minutes),
    blended between stereo channels by `prior.stereo_mix` (training items are mono: no blend there).

    `spectrum(a, b)` gives the complex STFT (C×1025×(b − a)) of frames [a, b) of the recording;
    `gap_frames` (F,) bool marks the frames to generate in gaps. The gap sources are found once, up front,
    so any window can then be asked for in any order."""

    def __init__(self, spectrum, frames: int, cutoff: float | None, gap_frames, prior: Prior):
        self.spectrum, self.frames, self.cutoff = spectrum, frames, cutoff
        self.stereo_mix = prior.stereo_mix
        gap = torch.as_tensor(gap_frames, dtype=torch.bool)
        self.sources = []  # (first, stop, source start or None)
        reach = int(round(prior.context_s * SAMPLE_RATE / HOP))
        damaged = widen(gap)
        for first, stop in gap_runs(gap):
            lo, hi = max(0, first - reach), min(frames, stop + reach)
            source = similarity_source(match_magnitude(spectrum(lo, hi)), damaged[lo:hi], first - lo, stop - lo)
            self.sources.append((first, stop, None if source is None else source + lo))
        self.slope = None
        if cutoff is not None:
            power = torch.stack([spectrum(a, b).abs().square().mean(-1)
                                 for a, b in spread_blocks(frames, SLOPE_BLOCKS, SLOPE_BLOCK_FRAMES)]).mean(0)
            self.slope = sbr_slope(power.double(), cutoff).float()

    def __call__(self, a: int, b: int, spec: torch.Tensor | None = None) -> torch.Tensor:
        """Picture (C×3×1024×(b − a)) of the estimate; zero in gap frames without a passage to copy.
        `spec`: the frames' own spectrum, when the caller has it already."""
        spec = self.spectrum(a, b) if spec is None else spec.clone()
        missing = torch.zeros(b - a, dtype=torch.bool)
        for first, stop, source in self.sources:
            lo, hi = max(a, first), min(b, stop)
            if lo >= hi:
                continue
            if source is None:
                missing[lo - a:hi - a] = True
            else:
                spec[..., lo - a:hi - a] = self.spectrum(source + lo - first, source + hi - first)
        if self.cutoff is not None:
            spec = band_estimate(spec, self.cutoff, self.slope, self.stereo_mix)
        picture = spec_to_representation(spec)
        picture[..., missing] = 0
        return picture


def cutoff_of_row(row: int) -> float:
    """A cutoff frequency whose first generated row is `row` (the middle of the row's bin)."""
    return (row + 0.5) * SAMPLE_RATE / (2 * N_ROWS)


def batch_estimate(spec_d: torch.Tensor, batch: dict) -> torch.Tensor:
    """Picture of the DSP estimate of each item's hole (B×3×H×W, zero where there is none): spectral
    band replication of the degraded STFT above the cutoff row (the decode itself below it, and in the
    codec holes of an item without a cutoff), and in a gap the best-matching passage
    of the item's context audio (`batch["context"]`: the crop with the same audio on each side)."""
    b, _, w = spec_d.shape
    estimate = torch.zeros(b, 3, N_ROWS, w, device=spec_d.device)
    context = batch.get("context")
    pad = (context.shape[-1] - batch["clean"].shape[-1]) // 2 if context is not None else 0
    holes = batch.get("holes")
    for i in range(b):
        row = int(batch["cutoff_row"][i])
        first, stop = (int(v) for v in batch["gap"][i])
        spec_i, unfilled = spec_d[i], None
        if stop > first and pad > 0:  # the gap first, as PictureEstimate does: its copy is band-replicated too
            spec_c = stft(context[i].to(spec_d.device, torch.float32))
            offset = pad // HOP  # context frame offset + j is crop frame j (whole hops)
            lo, hi = (int(v) for v in batch["context_valid"][i])
            centres = torch.arange(spec_c.shape[-1], device=spec_c.device) * HOP
            # frames whose window reaches the zeros beyond the file are no source or template either
            outside = (centres < lo + HOP * 2) | (centres >= hi - HOP * 2)
            gap_cols = torch.zeros_like(outside)
            gap_cols[first + offset:stop + offset] = True
            filled, got = similarity_spectrum(spec_c[None], widen(gap_cols) | outside, gap_runs(gap_cols))
            spec_i = spec_i.clone()
            spec_i[..., first:stop] = filled[0, :, first + offset:stop + offset]
            unfilled = ~got[first + offset:stop + offset].to(spec_d.device)
            if row == N_ROWS and bool(got.any()):
                estimate[i, :, :, first:stop] = spec_to_representation(spec_i[..., first:stop])
        if row < N_ROWS:  # (a band and a gap: the context's own band above the cutoff is replaced here)
            estimate[i] = spec_to_representation(band_estimate(spec_i, cutoff_of_row(row)))
        elif holes is not None and bool(holes[i].any()):  # codec holes of a full-band decode: the decode
            estimate[i] = spec_to_representation(spec_i)
        if unfilled is not None:
            estimate[i, :, :, first:stop][..., unfilled] = 0  # no passage to copy: nothing estimated
    return estimate
