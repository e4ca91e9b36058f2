"""The analysis pass: one read through the audio (an array, or a file piece by piece) that checks it
(empty, non-finite, clipped) and detects the cutoff and the dropouts with `a2sb.detect`, in bounded
memory for long audio; `plan_file` and `plan_array` turn what it found into a `Plan`."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from . import detect
from .audio import SAMPLE_RATE, audio_info, read_chunks, resample
from .errors import A2SBError
from .plan import Plan, check_cutoff, check_gaps, damage_findings, gap_warnings, parse_cutoff, parse_gaps

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
    clipped: int = 0
    nonfinite: int = 0
    cutoff: float | None = None
    cutoff_note: str = ""  # the detected band limit in words (detect.CutoffEstimate.note)
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
        hot = magnitude >= CLIP_LEVEL
        # clipping = at least three samples in a row at full scale (single peaks at 0 dBFS are fine)
        result.clipped += int((hot[:, 1:-1] & hot[:, :-2] & hot[:, 2:]).sum()) + int((magnitude > 1.0).sum())
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
    result.cutoff, result.cutoff_note = found.cutoff, found.note


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


def plan_file(path: str, cutoff="auto", gaps="auto", downmix: bool = False) -> Plan:
    """Read and analyse a file (once, piece by piece) and plan its restoration."""
    cutoff, gaps = parse_cutoff(cutoff), parse_gaps(gaps)
    info = check_input(path, downmix)
    downmix = downmix and info.channels > 2
    if isinstance(cutoff, float):  # a wrong option is refused before the file is read through
        check_cutoff(cutoff, info.sample_rate, path)
    if isinstance(gaps, list):
        check_gaps(gaps, info.duration, path)
    channels = 1 if downmix else info.channels
    chunks = read_chunks(path, int(DETECT_CHUNK_SECONDS * info.sample_rate), downmix)
    analysis = analyse(chunks, channels, info.sample_rate, info.frames, want_cutoff=cutoff == "auto",
                       want_gaps=gaps == "auto", name=path)
    plan = _plan(analysis, cutoff, gaps, path)
    if downmix:
        plan = dataclasses.replace(plan, warnings=(f"{path}: {info.channels} channels mixed down to mono",
                                                   *plan.warnings))
    return plan


def plan_array(audio: np.ndarray, rate: int, cutoff="auto", gaps="auto") -> Plan:
    """Analyse a (channels, samples) array and plan its restoration."""
    cutoff, gaps = parse_cutoff(cutoff), parse_gaps(gaps)
    chunks = chunks_of_array(audio, int(DETECT_CHUNK_SECONDS * rate))
    analysis = analyse(chunks, audio.shape[0], rate, audio.shape[1], want_cutoff=cutoff == "auto",
                       want_gaps=gaps == "auto")
    return _plan(analysis, cutoff, gaps, None)


def _plan(analysis: Analysis, cutoff, gaps, path: str | None) -> Plan:
    name = "the audio" if path is None else path
    cutoff_auto, gaps_auto, note = cutoff == "auto", gaps == "auto", ""
    if cutoff_auto:
        cutoff, note = analysis.cutoff, analysis.cutoff_note
        if cutoff is not None and cutoff >= SAMPLE_RATE / 2:
            cutoff = None
    cutoff = check_cutoff(cutoff, analysis.sample_rate, name)
    gaps = check_gaps(analysis.gaps if gaps == "auto" else gaps or [], analysis.duration, name)
    warnings = []
    if analysis.nonfinite:
        warnings.append(f"{name}: {analysis.nonfinite} NaN or infinite samples are taken as silence")
    if analysis.clipped:
        warnings.append(f"{name} is clipped ({analysis.clipped} samples at or beyond full scale); clipping is "
                        "not repaired")
    warnings += gap_warnings(gaps)
    return Plan(path, analysis.sample_rate, analysis.channels, analysis.frames, cutoff, gaps,
                tuple(damage_findings(cutoff, gaps, cutoff_auto, gaps_auto, note)), tuple(warnings),
                analysis.peak)
