"""Restoring music files: `restore_audio` (arrays), `restore` (files) and the `a2sb restore` / `a2sb info`
commands.

What is restored
- Bandwidth extension (`cutoff`): picture rows at or above row_of_frequency(cutoff) are generated;
  the band below comes from the input's own picture (so it passes through unchanged).
- Inpainting (`gaps`, seconds): every frame whose STFT window reaches into a gap is generated (the
  gap's frames widened by two frames on each side, plus one more at the end when the gap does not end
  on a frame boundary: a frame's window spans two hops each way, so truly missing audio corrupts its
  neighbours). When only gaps are restored, the output is assembled in the waveform domain: input
  samples outside the gaps, model output inside, with short raised-cosine crossfades placed just
  outside each gap; only the windows touching a gap are run (see `a2sb.streaming`).
- Both at once: the union of the two masks; the whole output is the model's.

Audio is resampled to 44.1 kHz; channels are restored independently but batched together; the output
has the input's length and channel count, at 44.1 kHz or (`keep_rate`) at the input's rate when that
is higher. Everything runs through the bounded-memory wavefront sampler of `a2sb.streaming`, reading
the input and writing the output piece by piece, so hour-long files need no more memory than short
ones (besides the arrays themselves when the Python API is given arrays).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .audio import SAMPLE_RATE, audio_info, read_audio, resample
from .errors import A2SBError
from .levels import (
    BAND_LEVEL_DB,
    band_level_offsets_db,
    long_gap_warnings,
    make_fill_safe,
    match_band_level,
    match_context_level,
)
from .model import BAND_LEVELS
from .prior import PictureEstimate, Prior
from .prior import fill as fill_prior
from .representation import (
    HOP,
    N_FFT,
    N_ROWS,
    frame_of_time,
    representation_to_spec,
    row_of_frequency,
    spec_to_representation,
)
from .sampler import PositionalNoise, time_grid
from .streaming import (
    ArraySink,
    ArrayWave,
    FileSink,
    FileWave,
    OverlapAdd,
    StreamResampler,
    WaveformPicture,
    count_windows,
    stream_sample,
)

FADE_SECONDS = 0.01  # crossfade between input and model output at gap edges
GAP_WIDEN_FRAMES = 2
MIN_WORK_SAMPLES = 2 * N_FFT  # shorter input is zero-padded for the transforms, then trimmed
CLIP_LEVEL = 0.999
WHOLE_DETECT_SECONDS = 180.0  # longer audio is analysed in chunks / from a summary
DETECT_CHUNK_SECONDS = 60.0
DETECT_OVERLAP_SECONDS = 10.0
CUTOFF_SUMMARY_SECONDS = 120.0
FILL_NOISE_STEP = -1  # PositionalNoise step index of the noise filling the masked region (F13)
WRITE_SUFFIXES = (".wav", ".flac")
# stereo: the channels' noise shared or one each (published); or mid and side restored (noise each)
STEREO_MODES = ("shared", "independent", "midside")


class A2SBWarning(UserWarning):
    """Something the user should know that does not stop the restoration (clipping, nothing to do)."""


def _warn(message: str) -> None:
    warnings.warn(message, A2SBWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------- options

def parse_cutoff(value) -> float | str | None:
    """None/"off"/"none" -> None, "auto" -> "auto", else a positive frequency in Hz."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("off", "none", "")):
        return None
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        hz = float(value)
    except (TypeError, ValueError):
        raise A2SBError(f"cutoff must be a frequency in Hz, 'auto' or 'off', got '{value}'") from None
    if not math.isfinite(hz) or hz <= 0:
        raise A2SBError(f"cutoff must be a positive frequency in Hz, got {value}")
    return hz


def parse_gaps(value) -> list[tuple[float, float]] | str | None:
    """None/"off" -> None, "auto" -> "auto", "12.0-12.4,30.1-31.0" or [(start, end), ...] -> a list."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("off", "none", ""):
            return None
        if text == "auto":
            return "auto"
        pairs = []
        for part in text.split(","):
            start, sep, end = part.strip().partition("-")
            if not sep:
                raise A2SBError(f"gap '{part.strip()}' must be START-END in seconds (e.g. 12.0-12.4)")
            pairs.append((start, end))
    else:
        pairs = list(value)
    gaps = []
    for pair in pairs:
        try:
            start, end = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise A2SBError(f"gap {pair!r} must be a pair of times in seconds") from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0 or end <= start:
            raise A2SBError(f"gap {start:g}-{end:g} s is invalid: need 0 <= start < end")
        gaps.append((start, end))
    return gaps


def check_gaps(gaps: list[tuple[float, float]], duration: float, name: str = "the audio") -> list[tuple[float, float]]:
    """Sorted gaps, with clear errors for gaps outside the audio or overlapping each other."""
    gaps = sorted(gaps)
    for start, end in gaps:
        if end > duration + 1e-6:
            raise A2SBError(f"gap {start:g}-{end:g} s lies outside {name} ({duration:.3f} s long)")
    for (s0, e0), (s1, e1) in zip(gaps, gaps[1:]):
        if s1 < e0:
            raise A2SBError(f"gaps {s0:g}-{e0:g} s and {s1:g}-{e1:g} s overlap")
    merged: list[tuple[float, float]] = []
    for start, end in gaps:  # touching gaps are one gap
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, min(end, duration)))
    return merged


def check_cutoff(cutoff: float, input_rate: int, name: str = "the audio") -> float:
    if cutoff >= SAMPLE_RATE / 2:
        raise A2SBError(f"cutoff {cutoff:g} Hz is at or above the Nyquist frequency ({SAMPLE_RATE / 2:g} Hz) "
                        "of the 44.1 kHz representation: nothing to extend")
    if cutoff > input_rate / 2:
        raise A2SBError(f"cutoff {cutoff:g} Hz is above the Nyquist frequency of {name} "
                        f"({input_rate / 2:g} Hz at {input_rate} Hz)")
    return float(cutoff)


def resolve_device(device) -> torch.device:
    if device is None:
        return torch.device("cpu")
    name = str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise A2SBError(f"unknown device '{name}' (use cpu, cuda, mps or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise A2SBError("device 'cuda' requested but no CUDA GPU is available")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise A2SBError("device 'mps' requested but Apple's MPS backend is not available")
    return dev


def resolve_model(model="default", device=None, t_cutoffs=None, config=None):
    """An A2SBModel from a model object, a bundled name, a model folder or .safetensors file, released .ckpt
    file(s), or "preset:NAME" (random weights: for tests and speed measurements only)."""
    from .model import A2SBModel, load_model

    if isinstance(model, A2SBModel):
        if device is not None and resolve_device(device) != model.device:
            return model.to(resolve_device(device))
        return model
    dev = resolve_device(device)
    if isinstance(model, (list, tuple)):
        return load_model([str(m) for m in model], t_cutoffs=t_cutoffs, config=config, device=dev)
    name = str(model)
    if name.startswith("preset:"):
        from .network import PRESETS, preset

        if name[7:] not in PRESETS:
            raise A2SBError(f"unknown preset '{name[7:]}' (choose from {', '.join(PRESETS)})")
        _warn(f"using the '{name[7:]}' architecture with RANDOM weights: the output is not a restoration")
        torch.manual_seed(0)
        return A2SBModel(preset(name[7:]), t_cutoffs=[0.5] if t_cutoffs is None else t_cutoffs).to(dev).eval()
    if name.endswith(".ckpt"):
        return load_model([name], t_cutoffs=t_cutoffs, config=config, device=dev)
    if name.endswith(".safetensors"):
        name = str(Path(name).parent)  # our model folders hold model.safetensors + config.json
    return load_model(name, config=config, device=dev)


def auto_batch_size(model, window: int, device: torch.device) -> int:
    """Windows per network call that fit in half the free memory (a rough activation estimate)."""
    cfg = model.config
    levels = len(cfg.hidden_channels)
    per_window = 0
    for level, channels in enumerate(cfg.hidden_channels):
        pixels = (N_ROWS >> level) * (window >> level)
        blocks = cfg.res_blocks(min(level, levels - 2)) if levels > 1 else 2
        per_window += 4 * channels * pixels * (blocks + 4)
        if level in cfg.attention_levels or level == levels - 1:
            per_window += 4 * cfg.n_attn_heads * pixels * pixels
    if device.type == "cuda":
        free = torch.cuda.mem_get_info(device)[0]
        limit = 64
    else:
        free = _available_ram()
        limit = 4  # more windows per call do not make a CPU faster, only use more memory
    return int(max(1, min(limit, free // 2 // max(per_window, 1))))


def _available_ram() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


# ------------------------------------------------------------------------------------------- analysis

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
    cutoff_unsure: str = ""  # why the detected cutoff (None then) could not be placed reliably
    cutoff_note: str = ""  # the detected band limit in words (detect.CutoffEstimate.note)
    gaps: list[tuple[float, float]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _chunks_of_array(audio: np.ndarray, size: int):
    for start in range(0, audio.shape[1], size):
        yield audio[:, start:start + size]


def _chunks_of_file(path: str, size: int, downmix: bool):
    try:
        with sf.SoundFile(path) as f:
            while True:
                data = f.read(frames=size, dtype="float32", always_2d=True)
                if not len(data):
                    break
                data = data.T
                yield data.mean(axis=0, keepdims=True) if downmix else data
    except A2SBError:
        raise
    except Exception as err:
        raise A2SBError(f"cannot decode audio file {path}: {str(err).strip().splitlines()[-1]}") from None


def analyse(chunks, channels: int, rate: int, frames: int, *, want_cutoff: bool, want_gaps: bool,
            name: str = "the audio") -> Analysis:
    """One pass over (channels, n) chunks of DETECT_CHUNK_SECONDS: non-finite samples, clipping, and the
    detections. Up to WHOLE_DETECT_SECONDS the detectors see the whole audio; beyond, gaps are detected
    on overlapping chunks and the cutoff on a summary of evenly spread excerpts joined by crossfades, so
    memory stays bounded."""
    result = Analysis(channels, rate, frames)
    whole = frames <= WHOLE_DETECT_SECONDS * rate
    detect = _detector() if (want_cutoff or want_gaps) else None
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
        if detect is None:
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
    if detect is not None:
        if whole:
            audio = np.concatenate(kept, axis=1)
            if want_cutoff:
                _detect_cutoff(detect, audio, rate, result)
            if want_gaps:
                gaps = detect.detect_gaps(audio, rate)
        elif want_cutoff:
            _detect_cutoff(detect, _join_with_crossfades(excerpts, rate), rate, result)
        result.gaps = _merge_intervals(gaps)
    return result


def _detector():
    try:
        from . import detect
    except ImportError as err:
        raise A2SBError(f"automatic detection is unavailable ({err}); give --cutoff and --gaps explicitly") from None
    return detect


def _join_with_crossfades(pieces: list[np.ndarray], rate: int) -> np.ndarray:
    """Excerpts joined by short raised-cosine crossfades, so the joins add no broadband clicks that
    would hide a cutoff."""
    fade = int(FADE_SECONDS * rate)
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


def _detect_cutoff(detect, audio: np.ndarray, rate: int, result: Analysis) -> None:
    estimate = getattr(detect, "estimate_cutoff", None)
    if estimate is None:
        result.cutoff = detect.detect_cutoff(audio, rate)
        return
    found = estimate(audio, rate)
    result.cutoff, result.cutoff_unsure = found.cutoff, f"{found.note} ({found.reason})" if found.unsure else ""
    result.cutoff_note = found.note


def _report(analysis: Analysis, name: str) -> None:
    if analysis.cutoff_unsure:
        _warn(f"{name}: {analysis.cutoff_unsure}")
    if analysis.nonfinite:
        _warn(f"{name}: {analysis.nonfinite} NaN/infinite samples replaced by silence")
    if analysis.clipped:
        _warn(f"{name} is clipped ({analysis.clipped} samples at or beyond full scale, peak "
              f"{analysis.peak:.3f}); clipping is not repaired")


# ------------------------------------------------------------------------------------------------ plan

@dataclass
class _Plan:
    """What to generate, in 44.1 kHz frames of the (extended) picture."""

    length: int  # input samples at 44.1 kHz
    cutoff: float | None
    gaps: list[tuple[float, float]]

    def __post_init__(self):
        self.work_length = max(self.length, MIN_WORK_SAMPLES)
        self.frames = 1 + -(-self.work_length // HOP)  # of the waveform extended to whole hops
        self.first_row = None if self.cutoff is None else row_of_frequency(self.cutoff)
        self.gap_frames = np.zeros(self.frames, dtype=bool)
        for start, end in self.gaps:
            self.gap_frames[_gap_frames(start, end, self.frames)] = True

    @property
    def mode(self) -> str:
        if self.cutoff is not None:
            return "bwe"
        return "gaps" if self.gaps else "none"

    def mask(self, a: int, b: int) -> torch.Tensor:
        """(1, 1, 1024, b − a) mask of frames [a, b): 1 = generate."""
        rows = torch.zeros(N_ROWS, 1)
        if self.first_row is not None:
            rows[self.first_row:] = 1.0
        cols = torch.from_numpy(self.gap_frames[a:b].astype(np.float32))[None, :]
        return torch.maximum(rows, cols)[None, None]


def _gap_frames(start: float, end: float, frames: int) -> slice:
    """Frames to generate for a gap [start, end) s: frame_of_time widened by two frames each side (the
    published timestamp convention), extended to every frame whose window has non-zero weight on a
    gap sample (its window spans samples 512·j ± 1023)."""
    first = frame_of_time(start) - GAP_WIDEN_FRAMES
    stop = frame_of_time(end) + GAP_WIDEN_FRAMES
    s, e = int(round(start * SAMPLE_RATE)), int(round(end * SAMPLE_RATE))
    first = min(first, -(-(s - (N_FFT // 2 - 1)) // HOP))
    stop = max(stop, (e - 1 + N_FFT // 2 - 1) // HOP + 1)
    return slice(max(first, 0), min(stop, frames))


# ---------------------------------------------------------------------------------------------- engine

@dataclass
class _Options:
    steps: int
    sampler: str
    seed: int
    batch_size: int
    window: int
    hop: int
    progress: bool
    name: str = ""
    fast_inpainting: bool = True
    level_match: bool = True
    stereo: str = "shared"
    band_level: str = "off"


def _run(plan: _Plan, wave, native, out_rate: int, out_length: int, write, model, opts: _Options) -> None:
    """Restore `wave` (44.1 kHz reader) according to `plan`, writing (channels, n) chunks at `out_rate`
    (`out_length` samples in all) to `write`. `native` reads the input at `out_rate` (used where input
    samples are copied through)."""
    channels = wave.channels
    if plan.mode == "none":
        for start in range(0, out_length, 1 << 18):
            write(native.read(start, min(out_length, start + (1 << 18))))
        return

    midside = opts.stereo == "midside" and channels == 2

    def read_work(start: int, stop: int) -> np.ndarray:  # zero beyond the end of short input
        data = wave.read(start, min(stop, wave.length))
        if data.shape[1] < stop - start:
            data = np.pad(data, ((0, 0), (0, stop - start - data.shape[1])))
        return _mid_side(data) if midside else data  # the model restores mid and side

    picture = WaveformPicture(read_work, plan.work_length)
    fill = PositionalNoise(opts.seed, N_ROWS, 3)
    # "shared": every channel gets the same noise (in x1 and in the SDE), so what the model makes up is
    # as alike between channels as their inputs are; "independent": the published per-item noise, also
    # for mid and side, which are nearly uncorrelated in music
    items = [0] * channels if opts.stereo == "shared" else list(range(channels))
    prior = getattr(model, "prior", Prior())
    estimate = PictureEstimate(picture.spectrum, plan.frames, plan.cutoff, plan.gap_frames, prior) \
        if prior.informative else None

    # the level reference of bandwidth extension: the band replication estimate (the dsp prior's own, or
    # one made for this purpose for noise-prior models such as the published checkpoints)
    reference = None
    if plan.mode == "bwe" and opts.band_level != "off":
        reference = estimate if estimate is not None else PictureEstimate(
            picture.spectrum, plan.frames, plan.cutoff, plan.gap_frames, Prior("dsp", stereo_mix=0.0))
    # the dsp prior's estimate of a block, kept until the block is finished when it is also the level
    # reference (one estimate per block, not two)
    kept: dict[tuple[int, int], torch.Tensor] | None = {} if estimate is not None and reference is estimate else None

    def estimate_of(a: int, b: int, spec: torch.Tensor) -> torch.Tensor:
        picture_estimate = estimate(a, b, spec)
        if kept is not None:
            kept[(a, b)] = picture_estimate
        return picture_estimate

    def reference_of(a: int, b: int) -> torch.Tensor:
        found = kept.pop((a, b), None) if kept is not None else None
        return reference(a, b) if found is None else found

    def source(a: int, b: int):
        spec = picture.spectrum(a, b)
        x0 = spec_to_representation(spec)
        mask = plan.mask(a, b)
        if bool(mask.any()):  # the region to generate as the model was trained: noise, or estimate + noise
            noise = fill.frames(FILL_NOISE_STEP, 0, items, a, b)
            x0 = fill_prior(x0, mask, noise, prior, estimate_of(a, b, spec) if estimate is not None else None)
        return x0, mask

    # gaps only: run just the windows touching a gap (exactly the same result, see a2sb.streaming)
    masked = plan.gap_frames if plan.mode == "gaps" and opts.fast_inpainting else None
    n_eval = opts.steps - 1
    total = count_windows(plan.frames, opts.window, opts.hop, masked) * channels * n_eval
    bar = _progress_bar(total, opts) if opts.progress else None

    @torch.inference_mode()
    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.predict_noise(x, t)

    blocks = stream_sample(denoise, source, plan.frames, channels, time_grid(opts.steps), schedule=model.schedule,
                           sde=opts.sampler == "sde", window=opts.window, hop=opts.hop, seed=opts.seed,
                           batch_size=opts.batch_size, items=items, masked_frames=masked, device=model.device,
                           progress=bar.update if bar is not None else None)
    try:
        with torch.inference_mode():
            if plan.mode == "bwe":
                if reference is not None:
                    bounds = BAND_LEVEL_DB if opts.band_level == "match" else (BAND_LEVEL_DB[0], 0.0)
                    table = getattr(model, "band_level_offsets", None)
                    offsets = band_level_offsets_db(table, plan.cutoff) if table else None
                    blocks = (match_band_level(a, b, x0, reference_of(a, b), plan.first_row, bounds, offsets)
                              for a, b, x0 in blocks)
                _write_whole(blocks, plan, channels, out_rate, out_length,
                             (lambda chunk: write(_mid_side(chunk, inverse=True))) if midside else write)
            else:
                _write_spliced(blocks, plan, picture, native, channels, out_rate, out_length, write,
                               opts.level_match, midside)
    finally:
        if bar is not None:
            bar.close()


def _mid_side(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    """(left, right) -> (mid, side) = ((l + r) / 2, (l − r) / 2), or back with `inverse`."""
    a, b = x[0], x[1]
    return np.stack([a + b, a - b]) if inverse else np.stack([(a + b) / 2, (a - b) / 2])


def _progress_bar(total: int, opts: _Options):
    from tqdm import tqdm

    return tqdm(total=total, unit="window", desc=opts.name or "restoring", dynamic_ncols=True, leave=False)


def _write_whole(blocks, plan: _Plan, channels: int, out_rate: int, out_length: int, write) -> None:
    """Every output sample is the model's: streaming inverse STFT of the finished blocks."""
    ola = OverlapAdd(channels)
    resampler = StreamResampler(SAMPLE_RATE, out_rate, channels, out_length, write) if out_rate != SAMPLE_RATE \
        else None
    done = 0

    def emit(start: int, samples: torch.Tensor) -> None:
        nonlocal done
        keep = samples[:, :max(0, plan.length - start)].numpy()
        if keep.shape[1]:
            (resampler.write if resampler else write)(keep)
            done = start + keep.shape[1]

    for _, _, x0 in blocks:
        emit(*ola.push(representation_to_spec(x0.float().cpu(), phase_fix=True)))
    emit(*ola.finish())
    if resampler is not None:
        resampler.close()
    assert done == plan.length, (done, plan.length)


def _write_spliced(blocks, plan: _Plan, picture: WaveformPicture, native, channels: int, out_rate: int,
                   out_length: int, write, level_match: bool = True, midside: bool = False) -> None:
    """Gaps only: the input copied through, the model's waveform spliced into each gap with raised-cosine
    crossfades just outside it. Only the frames around the gaps are ever inverse-transformed."""
    regions = _splice_regions(plan, out_rate)
    wanted = {}  # frame -> region indices that need it
    for index, region in enumerate(regions):
        for j in range(region["first_frame"], region["stop_frame"]):
            wanted.setdefault(j, []).append(index)
    columns: list[dict[int, torch.Tensor]] = [{} for _ in regions]
    for a, b, x0 in blocks:
        for j in range(a, b):
            for index in wanted.get(j, ()):
                columns[index][j] = None if x0 is None else x0[..., j - a].float().cpu().clone()
    all_gaps = [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in plan.gaps]
    for region, cols in zip(regions, columns):
        region["wave"] = _region_wave(region, cols, picture, channels, out_rate,
                                      plan.gap_frames if level_match else None, all_gaps)
        if midside:
            region["wave"] = _mid_side(region["wave"], inverse=True)
    chunk = 1 << 18
    for start in range(0, out_length, chunk):
        stop = min(out_length, start + chunk)
        data = native.read(start, stop).astype(np.float32, copy=True)
        for region in regions:
            lo, hi = max(start, region["out_start"]), min(stop, region["out_stop"])
            if lo < hi:
                w = region["weight"][lo - region["out_start"]:hi - region["out_start"]]
                model = region["wave"][:, lo - region["out_start"]:hi - region["out_start"]]
                data[:, lo - start:hi - start] = data[:, lo - start:hi - start] * (1 - w) + model * w
        write(data)


def _splice_regions(plan: _Plan, out_rate: int) -> list[dict]:
    """Merge gaps whose crossfades/margins touch; for each region: the 44.1 kHz samples and frames the
    model waveform is needed for, and the output-rate samples and crossfade weights."""
    margin = 0 if out_rate == SAMPLE_RATE else 2 * N_FFT  # resampling needs context at the ends
    # whole output samples must map to whole 44.1 kHz samples at the region start
    step = SAMPLE_RATE // math.gcd(SAMPLE_RATE, out_rate)
    groups: list[list[tuple[float, float]]] = []
    reach = 2 * FADE_SECONDS + 2 * margin / SAMPLE_RATE
    for gap in plan.gaps:
        if groups and gap[0] - groups[-1][-1][1] <= reach:
            groups[-1].append(gap)
        else:
            groups.append([gap])
    regions = []
    out_total = int(round(plan.length * out_rate / SAMPLE_RATE))
    for group in groups:
        n0 = max(0, int(round(group[0][0] * SAMPLE_RATE)) - int(round(FADE_SECONDS * SAMPLE_RATE)) - margin - 1)
        n0 = n0 // step * step
        n1 = min(plan.length, int(round(group[-1][1] * SAMPLE_RATE)) + int(round(FADE_SECONDS * SAMPLE_RATE))
                 + margin + 1)
        out_start = n0 * out_rate // SAMPLE_RATE
        out_stop = min(out_total, int(round(n1 * out_rate / SAMPLE_RATE)))
        weight = _splice_weight([(int(round(a * out_rate)), int(round(b * out_rate))) for a, b in group],
                                out_start, out_stop, out_rate)
        regions.append(dict(n0=n0, n1=n1, first_frame=max(0, n0 // HOP - 2),
                            stop_frame=min(plan.frames, (n1 - 1) // HOP + 3),
                            out_start=out_start, out_stop=out_stop, weight=weight[None], gaps=group))
    return regions


def _splice_weight(gaps: list[tuple[int, int]], n0: int, n1: int, rate: int) -> np.ndarray:
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


def _region_wave(region: dict, cols: dict, picture: WaveformPicture, channels: int, out_rate: int,
                 gap_frames=None, all_gaps=()) -> np.ndarray:
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
        inside = [(int(round(a * SAMPLE_RATE)), int(round(b * SAMPLE_RATE))) for a, b in region["gaps"]]
        weight = _splice_weight(inside, region["n0"], region["n1"], SAMPLE_RATE)
        wave = match_context_level(wave, region, picture, gap_frames, weight)
        wave = make_fill_safe(wave, region["n0"], weight, inside, all_gaps, picture.read, picture.length)
    if out_rate != SAMPLE_RATE:
        wave = resample(wave, SAMPLE_RATE, out_rate)
    length = region["out_stop"] - region["out_start"]
    return np.pad(wave, ((0, 0), (0, max(0, length - wave.shape[1]))))[:, :length]


# ------------------------------------------------------------------------------------------------- API

def _prepare(analysis: Analysis, cutoff, gaps, name: str):
    """Resolve 'auto' from the analysis and validate against the audio."""
    if cutoff == "auto":
        cutoff = analysis.cutoff
        if cutoff is not None and cutoff >= SAMPLE_RATE / 2:
            cutoff = None
    elif cutoff is not None:
        cutoff = check_cutoff(cutoff, analysis.sample_rate, name)
    if gaps == "auto":
        gaps = analysis.gaps
    gaps = check_gaps(gaps or [], analysis.duration, name)
    for message in long_gap_warnings(gaps):
        _warn(f"{name}: {message}")
    if cutoff is None and not gaps:
        _warn(f"nothing to restore in {name}: full band and no gaps; the output is the input")
    return cutoff, gaps


def _options(model, steps, sampler, seed, batch_size, window, hop, progress, name, fast_inpainting=True,
             level_match=True, stereo="shared", band_level=None) -> _Options:
    sampler = getattr(model, "default_sampler", "sde") if sampler is None else sampler
    if sampler not in ("sde", "ode"):
        raise A2SBError(f"sampler must be 'sde' or 'ode', got '{sampler}'")
    steps = model.default_steps if steps is None else int(steps)
    if steps < 2:
        raise A2SBError(f"steps must be at least 2 (steps − 1 network evaluations), got {steps}")
    window = getattr(model, "default_window", 256) if window is None else window
    hop = (getattr(model, "default_hop", window // 2) if window == getattr(model, "default_window", 256)
           else window // 2) if hop is None else hop
    _check_window(model, window, hop)
    if batch_size == "auto":
        batch_size = auto_batch_size(model, window, model.device)
    try:
        batch_size = int(batch_size)
    except (TypeError, ValueError):
        raise A2SBError(f"batch size must be a positive integer or 'auto', got '{batch_size}'") from None
    if batch_size < 1:
        raise A2SBError(f"batch size must be a positive integer or 'auto', got {batch_size}")
    band_level = getattr(model, "default_band_level", "off") if band_level is None else band_level
    if band_level not in BAND_LEVELS:
        raise A2SBError(f"band level must be one of {', '.join(BAND_LEVELS)}, got '{band_level}'")
    if stereo not in STEREO_MODES:
        raise A2SBError(f"stereo must be one of {', '.join(STEREO_MODES)}, got '{stereo}'")
    return _Options(steps, sampler, int(seed), batch_size, int(window), int(hop), bool(progress), name,
                    bool(fast_inpainting), bool(level_match), stereo, band_level)


def _check_window(model, window, hop) -> None:
    multiple = 2 ** model.config.n_updown_levels if model is not None else 1
    if not (isinstance(window, int) and isinstance(hop, int)) or window <= 0 or not 0 < hop <= window:
        raise A2SBError(f"need 0 < hop <= window (frames), got window {window}, hop {hop}")
    if window % multiple:
        raise A2SBError(f"window must be a multiple of {multiple} frames for this network, got {window}")


def _output_rate(rate_in: int, keep_rate: bool) -> int:
    if keep_rate and rate_in > SAMPLE_RATE:
        return rate_in
    if keep_rate and rate_in < SAMPLE_RATE:
        _warn(f"input rate {rate_in} Hz is below 44.1 kHz; writing 44.1 kHz")
    return SAMPLE_RATE


def _as_channels(audio, downmix: bool, name: str) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise A2SBError(f"audio must be 1-D or (channels, samples), got shape {x.shape}")
    if x.shape[0] > 2:
        if not downmix:
            raise A2SBError(f"{name} has {x.shape[0]} channels; only mono and stereo are restored "
                            "(use --downmix / downmix=True to mix down to mono)")
        x = x.mean(axis=0, keepdims=True)
    return x


def restore_audio(audio, sample_rate: int, *, cutoff=None, gaps=None, model="default", steps: int | None = None,
                  sampler: str | None = None, seed: int = 0, device=None, batch_size=16, window: int | None = None,
                  hop: int | None = None, progress: bool = False, keep_rate: bool = False, downmix: bool = False,
                  t_cutoffs=None, config=None, fast_inpainting: bool = True, level_match: bool = True,
                  stereo: str = "shared", band_level: str | None = None) -> tuple[np.ndarray, int]:
    """Restore an array: bandwidth extension above `cutoff` (Hz, "auto" or None) and/or inpainting of
    `gaps` ([(start_s, end_s)], "12.0-12.4,..." , "auto" or None).

    `audio` is (channels, samples) or 1-D (mono) at `sample_rate`; `model` a bundled name, a model
    folder / .safetensors, released .ckpt path(s) (with `t_cutoffs`, `config`), "preset:NAME" (random
    weights) or an A2SBModel; `device` None keeps a given model where it is (else cpu). Returns
    (restored audio (channels, samples) float32, rate): 44.1 kHz, or the input rate with `keep_rate`
    when it is higher. The output has the input's length; mono stays mono. `fast_inpainting=False`
    runs every window even when only gaps are restored (same result, slower: for comparisons).
    `level_match=False` splices the model's gap fill in as it comes, without the correction of its
    spectral level to the surrounding music (see `a2sb.levels.match_context_level`; gaps-only restorations).
    `band_level` corrects the level of a regenerated band against band replication's
    (`a2sb.levels.match_band_level`): "off", "match" (that level), "cap" (never above it); None: the model's
    default (`default_band_level`, "off" unless its config.json says otherwise; the bundled model: cap).
    `stereo="independent"` draws each channel's noise on its own (published) instead of sharing it.
    """
    name = "the audio"
    if not (isinstance(sample_rate, (int, np.integer)) and sample_rate > 0):
        raise A2SBError(f"sample rate must be a positive integer, got {sample_rate}")
    sample_rate = int(sample_rate)
    x = _as_channels(audio, downmix, name)
    cutoff, gaps = parse_cutoff(cutoff), parse_gaps(gaps)
    chunk = int(DETECT_CHUNK_SECONDS * sample_rate)
    analysis = analyse(_chunks_of_array(x, chunk), x.shape[0], sample_rate, x.shape[1],
                       want_cutoff=cutoff == "auto", want_gaps=gaps == "auto", name=name)
    _report(analysis, name)
    if analysis.nonfinite:
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    cutoff, gaps = _prepare(analysis, cutoff, gaps, name)
    out_rate = _output_rate(sample_rate, keep_rate)
    wave44 = ArrayWave(resample(x, sample_rate, SAMPLE_RATE))
    plan = _Plan(wave44.length, cutoff, gaps)
    native = ArrayWave(x) if out_rate == sample_rate else wave44
    out_length = x.shape[1] if out_rate == sample_rate else wave44.length
    net = resolve_model(model, device, t_cutoffs, config) if plan.mode != "none" else None
    opts = None if net is None else _options(net, steps, sampler, seed, batch_size, window, hop, progress, "",
                                             fast_inpainting, level_match, stereo, band_level)
    sink = ArraySink(x.shape[0])
    _run(plan, wave44, native, out_rate, out_length, sink.write, net, opts)
    return sink.result(), out_rate


def restore(input, output=None, *, cutoff="auto", gaps="auto", model="default", steps=None, sampler=None,
            seed=0, device=None, batch_size=16, window=None, hop=None, progress=False, keep_rate=False,
            downmix=False, overwrite=False, plot=False, t_cutoffs=None, config=None, fast_inpainting=True,
            level_match=True, stereo="shared", band_level=None):
    """Restore an audio file. Without `output`, returns (audio (channels, samples), rate) like
    `restore_audio`; with it, streams the result to that .wav/.flac file in bounded memory (written to a
    temporary file and renamed at the end) and returns its path. `plot` also writes a PNG of input and
    output spectrograms next to it. Other options as `restore_audio`."""
    path = str(input)
    if output is None:
        _check_input(path, downmix)
        audio, rate = read_audio(path, sample_rate=None)
        return restore_audio(audio, rate, cutoff=cutoff, gaps=gaps, model=model, steps=steps,
                             sampler=sampler, seed=seed, device=device, batch_size=batch_size, window=window,
                             hop=hop, progress=progress, keep_rate=keep_rate, downmix=downmix,
                             t_cutoffs=t_cutoffs, config=config, fast_inpainting=fast_inpainting,
                             level_match=level_match, stereo=stereo, band_level=band_level)
    job = _Job(path, Path(output), parse_cutoff(cutoff), parse_gaps(gaps), downmix, overwrite)
    job.validate()
    return job.run(_ModelCache(model).get, dict(steps=steps, sampler=sampler, seed=seed, device=device,
                                         batch_size=batch_size, window=window, hop=hop, progress=progress,
                                         keep_rate=keep_rate, plot=plot, t_cutoffs=t_cutoffs, config=config,
                                         fast_inpainting=fast_inpainting, level_match=level_match,
                                         stereo=stereo, band_level=band_level))


def _check_input(path: str, downmix: bool):
    info = audio_info(path, verify=True)  # truncated and corrupt files are refused here, before any work
    if info.frames <= 0:
        raise A2SBError(f"{path} is empty (no samples)")
    if info.channels > 2 and not downmix:
        raise A2SBError(f"{path} has {info.channels} channels; only mono and stereo are restored "
                        "(use --downmix to mix down to mono)")
    return info


class _Job:
    """One input file -> one output file, validated before any work is done."""

    def __init__(self, path: str, output: Path, cutoff, gaps, downmix: bool, overwrite: bool):
        self.path, self.output, self.cutoff, self.gaps = path, output, cutoff, gaps
        self.downmix, self.overwrite = downmix, overwrite

    def validate(self) -> None:
        self.info = _check_input(self.path, self.downmix)
        if self.output.suffix.lower() not in WRITE_SUFFIXES:
            raise A2SBError(f"unsupported output format '{self.output.suffix or self.output.name}': "
                            "use .wav or .flac")
        if _same_file(self.path, self.output):
            raise A2SBError(f"output {self.output} is the input file; choose another name")
        if self.output.exists() and not self.overwrite:
            raise A2SBError(f"output {self.output} exists (use --overwrite to replace it)")
        folder = self.output.parent if str(self.output.parent) else Path(".")
        if not folder.is_dir():
            raise A2SBError(f"output folder does not exist: {folder}")
        if isinstance(self.cutoff, float):
            check_cutoff(self.cutoff, self.info.sample_rate, self.path)
        if isinstance(self.gaps, list):
            check_gaps(self.gaps, self.info.duration, self.path)

    def analyse(self) -> Analysis:
        chunk = int(DETECT_CHUNK_SECONDS * self.info.sample_rate)
        channels = 1 if self.downmix else self.info.channels
        analysis = analyse(_chunks_of_file(self.path, chunk, self.downmix), channels, self.info.sample_rate,
                           self.info.frames, want_cutoff=self.cutoff == "auto", want_gaps=self.gaps == "auto",
                           name=self.path)
        _report(analysis, self.path)
        return analysis

    def run(self, get_model, options: dict) -> Path:
        """`get_model(device, t_cutoffs, config)` gives the model, loaded only if there is work for it."""
        analysis = self.analyse()
        cutoff, gaps = _prepare(analysis, self.cutoff, self.gaps, self.path)
        out_rate = _output_rate(self.info.sample_rate, options["keep_rate"])
        wave = FileWave(self.path, SAMPLE_RATE, self.downmix)
        native = FileWave(self.path, out_rate, self.downmix) if out_rate != SAMPLE_RATE else wave
        plan = _Plan(wave.length, cutoff, gaps)
        net, opts = None, None
        if plan.mode != "none":
            net = get_model(options["device"], options["t_cutoffs"], options["config"])
            opts = _options(net, options["steps"], options["sampler"], options["seed"], options["batch_size"],
                            options["window"], options["hop"], options["progress"], Path(self.path).name,
                            options.get("fast_inpainting", True), options.get("level_match", True),
                            options.get("stereo", "shared"), options.get("band_level"))
        try:
            with FileSink(self.output, out_rate, wave.channels) as sink:
                _run(plan, wave, native, out_rate, native.length, sink.write, net, opts)
                sink.commit()
        finally:
            wave.close()
            if native is not wave:
                native.close()
        if sink.clipped:
            _warn(f"{self.output}: {sink.clipped} output samples beyond full scale were clipped (FLAC); "
                  "use WAV to keep them")
        if options["plot"]:
            from .plot import save_comparison

            save_comparison(self.output.with_suffix(".png"), self.path, self.output, cutoff=cutoff, gaps=gaps)
        return self.output


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


# ------------------------------------------------------------------------------------------------- CLI

def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("restore", help="restore audio files (bandwidth extension and/or gap inpainting)",
                       description="Restore music: extend the bandwidth above a cutoff and/or fill gaps. "
                                   "Inputs are files or folders; outputs go next to each input as "
                                   "NAME.restored.flac (or .wav for WAV input) unless -o/--out-dir say otherwise.")
    p.add_argument("inputs", nargs="+", metavar="INPUT")
    where = p.add_mutually_exclusive_group()
    where.add_argument("-o", "--output", help="output file (one input only)")
    where.add_argument("--out-dir", help="folder for the outputs (created if missing)")
    p.add_argument("--cutoff", default="auto", help="HZ, auto (detect; default) or off")
    p.add_argument("--gaps", default="auto", help='"START-END,..." in seconds, auto (detect; default) or off')
    p.add_argument("--model", default="default",
                   help="bundled model name, model folder or .safetensors file (default: the bundled model)")
    p.add_argument("--checkpoint", action="append", metavar="CKPT",
                   help="NVIDIA's released .ckpt file; repeat for each expert, in t order")
    p.add_argument("--t-cutoffs", type=_floats, default=None, help="t cutoffs between the checkpoints, e.g. 0.5")
    p.add_argument("--config", default=None, help="network config (YAML/JSON) for --checkpoint")
    p.add_argument("--steps", type=int, default=None, help="time grid points (steps − 1 network calls)")
    p.add_argument("--sampler", choices=("sde", "ode"), default=None,
                   help="bridge sampler (default: the model's own, e.g. sde for released checkpoints)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("cpu", "cuda", "mps", "auto"), default="auto")
    p.add_argument("--batch-size", type=_batch_size, default="auto", help="windows per network call, or auto")
    p.add_argument("--window", type=int, default=None,
                   help="MultiDiffusion window in frames (default: the model's, 256 for the published models)")
    p.add_argument("--hop", type=int, default=None, help="MultiDiffusion hop in frames (default: window / 2)")
    p.add_argument("--format", choices=("wav", "flac"), default=None, help="output format")
    p.add_argument("--keep-rate", action="store_true", help="write at the input's rate when it is above 44.1 kHz")
    p.add_argument("--plot", action="store_true", help="also write a PNG of input/output spectrograms")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--downmix", action="store_true", help="mix inputs with more than 2 channels down to mono")
    p.add_argument("--no-level-match", action="store_true",
                   help="gaps: splice the model's fill in as it comes, without matching its spectral level "
                        "to the music around the gap")
    p.add_argument("--band-level", choices=BAND_LEVELS, default=None,
                   help="bandwidth extension: correct the regenerated band's level per third of an octave "
                        "against band replication's: off, match it, or cap (never louder); default: the model's")
    p.add_argument("--stereo", choices=STEREO_MODES, default="shared",
                   help="stereo: shared noise for both channels (default), independent noise (published), "
                        "or midside (restore mid and side, each with its own noise)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_restore_command)

    p = sub.add_parser("info", help="duration, rate, channels, detected cutoff and gaps of an audio file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_info_command)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None


def _batch_size(text: str):
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'auto', got '{text}'")
    return value


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"a2sb: warning: {message}", file=sys.stderr)


def _audio_files(folder: Path) -> list[Path]:
    suffixes = {"." + ext.lower() for ext in sf.available_formats()} | {".aif", ".oga", ".opus"}
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
                  and ".restored." not in p.name)


def _restore_command(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always", A2SBWarning)
        warnings.showwarning = _show_warning
        return _restore_files(args)


def _restore_files(args) -> int:
    inputs: list[Path] = []
    for item in args.inputs:
        path = Path(item)
        if path.is_dir():
            found = _audio_files(path)
            if not found:
                raise A2SBError(f"no audio files in folder {path}")
            inputs += found
        elif not path.exists():
            raise A2SBError(f"no such file: {path}")
        else:
            inputs.append(path)
    if args.output and len(inputs) > 1:
        raise A2SBError(f"-o/--output takes one input, got {len(inputs)}; use --out-dir")
    if args.checkpoint and args.model != "default":
        raise A2SBError("give either --model or --checkpoint, not both")
    if (args.t_cutoffs or args.config) and not args.checkpoint:
        raise A2SBError("--t-cutoffs and --config apply to --checkpoint files only")
    cutoff, gaps = parse_cutoff(args.cutoff), parse_gaps(args.gaps)
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    jobs = []
    for path in inputs:
        if args.output:
            output = Path(args.output)
            if args.format and output.suffix.lower() != "." + args.format:
                raise A2SBError(f"--format {args.format} does not match the output name {output}")
        else:
            ext = args.format or ("wav" if path.suffix.lower() == ".wav" else "flac")
            folder = Path(args.out_dir) if args.out_dir else path.parent
            output = folder / f"{path.stem}.restored.{ext}"
        job = _Job(str(path), output, cutoff, gaps, args.downmix, args.overwrite)
        job.validate()  # every input and output is checked before any work starts
        jobs.append(job)
    outputs = [job.output for job in jobs]
    if len(set(map(os.path.abspath, outputs))) < len(outputs):
        raise A2SBError("two inputs would be written to the same output; use different names")
    model = args.checkpoint if args.checkpoint else args.model
    options = dict(steps=args.steps, sampler=args.sampler, seed=args.seed, device=args.device,
                   batch_size=args.batch_size, window=args.window, hop=args.hop, progress=not args.no_progress,
                   keep_rate=args.keep_rate, plot=args.plot, t_cutoffs=args.t_cutoffs, config=args.config,
                   level_match=not args.no_level_match, stereo=args.stereo, band_level=args.band_level)
    models = _ModelCache(model)
    for job in jobs:
        print(f"wrote {job.run(models.get, options)}")
    return 0


class _ModelCache:
    """Loads the model on first use and keeps it for the next file."""

    def __init__(self, source):
        self.source, self.model = source, None

    def get(self, device, t_cutoffs, config):
        if self.model is None:
            self.model = resolve_model(self.source, device, t_cutoffs, config)
        return self.model


def _info_command(args) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("always", A2SBWarning)
        warnings.showwarning = _show_warning
        info = _check_input(args.file, downmix=True)
        chunk = int(DETECT_CHUNK_SECONDS * info.sample_rate)
        analysis = analyse(_chunks_of_file(args.file, chunk, False), info.channels, info.sample_rate, info.frames,
                           want_cutoff=True, want_gaps=True, name=args.file)
        _report(analysis, args.file)
    data = {"duration": round(analysis.duration, 6), "sample_rate": analysis.sample_rate,
            "channels": analysis.channels,
            "cutoff_hz": None if analysis.cutoff is None else round(float(analysis.cutoff), 1),
            "gaps": [[round(s, 4), round(e, 4)] for s, e in analysis.gaps]}
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"file:        {args.file}")
    print(f"duration:    {analysis.duration:.3f} s")
    print(f"sample rate: {analysis.sample_rate} Hz")
    print(f"channels:    {analysis.channels}")
    none = "unsure (see the warning)" if analysis.cutoff_unsure else "none (full band)"
    print(f"cutoff:      {analysis.cutoff_note or (none if analysis.cutoff is None else f'{analysis.cutoff:.0f} Hz')}")
    gaps = ", ".join(f"{s:.3f}-{e:.3f}" for s, e in analysis.gaps)
    print(f"gaps:        {gaps + ' s' if gaps else 'none'}")
    return 0
