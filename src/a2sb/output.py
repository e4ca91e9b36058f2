"""Output assembly: the model's finished picture blocks become the output audio.

- `write_whole` (bandwidth extension: every sample is the model's): streaming inverse STFT, resampled
  back to the output rate; dropouts filled in the same pass get the gap fills' safety bounds against
  the restored music around them (`FillGuard`); `write_spliced` (gaps only): the input copied through,
  the model's waveform spliced into each gap with raised-cosine crossfades just outside it, its level
  matched to the music around it (`a2sb.levels`).
- `OutputFormat`: the container, sample format and rate of a file output, following the input's.
- `finish`: the peak-safe gain (the output never clips; reported), then the sample format, with TPDF
  dither for 16-bit outputs, written atomically.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio import SAMPLE_RATE, AudioWriter, StreamResampler, resample
from .errors import A2SBError
from .levels import FILL_CONTEXT_SECONDS, make_fill_safe, match_context_level
from .masks import PictureMask, gap_samples
from .picture import OverlapAdd, WaveformPicture
from .representation import HOP, N_FFT, representation_to_spec

FADE_SECONDS = 0.01  # crossfade between input and model output at gap edges
WRITE_CHUNK = 1 << 18  # output samples assembled and written at a time
GUARD_GROUP_SECONDS = 30.0  # FillGuard: gaps are judged together over at most this much of the output
PEAK_CEILING = 10 ** (-0.1 / 20)  # an output that would clip is brought down to this peak (-0.1 dBFS)
LOSSY_FORMATS = ("MP3", "OGG", "MPEG")  # containers whose audio is lossy (Ogg: Vorbis or Opus): written as FLAC
FORMAT_CHOICES = {"flac": "FLAC", "wav": "WAV", "aiff": "AIFF"}  # --format
EXTENSIONS = {"FLAC": ".flac", "WAV": ".wav", "AIFF": ".aiff", "W64": ".w64", "RF64": ".rf64", "CAF": ".caf",
              "AU": ".au", "WAVEX": ".wav"}
BITS = {"PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}


def mid_side(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """(left, right) -> (mid, side) = ((l + r) / 2, (l − r) / 2), or back with `inverse`."""
    a, b = x[0], x[1]
    return np.stack([a + b, a - b]) if inverse else np.stack([(a + b) / 2, (a - b) / 2])


def write_whole(blocks, mask: PictureMask, channels: int, out_rate: int, out_length: int, write,
                fill_safety: bool = True, midside: bool = False, dc_row=None) -> None:
    """Every output sample is the model's: streaming inverse STFT of the finished blocks (mid/side turned
    back into left/right with `midside`). Gaps in the mask (a band and dropouts together) get the safety
    bounds of gap fills (`FillGuard`, with `fill_safety`) before the output is resampled and written.
    `dc_row(a, b)`: the DC bin of frames [a, b) (channels, 1, b − a), which the picture leaves out: the
    input's outside gaps; without it the output has none, losing what the input has below ~45 Hz (the
    Hann window spreads a 30 Hz tone over bins 0-2)."""
    resampler = StreamResampler(SAMPLE_RATE, out_rate, channels, out_length, write) if out_rate != SAMPLE_RATE \
        else None
    sink = resampler.write if resampler else write
    gaps = gap_samples(mask.gaps)
    guard = FillGuard(gaps, generated_spans(mask), mask.length, sink) if fill_safety and gaps else None
    ola = OverlapAdd(channels)
    done = 0

    def emit(start: int, samples: torch.Tensor) -> None:
        nonlocal done
        keep = samples[:, :max(0, mask.length - start)].numpy()
        if keep.shape[1]:
            keep = mid_side(keep, inverse=True) if midside else keep
            (guard.write if guard else sink)(keep)
            done = start + keep.shape[1]

    for a, b, x0 in blocks:
        spec = representation_to_spec(x0.float().cpu(), phase_fix=True)
        if dc_row is not None:  # the DC row is never generated: below every band, and left empty in gaps
            spec[..., :1, :] = dc_row(a, b)
        emit(*ola.push(spec))
    emit(*ola.finish())
    if guard is not None:
        guard.close()
    if resampler is not None:
        resampler.close()
    assert done == mask.length, (done, mask.length)


def generated_spans(mask: PictureMask) -> list[tuple[int, int]]:
    """The samples (start, stop) that frames generated for gaps reach (mask.gap_frames: every frame touching
    a gap and two more on each side, each a window of ±N_FFT/2 samples around its centre): in a whole
    output the model's fill is all of that, not only the gap."""
    spans: list[tuple[int, int]] = []
    frames = np.flatnonzero(mask.gap_frames)
    if frames.size == 0:
        return spans
    breaks = np.flatnonzero(np.diff(frames) > 1)
    for first, last in zip(np.r_[frames[0], frames[breaks + 1]], np.r_[frames[breaks], frames[-1]]):
        start, stop = max(0, int(first) * HOP - N_FFT // 2), min(mask.length, int(last) * HOP + N_FFT // 2)
        if stop > start:
            spans.append((start, stop))
    return spans


class FillGuard:
    """The safety bounds of gap fills (levels.make_fill_safe: level per octave, peak, edges) for an output
    that is the model's everywhere (a band regenerated and dropouts filled together). `spans`: the samples
    the fills reach (generated_spans: the gaps and the frames around them), `gaps` the dropouts (sample
    ranges), `length` the output's samples at 44.1 kHz. Each span is judged in pieces (before, inside and
    between its gaps, after), each brought to the level of the restored music (band included) around the
    span and none above its peak; the samples within FILL_CONTEXT_SECONDS of a group of spans are held
    until the context after it has arrived, then passed on corrected, spliced in as `write_spliced`
    splices a fill. Consecutive 44.1 kHz chunks of the output pass through `write(chunk)` in order, in any
    sizes. Memory: a group's extent (at most GUARD_GROUP_SECONDS) plus twice the context, however many
    gaps follow each other."""

    def __init__(self, gaps: list[tuple[int, int]], spans: list[tuple[int, int]], length: int, write):
        self.length, self.write_out, self.spans = length, write, sorted(spans)
        self.pieces = {span: _pieces(span, gaps) for span in self.spans}
        self.reach = int(round(FILL_CONTEXT_SECONDS * SAMPLE_RATE)) + int(round(FADE_SECONDS * SAMPLE_RATE)) + 1
        self.groups: list[list[tuple[int, int]]] = []
        longest = int(GUARD_GROUP_SECONDS * SAMPLE_RATE)
        for span in self.spans:  # spans whose contexts overlap are judged together, up to a bounded extent
            if self.groups and span[0] - self.groups[-1][-1][1] <= 2 * self.reach \
                    and span[1] - self.groups[-1][0][0] <= longest:
                self.groups[-1].append(span)
            else:
                self.groups.append([span])
        self.held = np.zeros((0, 0), np.float32)  # output samples [start, start + held.shape[1])
        self.start = 0

    def write(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk, np.float32)
        if self.held.size == 0 and (not self.groups or self.start + chunk.shape[1] <= self._hold_from()):
            self.write_out(chunk)  # nothing held and no gap's context in it: passed on as it is
            self.start += chunk.shape[1]
            return
        self.held = chunk.copy() if self.held.size == 0 else np.concatenate([self.held, chunk], axis=1)
        self._flush(final=False)

    def _hold_from(self) -> int:
        """The first sample the next group of gaps needs as context (its fix needs them held)."""
        return max(0, self.groups[0][0][0] - self.reach)

    def close(self) -> None:
        self._flush(final=True)

    def _flush(self, final: bool) -> None:
        received = self.start + self.held.shape[1]
        while self.groups and (final or received >= min(self.length, self.groups[0][-1][1] + self.reach)):
            self._fix(self.groups.pop(0), received)
        release = received if final or not self.groups else min(received, self._hold_from())
        if release > self.start:
            self.write_out(self.held[:, :release - self.start])
            self.held = self.held[:, release - self.start:]
            self.start = release

    def _fix(self, group: list[tuple[int, int]], received: int) -> None:
        fade = int(round(FADE_SECONDS * SAMPLE_RATE))
        n0 = max(self.start, group[0][0] - fade - 1)
        n1 = min(received, group[-1][1] + fade + 1)
        pieces = [(max(a, n0), min(b, n1)) for span in group for a, b in self.pieces[span] if min(b, n1) > max(a, n0)]
        if not pieces:
            return
        weight = splice_weight([(max(a, n0), min(b, n1)) for a, b in group], n0, n1, SAMPLE_RATE)
        region = self.held[:, n0 - self.start:n1 - self.start]

        def read(lo: int, hi: int) -> np.ndarray:
            return self.held[:, max(lo, self.start) - self.start:min(hi, received) - self.start]

        safe = make_fill_safe(region.copy(), n0, weight, pieces, self.spans, read, received)
        self.held[:, n0 - self.start:n1 - self.start] = region * (1 - weight) + safe * weight


def _pieces(span: tuple[int, int], gaps: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`span` cut at the edges of the `gaps` inside it: the parts before, inside, between and after them."""
    cuts = sorted({span[0], span[1], *(min(max(t, span[0]), span[1]) for gap in gaps for t in gap)})
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def write_spliced(blocks, mask: PictureMask, picture: WaveformPicture, native, channels: int, out_rate: int,
                   out_length: int, write, level_match: bool = True, midside: bool = False) -> None:
    """Gaps only: the input copied through, the model's waveform spliced into each gap with raised-cosine
    crossfades just outside it. Only the frames around the gaps are ever inverse-transformed."""
    regions = splice_regions(mask, out_rate)
    wanted = {}  # frame -> region indices that need it
    for index, region in enumerate(regions):
        for j in range(region["first_frame"], region["stop_frame"]):
            wanted.setdefault(j, []).append(index)
    columns: list[dict[int, torch.Tensor]] = [{} for _ in regions]
    for a, b, x0 in blocks:
        for j in range(a, b):
            for index in wanted.get(j, ()):
                columns[index][j] = None if x0 is None else x0[..., j - a].float().cpu().clone()
    all_gaps = gap_samples(mask.gaps)
    for region, cols in zip(regions, columns):
        region["wave"] = region_wave(region, cols, picture, channels, out_rate,
                                     mask.gap_frames if level_match else None, all_gaps)
        if midside:
            region["wave"] = mid_side(region["wave"], inverse=True)
    chunk = WRITE_CHUNK
    for start in range(0, out_length, chunk):
        stop = min(out_length, start + chunk)
        data = native.read(start, stop).astype(np.float32, copy=True)
        for region in regions:
            lo, hi = max(start, region["out_start"]), min(stop, region["out_stop"])
            if lo < hi:
                w = region["weight"][:, lo - region["out_start"]:hi - region["out_start"]]
                model = region["wave"][:, lo - region["out_start"]:hi - region["out_start"]]
                data[:, lo - start:hi - start] = data[:, lo - start:hi - start] * (1 - w) + model * w
        write(data)


def splice_regions(mask: PictureMask, out_rate: int) -> list[dict]:
    """Merge gaps whose crossfades/margins touch; for each region: the 44.1 kHz samples and frames the
    model waveform is needed for, and the output-rate samples and crossfade weights."""
    margin = 0 if out_rate == SAMPLE_RATE else 2 * N_FFT  # resampling needs context at the ends
    # whole output samples must map to whole 44.1 kHz samples at the region start
    step = SAMPLE_RATE // math.gcd(SAMPLE_RATE, out_rate)
    groups: list[list[tuple[float, float]]] = []
    reach = 2 * FADE_SECONDS + 2 * margin / SAMPLE_RATE
    for gap in mask.gaps:
        if groups and gap[0] - groups[-1][-1][1] <= reach:
            groups[-1].append(gap)
        else:
            groups.append([gap])
    regions = []
    out_total = int(round(mask.length * out_rate / SAMPLE_RATE))
    for group in groups:
        n0 = max(0, int(round(group[0][0] * SAMPLE_RATE)) - int(round(FADE_SECONDS * SAMPLE_RATE)) - margin - 1)
        n0 = n0 // step * step
        n1 = min(mask.length, int(round(group[-1][1] * SAMPLE_RATE)) + int(round(FADE_SECONDS * SAMPLE_RATE))
                 + margin + 1)
        out_start = n0 * out_rate // SAMPLE_RATE
        out_stop = min(out_total, int(round(n1 * out_rate / SAMPLE_RATE)))
        weight = splice_weight([(int(round(a * out_rate)), int(round(b * out_rate))) for a, b in group],
                                out_start, out_stop, out_rate)
        regions.append(dict(n0=n0, n1=n1, first_frame=max(0, n0 // HOP - 2),
                            stop_frame=min(mask.frames, (n1 - 1) // HOP + 3),
                            out_start=out_start, out_stop=out_stop, weight=weight[None], gaps=group))
    return regions


def splice_weight(gaps: list[tuple[int, int]], n0: int, n1: int, rate: int) -> np.ndarray:
    """Weight of the model's waveform over samples [n0, n1): 1 inside the gaps (sample ranges), raised-
    cosine ramps of FADE_SECONDS just outside them, 0 elsewhere."""
    fade = max(1, int(round(FADE_SECONDS * rate)))
    positions = np.arange(n0, n1)
    weight = np.zeros(n1 - n0, np.float32)
    for s, e in gaps:
        w = np.clip((positions - (s - fade) + 0.5) / fade, 0, 1)  # rising ramp before the gap
        w = np.minimum(w, np.clip(((e + fade) - positions - 0.5) / fade, 0, 1))  # falling after
        weight = np.maximum(weight, (0.5 - 0.5 * np.cos(np.pi * w)).astype(np.float32))
    return weight


def region_wave(region: dict, cols: dict, picture: WaveformPicture, channels: int, out_rate: int,
                gap_frames=None, all_gaps=()) -> np.ndarray:
    """The model's waveform of one splice region at the output rate. With `gap_frames` (level match on)
    the fill gets the spectral level of the music around it, then the safety bounds of
    `levels.make_fill_safe` (level per octave, peak; `all_gaps` in samples are left out of its context)."""
    first, stop = region["first_frame"], region["stop_frame"]
    frames = []
    for j in range(first, stop):
        col = cols.get(j)
        frames.append(picture(j, j + 1)[..., 0] if col is None else col)  # untouched frame: the input's own
    spec = representation_to_spec(torch.stack(frames, dim=-1), phase_fix=True)
    ola = OverlapAdd(channels, first)
    start, samples = ola.push(spec)
    if stop == picture.frames:
        tail_start, tail = ola.finish()
        samples = torch.cat([samples, tail], dim=-1)
    wave = samples.numpy()[:, region["n0"] - start:region["n1"] - start]
    if gap_frames is not None:  # level match on
        inside = gap_samples(region["gaps"])
        weight = splice_weight(inside, region["n0"], region["n1"], SAMPLE_RATE)
        wave = match_context_level(wave, region, picture, gap_frames, weight)
        wave = make_fill_safe(wave, region["n0"], weight, inside, all_gaps, picture.read, picture.length)
    if out_rate != SAMPLE_RATE:
        wave = resample(wave, SAMPLE_RATE, out_rate)
    length = region["out_stop"] - region["out_start"]
    return np.pad(wave, ((0, 0), (0, max(0, length - wave.shape[1]))))[:, :length]


# ------------------------------------------------------------------------------------------ file format

@dataclass(frozen=True)
class OutputFormat:
    """Container (libsndfile's name), sample format and rate of an output file."""

    container: str
    subtype: str
    rate: int

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.container, "." + self.container.lower())

    def describe(self) -> str:
        kind = {"FLOAT": "32-bit float", "DOUBLE": "64-bit float"}.get(self.subtype, f"{BITS.get(self.subtype, 0)}-bit")
        return f"{self.container} {kind}, {self.rate / 1000:g} kHz"


def output_format(info, rate: int, format: str | None = None, path: str | os.PathLike | None = None) -> OutputFormat:
    """The output's format for an input with header `info` (its format and subtype, as audio_info or
    soundfile.info give them), written at `rate`: the input's container where libsndfile writes it (lossy
    ones: FLAC), or `format` ("flac", "wav", "aiff"), or the container `path`'s ending names; a sample
    format with at least the input's bits (float stays float; at most 16 bits and lossy sources: 16-bit,
    dithered)."""
    if format is not None:
        container = chosen_container(format)
    elif path is not None:
        from .audio import container_of

        container = container_of(path)
    else:
        container = "FLAC" if is_lossy(info) else info.format
    lossy = is_lossy(info)
    bits = 16 if lossy else BITS.get(info.subtype, 24)
    if info.subtype in ("FLOAT", "DOUBLE") and not lossy:
        subtype = info.subtype
    else:
        subtype = {8: "PCM_16", 16: "PCM_16", 24: "PCM_24"}.get(bits, "PCM_32")
    for candidate in (subtype, "PCM_24", "PCM_16"):  # what the container can hold, nearest first
        if sf.check_format(container, candidate):
            return OutputFormat(container, candidate, int(rate))
    raise A2SBError(f"cannot write {container} files")


def chosen_container(format: str) -> str:
    """libsndfile's container for a --format choice."""
    if format.lower() not in FORMAT_CHOICES:
        raise A2SBError(f"unknown output format '{format}' (choose from {', '.join(FORMAT_CHOICES)})")
    return FORMAT_CHOICES[format.lower()]


def is_lossy(info) -> bool:
    """Whether a file (soundfile info) holds lossy-coded audio (MP3, Vorbis, Opus)."""
    return info.format in LOSSY_FORMATS or info.subtype in ("VORBIS", "OPUS", "MPEG_LAYER_III")


def output_rate(input_rate: int, cutoff: float | None) -> int:
    """The input's rate, or 44.1 kHz when a band above the input's own Nyquist frequency is regenerated."""
    return SAMPLE_RATE if cutoff is not None and input_rate < SAMPLE_RATE else int(input_rate)


# ---------------------------------------------------------------------------------------- peak safety

def peak_gain(peak: float) -> float:
    """The gain that keeps an output of this peak from clipping: 1, or down to PEAK_CEILING."""
    return 1.0 if peak <= 1.0 else PEAK_CEILING / peak


def db(value: float) -> float:
    return 20 * math.log10(max(value, 1e-12))


def finish(source, path: Path, fmt: OutputFormat, channels: int, gain: float, seed: int = 0,
           tags: dict[str, str] | None = None) -> int:
    """Write the (channels, n) float chunks of `source` (an iterable) to `path` in `fmt`, times `gain`,
    atomically, with `tags` (title, artist, ...: those the container carries). 16-bit outputs get TPDF
    dither (seeded: the same file every time) where a sample is not on the 16-bit grid already. Returns
    the number of samples clipped (none unless `gain` was too high)."""
    dither = fmt.subtype == "PCM_16"
    with AudioWriter(path, fmt.rate, channels, fmt.container, fmt.subtype, tags) as writer:
        for index, chunk in enumerate(source):
            chunk = chunk if gain == 1.0 else chunk * np.float32(gain)
            if dither:  # samples already on the 16-bit grid (copied from a 16-bit input) are kept as they are
                rng = np.random.default_rng([seed, index])
                tpdf = rng.random(chunk.shape, np.float32) - rng.random(chunk.shape, np.float32)
                exact = chunk * np.float32(32768)
                scaled = np.where(exact == np.round(exact), exact, np.floor(exact + tpdf + np.float32(0.5)))
                writer.clipped += int(((scaled > 32767) | (scaled < -32768)).sum())
                chunk = np.clip(scaled, -32768, 32767).astype(np.int16)
            writer.write(chunk)
    return writer.clipped
