"""The analysis pass: one read through the audio (an array, or a file piece by piece) that checks it
(empty, non-finite, clipped) and detects the cutoff and the dropouts with `a2sb.detect`, in bounded
memory for long audio; then, for a lossy decode, the share of codec holes (`a2sb.holes`) on evenly
spread blocks. `plan_file` and `plan_array` turn what it found into a `Plan`.

A lossy decode is a file in a lossy container (MP3, Ogg Vorbis, Opus), or audio whose band limit is a
brick wall and whose holes are at least HOLE_GATE_SHARE of the band below it (a WAV or FLAC made from an
MP3). Its holes are regenerated when they are at least that share (docs/method.md §Masks)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from . import detect
from .audio import SAMPLE_RATE, ArrayWave, FileWave, audio_info, read_chunks, resample
from .errors import A2SBError
from .holes import HOLE_GATE_SHARE
from .plan import (
    LOSSLESS_COPY,
    Plan,
    check_cutoff,
    check_gaps,
    damage_findings,
    gap_warnings,
    parse_cutoff,
    parse_gaps,
    parse_holes,
)

CLIP_LEVEL = 0.999
WHOLE_DETECT_SECONDS = 180.0  # longer audio is analysed in chunks / from a summary
DETECT_CHUNK_SECONDS = 60.0
DETECT_OVERLAP_SECONDS = 10.0
CUTOFF_SUMMARY_SECONDS = 120.0
SUMMARY_FADE_SECONDS = 0.01  # crossfade between the excerpts the cutoff of long audio is detected on


@dataclass
class Analysis:
    """What a pass over the audio found: sanity figures and (when asked) the detected cutoff and gaps."""

    channels: int
    sample_rate: int
    frames: int
    peak: float = 0.0
    clipped: int = 0  # samples in runs of three or more at full scale (hard clipping)
    over: int = 0  # samples beyond full scale (a float file, or a lossy decoder's overshoot)
    nonfinite: int = 0
    cutoff: float | None = None
    cutoff_note: str = ""  # the detected band limit in words (detect.CutoffEstimate.note)
    cutoff_kind: str = ""  # detect.CutoffEstimate.kind ("wall", "lowpass", ...); "" when not detected
    codec: str = ""  # the lossy codec of a file's container in words ("MP3, 128 kbit/s"), "" for none
    hole_share: float | None = None  # the share of codec holes below the band limit (None: not measured)
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def chunks_of_array(audio: np.ndarray, size: int):
    for start in range(0, audio.shape[1], size):
        yield audio[:, start:start + size]


def analyse(chunks, channels: int, rate: int, frames: int, *, want_cutoff: bool, want_gaps: bool,
            name: str = "the audio") -> Analysis:
    """One pass over (channels, n) chunks of DETECT_CHUNK_SECONDS: non-finite samples, clipping, and the
    detections. Up to WHOLE_DETECT_SECONDS the detectors see the whole audio; beyond, gaps are detected
    on overlapping chunks and the cutoff on a summary of evenly spread excerpts joined by crossfades, so
    memory stays bounded."""
    result = Analysis(channels, rate, frames)
    whole = frames <= WHOLE_DETECT_SECONDS * rate
    detecting = want_cutoff or want_gaps
    kept, excerpts, gaps = [], [], []
    overlap = int(DETECT_OVERLAP_SECONDS * rate)
    n_chunks = max(1, math.ceil(frames / (DETECT_CHUNK_SECONDS * rate)))
    excerpt = max(int(rate), int(CUTOFF_SUMMARY_SECONDS * rate / n_chunks))
    carry, seen = np.zeros((channels, 0), np.float32), 0
    for chunk in chunks:
        finite = np.isfinite(chunk)
        if not finite.all():
            result.nonfinite += int((~finite).sum())
            chunk = np.where(finite, chunk, 0.0).astype(np.float32)
        magnitude = np.abs(chunk)
        if magnitude.size:
            result.peak = max(result.peak, float(magnitude.max()))
        beyond = magnitude > 1.0
        hot = (magnitude >= CLIP_LEVEL) & ~beyond
        # clipping = at least three samples in a row at full scale (single peaks at 0 dBFS are fine);
        # samples beyond it are no clipping yet (a float file, a lossy decode of a loud master)
        result.clipped += int((hot[:, 1:-1] & hot[:, :-2] & hot[:, 2:]).sum())
        result.over += int(beyond.sum())
        seen += chunk.shape[1]
        if not detecting:
            continue
        if whole:
            kept.append(chunk)
            continue
        if want_gaps:
            segment = np.concatenate([carry, chunk], axis=1)
            start = seen - segment.shape[1]
            gaps += [(s + start / rate, e + start / rate) for s, e in detect.detect_gaps(segment, rate)]
            carry = segment[:, -overlap:]
        if want_cutoff and chunk.shape[1] >= rate:
            middle = max(0, chunk.shape[1] // 2 - excerpt // 2)
            excerpts.append(chunk[:, middle:middle + excerpt].copy())
    if seen == 0:
        raise A2SBError(f"{name} is empty (no samples)")
    if result.nonfinite == seen * channels:
        raise A2SBError(f"{name} contains no finite samples (all NaN or infinite)")
    if seen < frames:
        raise A2SBError(f"{name} is truncated: its header promises {frames} samples, only {seen} could be decoded")
    result.frames = seen
    if detecting:
        if whole:
            audio = np.concatenate(kept, axis=1)
            if want_cutoff:
                _detect_cutoff(audio, rate, result)
            if want_gaps:
                gaps = detect.detect_gaps(audio, rate)
        elif want_cutoff:
            _detect_cutoff(_join_with_crossfades(excerpts, rate), rate, result)
        result.gaps = _merge_intervals(gaps)
    return result


def _join_with_crossfades(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    """Excerpts joined by short raised-cosine crossfades, so the joins add no broadband clicks that
    would hide a cutoff."""
    fade = int(SUMMARY_FADE_SECONDS * rate)
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(fade) + 0.5) / fade)).astype(np.float32)
    out = pieces[0]
    for piece in pieces[1:]:
        if out.shape[1] < fade or piece.shape[1] < fade:
            out = np.concatenate([out, piece], axis=1)
            continue
        mixed = out[:, -fade:] * ramp[::-1] + piece[:, :fade] * ramp
        out = np.concatenate([out[:, :-fade], mixed, piece[:, fade:]], axis=1)
    return out


def _merge_intervals(intervals):
    merged: list[tuple[float, float]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((float(start), float(end)))
    return merged


def _detect_cutoff(audio: np.ndarray, rate: int, result: Analysis) -> None:
    """The cutoff is looked for in what the model restores: audio above 44.1 kHz is analysed at 44.1 kHz.
    At its own rate the empty band above 22.05 kHz of a 48 kHz copy of 44.1 kHz music is the edge the
    detector finds, and it would call a file lowpassed at 4 kHz full band."""
    if rate > SAMPLE_RATE:
        audio, rate = resample(audio, rate, SAMPLE_RATE), SAMPLE_RATE
    found = detect.estimate_cutoff(audio, rate)
    result.cutoff, result.cutoff_note, result.cutoff_kind = found.cutoff, found.note, found.kind


CODEC_NAMES = {"MPEG_LAYER_III": "MP3", "VORBIS": "Ogg Vorbis", "OPUS": "Opus", "MPEG_LAYER_I": "MPEG Layer I",
               "MPEG_LAYER_II": "MPEG Layer II"}


def codec_of(path: str, info=None) -> str:
    """The lossy codec of a file in words, with its mean bitrate (file size / duration) where that says
    something: "MP3, 128 kbit/s", "Ogg Vorbis, 96 kbit/s"; "" for a lossless file."""
    import os

    from .output import is_lossy

    info = audio_info(path) if info is None else info
    if not is_lossy(info):
        return ""
    name = CODEC_NAMES.get(info.subtype, "MP3" if info.format == "MP3" else info.format)
    try:
        kbits = os.path.getsize(path) * 8 / info.duration / 1000 if info.duration > 0 else 0.0
    except OSError:
        kbits = 0.0
    return f"{name}, {kbits:.0f} kbit/s" if kbits >= 1 else name


def measure_holes(wave, analysis: Analysis, top: float | None) -> None:
    """The share of codec holes below `top` Hz (None: the whole band) of `wave` (a 44.1 kHz reader with
    `read(start, stop)` and `length`), on up to 16 evenly spread blocks of 256 frames."""
    from .masks import MIN_WORK_SAMPLES, HoleCells, PictureMask
    from .picture import WaveformPicture

    length = max(wave.length, MIN_WORK_SAMPLES)

    def read(start: int, stop: int) -> np.ndarray:  # zero beyond the end of short input
        data = wave.read(start, min(stop, wave.length))
        return np.pad(data, ((0, 0), (0, stop - start - data.shape[1]))) if data.shape[1] < stop - start else data

    frames = PictureMask(length, None, []).frames
    analysis.hole_share = HoleCells(WaveformPicture(read, length).spectrum, frames, top).share()


def _hole_top(analysis: Analysis, cutoff=None) -> float | None:
    """The band limit below which holes are looked for: the detected cutoff, or a given `cutoff` (Hz)
    below it (None: the whole band)."""
    tops = [f for f in (analysis.cutoff, cutoff) if isinstance(f, float) and f < SAMPLE_RATE / 2]
    return min(tops) if tops else None


def _wants_holes(analysis: Analysis) -> bool:
    """Whether the hole share is worth measuring: a lossy container, or a detected brick wall."""
    return bool(analysis.codec) or analysis.cutoff_kind == "wall"


def check_input(path: str, downmix: bool = False):
    """Header information of an input file, refusing (before any work) missing, unreadable, truncated,
    damaged and empty files and more than two channels without `downmix`."""
    info = audio_info(path, verify=True)
    if info.frames <= 0:
        raise A2SBError(f"{path} is empty (no samples)")
    if info.channels > 2 and not downmix:
        raise A2SBError(f"{path} has {info.channels} channels; only mono and stereo are restored "
                        "(use --downmix / downmix=True to mix down to mono)")
    return info


def plan_file(path: str, cutoff="auto", gaps="auto", downmix: bool = False, holes="auto") -> Plan:
    """Read and analyse a file (once, piece by piece) and plan its restoration."""
    cutoff, gaps, holes = parse_cutoff(cutoff), parse_gaps(gaps), parse_holes(holes)
    info = check_input(path, downmix)
    downmix = downmix and info.channels > 2
    if isinstance(cutoff, float):  # a wrong option is refused before the file is read through
        check_cutoff(cutoff, info.sample_rate, path)
    if isinstance(gaps, list):
        check_gaps(gaps, info.duration, path)
    channels = 1 if downmix else info.channels
    chunks = read_chunks(path, int(DETECT_CHUNK_SECONDS * info.sample_rate), downmix)
    analysis = analyse(chunks, channels, info.sample_rate, info.frames, want_cutoff=cutoff == "auto" or bool(holes),
                       want_gaps=gaps == "auto", name=path)
    analysis.codec = codec_of(path, info)
    if holes and (holes is True or _wants_holes(analysis)):
        wave = FileWave(path, SAMPLE_RATE, downmix)
        try:
            measure_holes(wave, analysis, _hole_top(analysis, cutoff))
        finally:
            wave.close()
    plan = _plan(analysis, cutoff, gaps, path, holes)
    if downmix:
        plan = dataclasses.replace(plan, warnings=(f"{path}: {info.channels} channels mixed down to mono",
                                                   *plan.warnings))
    return plan


def plan_array(audio: np.ndarray, rate: int, cutoff="auto", gaps="auto", holes="auto") -> Plan:
    """Analyse a (channels, samples) array and plan its restoration (an array is a lossy decode when
    its band limit is a brick wall with holes below it)."""
    cutoff, gaps, holes = parse_cutoff(cutoff), parse_gaps(gaps), parse_holes(holes)
    chunks = chunks_of_array(audio, int(DETECT_CHUNK_SECONDS * rate))
    analysis = analyse(chunks, audio.shape[0], rate, audio.shape[1], want_cutoff=cutoff == "auto" or bool(holes),
                       want_gaps=gaps == "auto")
    if holes and (holes is True or _wants_holes(analysis)):
        audio = np.nan_to_num(np.asarray(audio, np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        measure_holes(ArrayWave(resample(audio, rate, SAMPLE_RATE)), analysis, _hole_top(analysis, cutoff))
    return _plan(analysis, cutoff, gaps, None, holes)


def _plan(analysis: Analysis, cutoff, gaps, path: str | None, holes="auto") -> Plan:
    name = "the audio" if path is None else path
    cutoff_auto, gaps_auto, note = cutoff == "auto", gaps == "auto", ""
    if cutoff_auto:
        cutoff, note = analysis.cutoff, analysis.cutoff_note
        if analysis.codec:  # the codec is named: no guess at it from the cutoff
            note = note.replace(" (MP3-like)", "")
        if cutoff is not None and cutoff >= SAMPLE_RATE / 2:
            cutoff = None
    cutoff = check_cutoff(cutoff, analysis.sample_rate, name)
    gaps = check_gaps(analysis.gaps if gaps == "auto" else gaps or [], analysis.duration, name)
    warnings = []
    if analysis.nonfinite:
        warnings.append(f"{name}: {analysis.nonfinite} NaN or infinite samples are taken as silence")
    if analysis.over:
        warnings.append(f"{name} has {analysis.over} samples beyond full scale (a float file, or a lossy decoder's "
                        "overshoot on a loud master): kept as they are; the output is lowered if it would clip")
    if analysis.clipped:
        warnings.append(f"{name} is clipped ({analysis.clipped} samples in runs at full scale); clipping is "
                        "not repaired")
    warnings += gap_warnings(gaps)
    # codec holes: a lossy container, or a brick wall with holes (a lossless copy of a lossy decode)
    share = analysis.hole_share
    lossy = bool(analysis.codec) or (analysis.cutoff_kind == "wall" and share is not None and share >= HOLE_GATE_SHARE)
    codec = analysis.codec or (LOSSLESS_COPY if lossy else "")
    repair = holes is True or (holes == "auto" and lossy and share is not None and share >= HOLE_GATE_SHARE)
    hole_top = _hole_top(analysis)
    findings = damage_findings(cutoff, gaps, cutoff_auto, gaps_auto, note, codec=codec, holes=repair,
                               hole_share=share, holes_auto=holes == "auto", hole_top=hole_top)
    return Plan(path, analysis.sample_rate, analysis.channels, analysis.frames, cutoff, gaps, tuple(findings),
                tuple(warnings), analysis.peak, holes=repair, hole_share=share, codec=codec, hole_top_hz=hole_top)
