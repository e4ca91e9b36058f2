"""`Restorer`: the model loaded once and the options held once, used by the CLI, the Python API, the
quality bench and the web app.

The data flow one way: audio (`a2sb.audio`) -> analysis (`a2sb.analysis`, which calls `a2sb.detect`)
-> `Plan` (`a2sb.plan`) -> picture (`a2sb.picture`, `a2sb.masks`) -> sampler (`a2sb.sampler`) -> picture
-> output assembly (`a2sb.output`, with the level matching of `a2sb.levels`).

What is restored
- Bandwidth extension (a cutoff): picture rows at or above row_of_frequency(cutoff) are generated; the
  band below comes from the input's own picture (so it passes through unchanged).
- Inpainting (gaps): every frame whose STFT window reaches into a gap is generated (`a2sb.masks`). When
  only gaps are restored, the input is copied through and the model's waveform spliced into the gaps;
  only the windows touching a gap are run.
- Codec repair (a lossy decode, `Plan.holes`): the cells its encoder left empty below its band limit
  (`a2sb.holes`, found in the input's own spectrum) are generated with the band above; every other
  cell comes from the input.
- Together: the union of the masks; with a band or holes the whole output is the model's.

The model works at 44.1 kHz; the output has the input's rate (44.1 kHz when a band above the input's
own Nyquist frequency is regenerated), length and channels. Files are read and written piece by piece,
so hour-long files need no more memory than short ones. Same input, same seed, same options: the same
output, bit for bit, whichever front end.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .analysis import check_input, plan_array, plan_file
from .audio import (
    CONTAINERS,
    SAMPLE_RATE,
    ArrayWave,
    FileWave,
    audio_info,
    check_writable,
    error_line,
    read_chunks,
    resample,
    temporary_beside,
)
from .errors import A2SBError, OutputExists
from .levels import BAND_LEVEL_DB, match_band_level, octave_table_db
from .masks import MIN_WORK_SAMPLES, HoleCells, PictureMask
from .model import BAND_LEVELS
from .output import (
    EXTENSIONS,
    WRITE_CHUNK,
    OutputFormat,
    chosen_container,
    db,
    finish,
    is_lossy,
    mid_side,
    output_format,
    output_rate,
    peak_gain,
    write_spliced,
    write_whole,
)
from .picture import WaveformPicture
from .plan import Plan, check_plan
from .prior import PictureEstimate, Prior
from .prior import fill as fill_prior
from .representation import N_ROWS, spec_to_representation
from .sampler import PositionalNoise, count_windows, stream_sample, time_grid

QUALITIES = ("fast", "default", "best")  # fast: half the network calls (at least one); best: twice
STEREO_MODES = ("shared", "independent", "midside")  # the channels' noise shared, one each, or mid/side
FILL_NOISE_STEP = -1  # PositionalNoise step index of the noise filling the masked region
TAGS = ("title", "artist", "album", "date", "genre", "tracknumber", "comment", "copyright", "license", "software")

Progress = Callable[[int, int], None]


class A2SBWarning(UserWarning):
    """Something the user should know that does not stop the restoration (clipping, long gaps)."""


class Cancelled(A2SBError):
    """The restoration was cancelled (its `cancel` event was set); no output was written."""


@dataclass(frozen=True)
class Report:
    """What a restoration did."""

    plan: Plan
    output: Path | None
    format: OutputFormat | None
    peak: float  # of the restored audio before the gain (linear)
    gain: float  # applied so that nothing clips (1: none)
    seconds: float
    warnings: tuple[str, ...] = ()
    clipped: int = 0  # samples clipped in the written file (only with peak_safety off)

    def describe(self) -> str:
        """What was regenerated, the peak level and any gain applied (the lines the CLI prints after)."""
        done = []
        if self.plan.cutoff_hz is not None:
            done.append(f"the band above {self.plan.cutoff_hz / 1000:.1f} kHz")
        if self.plan.holes:
            share = "" if self.plan.hole_share is None else f"{100 * self.plan.hole_share:.1f} % of "
            below = self.plan.hole_stop_hz
            where = "it" if self.plan.cutoff_hz is not None and below == self.plan.cutoff_hz else (
                "the band" if below is None else f"{below / 1000:.1f} kHz")
            done.append(f"{share}the cells below {where} (codec holes)" if below is not None or share else
                        "the codec holes")
        if self.plan.gaps:
            done.append(f"{len(self.plan.gaps)} gap{'s' if len(self.plan.gaps) > 1 else ''}")
        what = f"regenerated {' and '.join(done)}" if done else "nothing regenerated (a copy)"
        where = "" if self.output is None else f"wrote {self.output} ({self.format.describe()}): "
        level = f"peak {db(self.peak):+.1f} dBFS"
        if self.gain != 1.0:
            level += f", lowered by {-db(self.gain):.1f} dB so that nothing clips"
        if self.clipped:
            level += f", {self.clipped} samples clipped (peak safety off)"
        return f"{where}{what} in {self.seconds:.1f} s; {level}"


def plot_path(output) -> Path:
    """Where `restore_file(..., plot=True)` puts its spectrogram picture: the output's name with .png."""
    return Path(output).with_suffix(".png")


def _clipping_note(peak: float, consequence: str) -> str:
    return f"the restored audio peaks at {db(peak):+.1f} dBFS and peak safety is off: {consequence}"


@dataclass
class _Settings:
    """The sampling settings resolved against a model."""

    steps: int
    sampler: str
    seed: int
    batch_size: int
    window: int
    hop: int
    stereo: str
    band_level: str
    level_match: bool = True
    fast_inpainting: bool = True
    items: list[int] = field(default_factory=list)


class Restorer:
    """Restores music files and arrays with one model, loaded on first use and kept.

    `model`: a bundled name, a model folder or .safetensors file, released .ckpt path(s) (with
    `t_cutoffs`, `config`), "preset:NAME" (random weights: tests only) or an A2SBModel. `device`: "cpu",
    "cuda", "mps", "auto" or None (a given model stays where it is; else auto). `quality`: "fast",
    "default" (the model's own steps) or "best". `seed`: the random numbers of the sampler (same seed,
    same output).

    Expert settings (default: the model's config.json): `steps` (time grid points, overrides `quality`),
    `sampler` ("sde"/"ode"), `window`/`hop` (MultiDiffusion, frames), `batch_size` (windows per network
    call, or "auto": as many as fit in memory; how batches are composed changes the last bits), `stereo`
    ("shared" noise for both channels, "independent" (published), "midside"),
    `band_level` ("off": the model's band as it comes; "cap": raised by the model's band gain table if
    it has one, never above band replication's level; "match": at band replication's level; `a2sb.levels`),
    `level_match` (gap fills at the level of the music around them), `fast_inpainting` (gaps only: run only
    the windows near gaps; the same result), `downmix` (more than two channels mixed to mono), `peak_safety`
    (lower an output that would clip; reported; off, the samples an integer format clips are counted in
    `Report.clipped` and said).
    `on_warning(message)` receives the warnings (default: Python's warnings, category A2SBWarning).
    """

    def __init__(self, model="default", device=None, quality: str = "default", seed: int = 0, *,
                 steps: int | None = None, sampler: str | None = None, window: int | None = None,
                 hop: int | None = None, batch_size=16, stereo: str = "shared", band_level: str | None = None,
                 level_match: bool = True, fast_inpainting: bool = True, downmix: bool = False,
                 peak_safety: bool = True, t_cutoffs=None, config=None,
                 on_warning: Callable[[str], None] | None = None):
        if quality not in QUALITIES:
            raise A2SBError(f"quality must be one of {', '.join(QUALITIES)}, got '{quality}'")
        if stereo not in STEREO_MODES:
            raise A2SBError(f"stereo must be one of {', '.join(STEREO_MODES)}, got '{stereo}'")
        if band_level is not None and band_level not in BAND_LEVELS:
            raise A2SBError(f"band level must be one of {', '.join(BAND_LEVELS)}, got '{band_level}'")
        if sampler is not None and sampler not in ("sde", "ode"):
            raise A2SBError(f"sampler must be 'sde' or 'ode', got '{sampler}'")
        if steps is not None and int(steps) < 2:
            raise A2SBError(f"steps must be at least 2 (steps − 1 network evaluations), got {steps}")
        self.source, self.device, self.quality, self.seed = model, device, quality, int(seed)
        self.steps, self.sampler, self.window, self.hop = steps, sampler, window, hop
        self.batch_size, self.stereo, self.band_level = batch_size, stereo, band_level
        self.level_match, self.fast_inpainting, self.downmix = bool(level_match), bool(fast_inpainting), downmix
        self.peak_safety, self.t_cutoffs, self.config = bool(peak_safety), t_cutoffs, config
        self.on_warning = on_warning
        self._model = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------ the model

    @property
    def model(self):
        """The model, loaded on first use."""
        with self._lock:
            if self._model is None:
                self._model = resolve_model(self.source, self.device, self.t_cutoffs, self.config, self._warn)
            return self._model

    def _warn(self, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(message)
        else:
            warnings.warn(message, A2SBWarning, stacklevel=3)

    def settings(self, channels: int) -> _Settings:
        """The sampling settings for the model (loading it)."""
        model = self.model
        sampler = self.sampler or model.default_sampler
        steps = self.steps
        if steps is None:
            calls = model.default_steps - 1
            steps = 1 + {"fast": max(1, calls // 2), "default": calls, "best": 2 * calls}[self.quality]
        window = model.default_window if self.window is None else int(self.window)
        if self.hop is not None:
            hop = int(self.hop)
        else:
            hop = model.default_hop if window == model.default_window else window // 2
        multiple = 2 ** model.config.n_updown_levels
        if window <= 0 or not 0 < hop <= window:
            raise A2SBError(f"need 0 < hop <= window (frames), got window {window}, hop {hop}")
        if window % multiple:
            raise A2SBError(f"window must be a multiple of {multiple} frames for this network, got {window}")
        batch_size = self.batch_size
        if batch_size == "auto":
            batch_size = auto_batch_size(model, window, model.device)
        try:
            batch_size = int(batch_size)
        except (TypeError, ValueError):
            raise A2SBError(f"batch size must be a positive integer or 'auto', got '{batch_size}'") from None
        if batch_size < 1:
            raise A2SBError(f"batch size must be a positive integer or 'auto', got {batch_size}")
        band_level = self.band_level or model.default_band_level
        # "shared": every channel gets the same noise (in x1 and in the SDE), so what the model makes up is
        # as alike between channels as their inputs are; "independent": the published per-item noise, also
        # for mid and side, which are nearly uncorrelated in music
        items = [0] * channels if self.stereo == "shared" else list(range(channels))
        return _Settings(int(steps), sampler, self.seed, batch_size, window, hop, self.stereo, band_level,
                         self.level_match, self.fast_inpainting, items)

    # ---------------------------------------------------------------------------------- planning

    def analyse(self, input, cutoff="auto", gaps="auto", holes="auto") -> Plan:
        """Read and analyse a file (no model needed): what is damaged and what will be restored.
        `cutoff`: "auto", None/"off" or Hz; `gaps`: "auto", None/"off", [(start_s, end_s)] or
        "0:12.0-0:12.3,..."; `holes` (codec holes of a lossy decode): "auto", None/"off" or True. """
        return plan_file(str(input), cutoff, gaps, self.downmix, holes)

    def default_output_path(self, input, format: str | None = None, out_dir=None) -> Path:
        """NAME.restored.EXT beside the input (or in `out_dir`): EXT the input's, or the format's (lossy
        inputs: .flac)."""
        path = Path(input)
        if format is not None:
            ext = EXTENSIONS[chosen_container(format)]
        else:
            ext = ".flac" if is_lossy(audio_info(path)) else path.suffix
        return (Path(out_dir) if out_dir is not None else path.parent) / f"{path.stem}.restored{ext}"

    def check_output(self, input, output, overwrite: bool = False, format: str | None = None,
                     plot: bool = False) -> None:
        """Refuse (before any work) an output that cannot or must not be written (with `plot`, its PNG too)."""
        output = Path(output)
        info = audio_info(input)
        if format is None:
            output_format(info, SAMPLE_RATE, None, output)  # a name whose ending we cannot write
        elif CONTAINERS.get(output.suffix.lower()) != chosen_container(format):
            raise A2SBError(f"format {format} does not match the output name {output}")
        if _same_file(input, output):
            raise A2SBError(f"output {output} is the input file; choose another name")
        if output.exists() and not overwrite:
            raise OutputExists(output, "output")
        png = plot_path(output)
        if plot and _same_file(input, png):
            raise A2SBError(f"the plot {png} would replace the input file; choose another output name")
        if plot and png.exists() and not overwrite:
            raise OutputExists(png, "plot")
        check_writable(output.parent if str(output.parent) else Path("."))

    # -------------------------------------------------------------------------------- restoring

    def restore_file(self, input, output=None, *, plan: Plan | None = None, cutoff="auto", gaps="auto",
                     holes="auto", format: str | None = None, overwrite: bool = False, progress: Progress | None = None,
                     cancel: threading.Event | None = None, plot: bool = False) -> Report:
        """Restore a file to `output` (default: `default_output_path`), written atomically in the input's
        rate, container and sample format (see `a2sb.output.output_format`; `format` "flac", "wav" or
        "aiff" chooses), with its tags. `plan` (from `analyse`, perhaps edited) or `cutoff`/`gaps`/`holes`
        say what to restore. `progress(done, total)` is called as the work goes; setting `cancel` stops it
        (raising Cancelled, nothing written). `plot` also writes a PNG of both spectrograms."""
        begin = time.perf_counter()
        path = str(input)
        output = self.default_output_path(path, format) if output is None else Path(output)
        self.check_output(path, output, overwrite, format, plot)
        if plan is None:  # a caller that passes a plan has its warnings; else they are given here
            plan = self.analyse(path, cutoff, gaps, holes)
            for message in plan.warnings:
                self._warn(message)
        else:
            check_input(path, self.downmix)
        plan = check_plan(plan)
        info = audio_info(path)
        _check_plan_fits(plan, path, info.sample_rate, info.frames)
        downmix = self.downmix and info.channels > 2
        fmt = output_format(info, output_rate(plan.sample_rate, plan.cutoff_hz), format,
                            output if format is None else None)
        wave = FileWave(path, SAMPLE_RATE, downmix)
        native = FileWave(path, fmt.rate, downmix) if fmt.rate != SAMPLE_RATE else wave
        floats = temporary_beside(output.with_name(output.stem + ".w64"))
        peak = 0.0
        try:
            with sf.SoundFile(floats, "w", fmt.rate, wave.channels, "FLOAT", format="W64") as f:
                def write(chunk: np.ndarray) -> None:
                    nonlocal peak
                    _check_cancel(cancel)
                    if chunk.size:
                        peak = max(peak, float(np.abs(chunk).max()))
                    f.write(np.ascontiguousarray(chunk.T))

                self._run(plan, wave, native, fmt.rate, native.length, write, progress, cancel)
            gain = peak_gain(peak) if self.peak_safety else 1.0
            _check_cancel(cancel)
            clipped = finish(read_chunks(floats, WRITE_CHUNK), output, fmt, wave.channels, gain, self.seed,
                             _tags(path))
        except (OSError, sf.SoundFileError) as err:  # a full disk, a folder gone, a file that stopped decoding
            raise A2SBError(f"{path}: {error_line(err)}") from None
        except torch.OutOfMemoryError:
            raise A2SBError(f"{path}: out of memory on {self.model.device}; a smaller batch_size needs "
                            "less") from None
        finally:
            wave.close()
            if native is not wave:
                native.close()
            if os.path.exists(floats):
                os.unlink(floats)
        notes = self._notes(plan, fmt)
        if clipped:
            notes += (_clipping_note(peak, f"{clipped} samples of {output.name} were clipped"),)
        report = Report(plan, output, fmt, peak, gain, time.perf_counter() - begin, notes, clipped)
        if plot:
            from .plot import save_comparison

            save_comparison(plot_path(output), path, output, cutoff=plan.cutoff_hz, gaps=plan.gaps)
        return report

    def restore_audio(self, audio, rate: int, *, cutoff="auto", gaps="auto", holes="auto", plan: Plan | None = None,
                      progress: Progress | None = None, cancel: threading.Event | None = None):
        """Restore an array shaped like soundfile's: (samples,) or (samples, channels) at `rate`. Returns
        (restored audio shaped like the input, rate): the input's rate, or 44.1 kHz when a band above the
        input's own Nyquist frequency is regenerated. Warnings go to `on_warning`."""
        mono = np.ndim(audio) == 1
        x, rate = _as_channels(audio, rate, self.downmix)
        if plan is None:
            plan = plan_array(x, rate, cutoff, gaps, holes)
        _check_plan_fits(plan, "the audio", rate, x.shape[1])
        for message in plan.warnings:
            self._warn(message)
        out, out_rate, _, _ = self.restore_array(x, rate, check_plan(plan), progress, cancel)
        return (out[0] if mono else out.T), out_rate

    def restore_array(self, x: np.ndarray, rate: int, plan: Plan, progress: Progress | None = None,
                      cancel: threading.Event | None = None) -> tuple[np.ndarray, int, float, float]:
        """The engine on a (channels, samples) float32 array: (restored (channels, samples), rate, peak
        before the gain, gain)."""
        if not np.isfinite(x).all():
            x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
        out_rate = output_rate(rate, plan.cutoff_hz)
        wave44 = ArrayWave(resample(x, rate, SAMPLE_RATE))
        native = ArrayWave(x) if out_rate == rate else wave44
        out_length = x.shape[1] if out_rate == rate else wave44.length
        chunks: list[np.ndarray] = []

        def write(chunk):
            _check_cancel(cancel)
            chunks.append(np.asarray(chunk, np.float32))

        self._run(plan, wave44, native, out_rate, out_length, write, progress, cancel)
        out = np.concatenate(chunks, axis=1) if chunks else np.zeros((x.shape[0], 0), np.float32)
        peak = float(np.abs(out).max()) if out.size else 0.0
        gain = peak_gain(peak) if self.peak_safety else 1.0
        if gain != 1.0:
            out = out * np.float32(gain)
        notes = self._notes(plan, None)
        if peak > 1.0 and gain == 1.0:
            notes += (_clipping_note(peak, "an integer sample format would clip it"),)
        for message in notes:
            self._warn(message)
        return out, out_rate, peak, gain

    def _notes(self, plan: Plan, fmt: OutputFormat | None) -> tuple[str, ...]:
        notes = []
        if plan.cutoff_hz is not None and plan.sample_rate < SAMPLE_RATE:
            notes.append(f"written at 44.1 kHz, not the input's {plan.sample_rate} Hz: the regenerated band "
                         "lies above the input's Nyquist frequency")
        return tuple(notes)

    # --------------------------------------------------------------------------------- the engine

    def _run(self, plan: Plan, wave, native, out_rate: int, out_length: int, write,
             progress: Progress | None, cancel: threading.Event | None) -> None:
        """Restore `wave` (44.1 kHz reader) according to `plan`, writing (channels, n) chunks at `out_rate`
        (`out_length` samples in all) to `write`. `native` reads the input at `out_rate` (used where input
        samples are copied through)."""
        channels = wave.channels
        if plan.nothing_to_do():
            for start in range(0, out_length, 1 << 18):
                write(native.read(start, min(out_length, start + (1 << 18))))
            return
        model = self.model
        opts = self.settings(channels)
        midside = opts.stereo == "midside" and channels == 2

        def read_work(start: int, stop: int) -> np.ndarray:  # zero beyond the end of short input
            data = wave.read(start, min(stop, wave.length))
            if data.shape[1] < stop - start:
                data = np.pad(data, ((0, 0), (0, stop - start - data.shape[1])))
            return mid_side(data) if midside else data  # the model restores mid and side

        picture = WaveformPicture(read_work, max(wave.length, MIN_WORK_SAMPLES))
        # codec holes: found in the spectrum of what the model restores (mid and side: the same cells)
        holes = HoleCells(picture.spectrum, picture.frames, plan.hole_stop_hz) if plan.holes else None
        mask = PictureMask(wave.length, plan.cutoff_hz, plan.gaps, holes)
        fill = PositionalNoise(opts.seed, N_ROWS, 3)
        prior = model.prior
        estimate = PictureEstimate(picture.spectrum, mask.frames, mask.cutoff, mask.gap_frames, prior) \
            if prior.informative else None
        # the level reference of bandwidth extension: the band replication estimate (the dsp prior's own, or
        # one made for this purpose for noise-prior models such as the published checkpoints)
        reference = None
        if mask.cutoff is not None and opts.band_level != "off":
            reference = estimate if estimate is not None else PictureEstimate(
                picture.spectrum, mask.frames, mask.cutoff, mask.gap_frames, Prior("dsp", stereo_mix=0.0))
        # the dsp prior's estimate of a block, kept until the block is finished when it is also the level
        # reference (one estimate per block, not two)
        kept: dict[tuple[int, int], torch.Tensor] | None = {} if estimate is not None and reference is estimate \
            else None

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
            region = mask(a, b)
            if bool(region.any()):  # the region to generate as the model was trained: noise, or estimate + noise
                noise = fill.frames(FILL_NOISE_STEP, 0, opts.items, a, b)
                x0 = fill_prior(x0, region, noise, prior, estimate_of(a, b, spec) if estimate is not None else None)
            return x0, region

        # gaps only: run just the windows touching a gap (exactly the same result, see a2sb.sampler)
        masked = mask.gap_frames if mask.mode == "gaps" and opts.fast_inpainting else None
        total = count_windows(mask.frames, opts.window, opts.hop, masked) * channels * (opts.steps - 1)
        done = 0

        def advance(n: int) -> None:
            nonlocal done
            _check_cancel(cancel)
            done += n
            if progress is not None:
                progress(done, total)

        @torch.inference_mode()
        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            return model.predict_noise(x, t)

        blocks = stream_sample(denoise, source, mask.frames, channels, time_grid(opts.steps), schedule=model.schedule,
                               sde=opts.sampler == "sde", window=opts.window, hop=opts.hop, seed=opts.seed,
                               batch_size=opts.batch_size, items=opts.items, masked_frames=masked,
                               device=model.device, progress=advance)
        with torch.inference_mode():
            if mask.mode == "whole":
                if reference is not None:
                    bounds = BAND_LEVEL_DB if opts.band_level == "match" else (BAND_LEVEL_DB[0], 0.0)
                    offsets, gain = (octave_table_db(table, mask.cutoff) if table else None
                                     for table in (model.band_level_offsets, model.band_gain))
                    blocks = (match_band_level(a, b, x0, reference_of(a, b), mask.first_row, bounds, offsets, gain)
                              for a, b, x0 in blocks)
                def dc_row(a: int, b: int) -> torch.Tensor:  # the input's, but none from a damaged gap
                    row = picture.dc_row(a, b)
                    row[..., torch.from_numpy(mask.gap_frames[a:b])] = 0
                    return row

                write_whole(blocks, mask, channels, out_rate, out_length, write, opts.level_match, midside,
                            dc_row=dc_row)
            else:
                write_spliced(blocks, mask, picture, native, channels, out_rate, out_length, write,
                              opts.level_match, midside)


# ------------------------------------------------------------------------------------------- helpers

def _check_plan_fits(plan: Plan, name: str, rate: int, frames: int) -> None:
    """A plan made for other audio (another rate or length) would put its gaps and holes in the wrong
    places: refused."""
    if (plan.sample_rate, plan.frames) != (rate, frames):
        raise A2SBError(f"{name}: the plan was made for other audio ({plan.name}: {plan.frames} samples at "
                        f"{plan.sample_rate} Hz; this is {frames} samples at {rate} Hz)")


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _tags(path: str) -> dict[str, str]:
    """The tags libsndfile reads from a file (title, artist, ...), to copy to its restoration."""
    try:
        with sf.SoundFile(path) as f:
            return {name: value for name in TAGS if (value := getattr(f, name, ""))}
    except Exception:  # tags are a courtesy: a file whose tags cannot be read is still restored
        return {}


def _as_channels(audio, rate, downmix: bool) -> tuple[np.ndarray, int]:
    """A soundfile-shaped array ((samples,) or (samples, channels)) as float32 (channels, samples)."""
    if not (isinstance(rate, (int, np.integer)) and rate > 0):
        raise A2SBError(f"sample rate must be a positive integer, got {rate}")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim not in (1, 2):
        raise A2SBError(f"audio must be (samples,) or (samples, channels), got shape {x.shape}")
    x = x[None] if x.ndim == 1 else x.T
    if x.shape[0] > 2:
        if not downmix:
            raise A2SBError(f"the audio has {x.shape[0]} channels; only mono and stereo are restored "
                            "(use downmix=True to mix down to mono)")
        x = x.mean(axis=0, keepdims=True)
    return np.ascontiguousarray(x), int(rate)


def resolve_device(device) -> torch.device:
    name = "auto" if device is None else str(device)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise A2SBError(f"unknown device '{name}' (use cpu, cuda, mps or auto)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise A2SBError("device 'cuda' requested but no CUDA GPU is available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise A2SBError("device 'mps' requested but Apple's MPS backend is not available")
    return dev


def resolve_model(model="default", device=None, t_cutoffs=None, config=None, warn=None):
    """An A2SBModel from a model object (moved only when `device` is given), a bundled name, a model
    folder or .safetensors file, released .ckpt file(s), or "preset:NAME" (random weights: for tests and
    speed measurements only)."""
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
        if warn is not None:
            warn(f"using the '{name[7:]}' architecture with RANDOM weights: the output is not a restoration")
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


def restore(input, output=None, **options):
    """One call: restore a file with a `Restorer(**options)` (the options of Restorer and of its
    `restore_file`: cutoff, gaps, holes, format, overwrite, plot). With `output`, writes it and returns the
    Report; without, returns (audio shaped like soundfile's (samples, channels), rate)."""
    names = ("cutoff", "gaps", "holes", "format", "overwrite", "plot", "progress", "cancel")
    call = {k: options.pop(k) for k in names if k in options}
    restorer = Restorer(**options)
    if output is not None:
        return restorer.restore_file(input, output, **call)
    for name in ("format", "overwrite", "plot"):
        if name in call:
            raise A2SBError(f"'{name}' applies only when restoring to an output file")
    plan = restorer.analyse(input, call.get("cutoff", "auto"), call.get("gaps", "auto"), call.get("holes", "auto"))
    audio, rate = _read_for_plan(str(input), restorer.downmix)
    return restorer.restore_audio(audio.T, rate, plan=plan, progress=call.get("progress"), cancel=call.get("cancel"))


def _read_for_plan(path: str, downmix: bool) -> tuple[np.ndarray, int]:
    from .audio import read_audio

    audio, rate = read_audio(path, sample_rate=None)
    return audio, rate


