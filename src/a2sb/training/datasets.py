"""Training data: random training crops with on-the-fly degradations, fixed validation items, and a
resumable loader (docs/method.md §Training).

Items are dicts of tensors built on the CPU from waveforms only; the STFT picture, the masks and the
x1 fill are made per batch by `a2sb.training.pictures.build_batch`, on whatever device the batch is on.
Every training item is a pure function of (seed, index), so a loader that starts its index sequence at
step·batch reproduces the batches of an uninterrupted run exactly, with any number of workers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..audio import audio_info, read_audio, resample
from ..errors import A2SBError
from ..representation import HOP, N_ROWS, SAMPLE_RATE, row_of_frequency, stft
from .config import DataConfig
from .manifests import read_manifest

log = logging.getLogger(__name__)

# Degradation kinds of the multinomial draw (docs/method.md §Masks), in the published order, then ours.
BWE, EXTENSION, INPAINT, CODEC = 0, 1, 2, 3

# Audio read around a crop so resampling and filters have no edge transients inside it (44.1 kHz samples).
CROP_MARGIN = 4096

# Evaluation degradation (the published validation setting, docs/method.md §Training).
EVAL_BWE_HZ = 4000.0
EVAL_INPAINT_FRAC = 0.1013


def _read_piece(path: str, info, start: int, length: int, margin: int):
    """Samples [start − margin, start + length + margin) of a file at 44.1 kHz (clipped at the file's
    start, zero-padded past its end) as float32 (channels, n), and where the crop starts in it.

    Only that window is decoded (seeking). For other rates the native window starts on a sample that
    maps to a whole 44.1 kHz sample, so the crop lines up exactly with a resampling of the whole file."""
    native = info.sample_rate
    first = max(start - margin, 0)
    stop = start + length + margin
    if native == SAMPLE_RATE:
        audio, _ = read_audio(path, sample_rate=None, start=first / native, duration=(stop - first) / native)
        offset = start - first
    else:
        g = math.gcd(native, SAMPLE_RATE)
        step_native, step_out = native // g, SAMPLE_RATE // g
        block = first // step_out
        first_native = block * step_native
        frames_native = math.ceil((stop - block * step_out) * native / SAMPLE_RATE) + 1
        audio, _ = read_audio(path, sample_rate=None, start=first_native / native,
                              duration=frames_native / native)
        audio = resample(audio, native, SAMPLE_RATE)
        offset = start - block * step_out
    need = offset + length + margin
    if audio.shape[-1] < need:
        audio = np.pad(audio, ((0, 0), (0, need - audio.shape[-1])))
    return audio, offset


def _normalise_gain(crop: np.ndarray, mode: str, target_db: float, jitter_db: float) -> tuple[float, float]:
    """(scale, shift) so that scale·x + shift is the normalised crop (see DataConfig.normalise)."""
    if crop.size == 0:
        return 1.0, 0.0
    if mode == "published":
        peak = float(np.max(np.abs(crop)))
        scale = 1.0 / peak if peak > 1.0 else 1.0
        if float(np.min(crop)) * scale > 0:  # all-positive signal -> 2x − 1 (docs/method.md §Training)
            return 2.0 * scale, -1.0
        return scale, 0.0
    rms = float(np.sqrt(np.mean(np.square(crop, dtype=np.float64))))
    if rms < 1e-6:
        return 1.0, 0.0
    scale = 10.0 ** ((target_db + jitter_db) / 20.0) / rms
    peak = float(np.max(np.abs(crop))) * scale
    if peak > 1.0:
        scale /= peak
    return scale, 0.0


class _Source:
    """One manifest's usable files for a split."""

    def __init__(self, manifest: str, weight: float, rows: list[dict], config: DataConfig, split: str):
        self.manifest = manifest
        self.weight = weight
        keep = [r for r in rows if r["split"] == split and r["duration"] > 0]
        self.too_narrow = 0
        if config.apply_sr_loss_mask:  # published: files whose estimated band is too narrow are dropped
            wide = [r for r in keep if r["true_sr"] is None or r["true_sr"] >= config.min_true_sr]
            self.too_narrow = len(keep) - len(wide)
            keep = wide
        self.paths = [r["path"] for r in keep]
        self.durations = np.array([r["duration"] for r in keep], dtype=np.float64)
        self.true_rows = np.array([_true_row(r["true_sr"], config) for r in keep], dtype=np.int64)
        self.cumulative = np.cumsum(self.durations)


def _true_row(true_sr: float | None, config: DataConfig) -> int:
    """First row at/above the true Nyquist (F14 with f_c = ⌊sr/2⌋), N_ROWS when not masking."""
    if not config.apply_sr_loss_mask or true_sr is None:
        return N_ROWS
    return min(row_of_frequency(math.floor(true_sr / 2)), N_ROWS)


class _Unreadable(Exception):
    """A training file that cannot be decoded (skipped, unlike errors in our own processing)."""


class _BadFiles:
    """Unreadable files, shared by DataLoader worker processes: the number of failed reads per file in
    shared memory, so a file is reported about once across all workers and the main process sees the
    counts. Lock-free (locks cannot cross from a fork to a spawn context): a rare lost increment or a
    double warning when two workers fail on the same file at once is harmless."""

    def __init__(self, n: int):
        self.fails = mp.RawArray("q", max(n, 1))

    def __getstate__(self):
        # Shared memory travels only to child processes being started; any other copy gets its own.
        from multiprocessing import context

        if context.get_spawning_popen() is None:
            return {"copy": list(self.fails)}
        return {"fails": self.fails}

    def __setstate__(self, state):
        if "copy" in state:
            self.__init__(len(state["copy"]))
            self.fails[:] = state["copy"]
        else:
            self.fails = state["fails"]

    def _view(self) -> np.ndarray:
        return np.frombuffer(self.fails, dtype=np.int64)

    def is_bad(self, i: int) -> bool:
        return bool(self.fails[i])  # a stale read only means one more (failing) try

    def mark(self, i: int, path: str, reason: str) -> None:
        first = self.fails[i] == 0
        self.fails[i] += 1
        if first:
            log.warning("skipping unreadable training file %s: %s", path, reason)

    @property
    def count(self) -> int:
        return int(np.count_nonzero(self._view()))

    @property
    def reads(self) -> int:
        return int(self._view().sum())


class _SegmentSource(Dataset):
    """Shared reading, normalisation and item assembly of the training and validation sets."""

    TAG = 0  # keeps the random streams of different datasets apart

    def __init__(self, config: DataConfig, split: str, seed: int):
        if not config.manifests:
            raise A2SBError("data config: no manifests given")
        self.config = config
        self.split = split
        self.seed = int(seed)
        self.sources = []
        for m in config.manifests:
            if m["weight"] <= 0:
                continue
            source = _Source(m["path"], m["weight"], read_manifest(m["path"]), config, split)
            if source.too_narrow:
                log.info("%s: %d %s files below min_true_sr skipped", m["path"], source.too_narrow, split)
            if not source.paths:
                log.warning("manifest %s has no usable '%s' files", m["path"], split)
                continue
            self.sources.append(source)
        if not self.sources:
            raise A2SBError(f"no usable '{split}' files in the manifests")
        self.offsets = np.cumsum([0] + [len(s.paths) for s in self.sources])
        self.bad = _BadFiles(int(self.offsets[-1]))

    @property
    def bad_files(self) -> int:
        """Number of distinct files found unreadable so far (all workers)."""
        return self.bad.count

    failures = bad_files  # the name the trainer looks for

    @property
    def skipped_reads(self) -> int:
        return self.bad.reads

    def _rng(self, index: int, stream: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(index), self.TAG, stream])

    def _load(self, s: int, f: int, position: float | int, channel_u: float, gain_db: float, lowpass=None,
              codec=None):
        """(clean, degraded, start, context, valid) crop of file f of source s. A float position in [0, 1)
        places the crop uniformly in the file, an int is the start sample (clamped to the file);
        lowpass = (cutoff_hz, kind, order) or None; codec = (name, kbps) or None: the degraded crop is
        then a codec's decode, and a sixth element is added: the decode with up to CODEC_MARGIN
        samples on each side, and where the crop starts in it. `context` is the clean crop with
        config.context_samples on each side (zeros beyond the file), `valid` its [first, stop) of real
        samples. Raises _Unreadable for a damaged file."""
        cfg = self.config
        extra = cfg.context_samples
        path = self.sources[s].paths[f]
        length = cfg.segment_samples
        try:
            info = audio_info(path)
            last = max(int(round(info.frames * SAMPLE_RATE / info.sample_rate)) - length, 0)
            start = position if isinstance(position, int) else int(position * (last + 1))
            start = min(max(start, 0), last)
            piece, offset = _read_piece(path, info, start, length, max(CROP_MARGIN, extra))
            if not np.all(np.isfinite(piece)):
                raise A2SBError("non-finite samples")
        except Exception as err:  # A2SBError, libsndfile and soxr errors: a damaged file
            raise _Unreadable(str(err) or type(err).__name__) from err
        if cfg.channel == "mean" or piece.shape[0] == 1:
            piece = piece.mean(axis=0)
        else:
            piece = piece[min(int(channel_u * piece.shape[0]), piece.shape[0] - 1)]
        crop = piece[offset:offset + length]
        scale, shift = _normalise_gain(crop, cfg.normalise, cfg.loudness_target_db, gain_db)
        piece = (piece.astype(np.float64) * scale + shift).astype(np.float32)
        clean = piece[offset:offset + length]
        context, valid = np.zeros(0, np.float32), (0, 0)
        if extra:
            lead = min(extra, offset)  # the piece starts at the file's start when the crop is near it
            context = np.pad(piece[offset - lead:offset + length + extra], (extra - lead, 0))
            valid = (extra - lead, extra + min(length + extra, int(round(info.frames * SAMPLE_RATE
                                                                         / info.sample_rate)) - start))
        degraded = clean
        if lowpass is not None:
            from ..degrade import lowpass as lowpass_filter

            cutoff_hz, kind, order = lowpass
            # Filter the piece with its margins, so the crop has no filter start-up at its edges.
            degraded = lowpass_filter(piece, SAMPLE_RATE, cutoff_hz, kind=kind, order=order)
            degraded = degraded[offset:offset + length]
        if codec is not None:
            from ..codecs import encode_decode

            # Encode the crop with its margins (as a file would be), so the crop has no codec start-up.
            lead = min(CROP_MARGIN, offset)
            around = piece[offset - lead:offset + length + CROP_MARGIN]
            try:
                decoded, _ = encode_decode(around, SAMPLE_RATE, codec[0], codec[1])
            except A2SBError as err:
                raise A2SBError(f"{codec[0]} at {codec[1]:.0f} kbit/s: {err}") from None
            degraded = decoded[lead:lead + length]
            return (np.ascontiguousarray(clean), np.ascontiguousarray(degraded), start, context, valid,
                    (decoded, lead))
        return np.ascontiguousarray(clean), np.ascontiguousarray(degraded), start, context, valid

    def _item(self, loaded, kind, cutoff_row, gap, true_row, s, f, holes=None) -> dict:
        clean, degraded, start, context, valid = loaded[:5]
        if holes is None:
            holes = torch.zeros(N_ROWS, self.config.frames, dtype=torch.bool)
        return {
            "clean": torch.from_numpy(np.array(clean, dtype=np.float32)),
            "degraded": torch.from_numpy(np.array(degraded, dtype=np.float32)),
            "context": torch.from_numpy(np.array(context, dtype=np.float32)),  # (0,) without the dsp prior
            "context_valid": torch.tensor([int(valid[0]), int(valid[1])], dtype=torch.int64),
            "cutoff_row": torch.tensor(int(cutoff_row), dtype=torch.int64),
            "gap": torch.tensor([int(gap[0]), int(gap[1])], dtype=torch.int64),
            "true_row": torch.tensor(int(true_row), dtype=torch.int64),
            "kind": torch.tensor(int(kind), dtype=torch.int64),  # BWE, EXTENSION, INPAINT or CODEC (logging)
            "holes": holes,  # (N_ROWS, frames) bool: codec holes to generate (all False but for CODEC)
            "source": torch.tensor(int(self.offsets[s] + f), dtype=torch.int64),  # index into all files
            "start": torch.tensor(int(start), dtype=torch.int64),  # crop start, 44.1 kHz samples
        }

    def file_path(self, source_index: int) -> str:
        """Path of the file an item's "source" number refers to."""
        s = int(np.searchsorted(self.offsets, source_index, side="right")) - 1
        return self.sources[s].paths[source_index - int(self.offsets[s])]


def _bwe_rows(min_hz: float, max_hz: float) -> tuple[int, int]:
    """[lo, hi) of the random BWE cutoff row (docs/method.md §Masks, F11)."""
    lo = row_of_frequency(min_hz)
    hi = max(min(row_of_frequency(max_hz), N_ROWS), lo + 1)
    return lo, hi


def _codec_cutoff_and_holes(decoded: np.ndarray, lead: int, length: int, frames: int, true_row: int):
    """(cutoff_row, holes) of a codec item: the row of the band limit `detect.estimate_cutoff` finds on
    the decode (`decoded`: the crop at `lead` with margins; N_ROWS when it finds full band or is
    unsure), capped at true_row, and the codec holes below that row (`holes.hole_cells`) as an
    (N_ROWS, frames) bool tensor of the crop's frames. The holes are found on the decode with whole hops
    of margin on each side (up to holes.MARGIN_FRAMES), so the crop's edge frames see their full
    neighbourhood where the file has audio there."""
    from ..detect import estimate_cutoff
    from ..holes import MARGIN_FRAMES, hole_cells

    cutoff = estimate_cutoff(decoded, SAMPLE_RATE).cutoff
    row = N_ROWS if cutoff is None else min(row_of_frequency(cutoff), N_ROWS)
    row = min(row, true_row)
    before = min(MARGIN_FRAMES, lead // HOP)
    after = min(MARGIN_FRAMES, (decoded.shape[-1] - lead - length) // HOP)
    first = lead - before * HOP
    window = decoded[first:lead + length + after * HOP]
    holes = hole_cells(stft(torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))), row)
    return row, holes[:, before:before + frames].contiguous()


def _inpaint_span(frac: float, position_u: float, random_position: bool, width: int) -> tuple[int, int]:
    """Masked columns [a, b) of a gap covering `frac` of the segment (F12)."""
    start_frac = position_u * (1.0 - frac) if random_position else 0.5 - frac / 2
    return int(start_frac * width), int((start_frac + frac) * width)


class TrainingSet(_SegmentSource):
    """Random training items: item `index` is a pure function of (seed, index).

    Per item: a manifest (∝ weight), a file in it (∝ duration), a crop start (uniform), a channel, a
    gain, and one degradation from the multinomial (BWE, extension, inpaint) of docs/method.md §Masks,
    or (ours, p_codec) a codec round trip: one of the working `codecs` at a bitrate drawn log-uniformly
    from `codec_kbps`, the crop encoded with its margins after the gain; the band above the cutoff the
    detector finds on the decode and the codec holes below it are generated. A BWE item
    takes its known band from a real waveform lowpass with probability p_waveform_lowpass (random kind
    and order, nominal cutoff inside the chosen row, so masking starts at the row and the filter's
    transition band below it stays in the known region as it would in real audio). BWE cutoffs stay
    below the file's true band (estimated_true_sr) when that is narrower than bwe_max_hz: extending a
    band the file never had teaches nothing (its loss mask would be empty). With p_bwe_gap (ours) a BWE
    item also gets an inpainting gap (a band and dropouts together). Unreadable files are
    skipped deterministically (the next draw of the item's own random stream).
    """

    TAG = 0xA25B0
    MAX_ATTEMPTS = 64

    def __init__(self, config: DataConfig, split: str = "train", seed: int = 0):
        super().__init__(config, split, seed)
        weights = np.array([s.weight for s in self.sources])
        self.source_edges = np.cumsum(weights) / weights.sum()
        probs = np.array([config.p_bwe, config.p_extension, config.p_inpaint, config.p_codec], dtype=np.float64)
        self.kind_edges = np.cumsum(probs) / probs.sum()  # with p_codec 0: the edges of the first three kinds
        self.bwe_rows = _bwe_rows(config.bwe_min_hz, config.bwe_max_hz)
        self.lowpass_kinds = _working_lowpass_kinds(config.lowpass_kinds) if config.p_waveform_lowpass else []
        self.codecs = _working_codecs(config.codecs) if config.p_codec > 0 else []

    def __len__(self) -> int:
        return self.config.epoch_length

    def __getitem__(self, index: int) -> dict:
        cfg = self.config
        width = cfg.frames
        # Degradation draws come from their own stream, so a skipped file does not change them.
        rng = self._rng(index, 0)
        kind = min(int(np.searchsorted(self.kind_edges, rng.random(), side="right")), CODEC)
        row_u, row_frac = rng.random(), rng.uniform(0.05, 0.95)
        frac = rng.random() * (cfg.inpaint_max_frac - cfg.inpaint_min_frac) + cfg.inpaint_min_frac
        position_u = rng.random()
        ext_start = int(rng.integers(min(32, width // 4), max(width - 32, width - width // 4)))
        ext_after = rng.random() < 0.5
        use_lowpass = rng.random() < cfg.p_waveform_lowpass and bool(self.lowpass_kinds)
        lp_kind = self.lowpass_kinds[rng.integers(len(self.lowpass_kinds))] if self.lowpass_kinds else None
        lp_order = int(cfg.lowpass_orders[rng.integers(len(cfg.lowpass_orders))])
        gain_db = rng.uniform(-1.0, 1.0) * cfg.loudness_jitter_db
        channel_u = rng.random()
        # Drawn after all the others, so items of the other kinds are what they were before codec items.
        codec_u, kbps_u = rng.random(), rng.random()
        with_gap = rng.random() < cfg.p_bwe_gap  # drawn last too: a BWE item that also has a gap
        codec = None
        if kind == CODEC:
            low, high = cfg.codec_kbps
            kbps = float(np.exp(np.log(low) + kbps_u * (np.log(high) - np.log(low))))
            codec = (self.codecs[min(int(codec_u * len(self.codecs)), len(self.codecs) - 1)], kbps)

        pick = self._rng(index, 1)
        for _ in range(self.MAX_ATTEMPTS):
            s = int(np.searchsorted(self.source_edges, pick.random(), side="right"))
            s = min(s, len(self.sources) - 1)
            source = self.sources[s]
            f = int(np.searchsorted(source.cumulative, pick.random() * source.cumulative[-1], side="right"))
            f = min(f, len(source.paths) - 1)
            position = pick.random()
            if self.bad.is_bad(int(self.offsets[s]) + f):
                continue
            true_row = int(source.true_rows[f])
            cutoff_row, gap, lowpass = N_ROWS, (0, 0), None
            if kind == BWE:
                lo, hi = self.bwe_rows
                if true_row > lo:  # no point extending into a band the file never had
                    hi = min(hi, true_row)
                cutoff_row = lo + int(row_u * (hi - lo))
                if use_lowpass:
                    lowpass = ((cutoff_row + row_frac) * SAMPLE_RATE / (2 * N_ROWS), lp_kind, lp_order)
                if with_gap:
                    gap = _inpaint_span(frac, position_u, cfg.inpaint_random_position, width)
            elif kind == INPAINT:
                gap = _inpaint_span(frac, position_u, cfg.inpaint_random_position, width)
            elif kind == EXTENSION:
                gap = (ext_start, width) if ext_after else (0, ext_start)
            try:
                loaded = self._load(s, f, position, channel_u, gain_db, lowpass, codec)
            except _Unreadable as err:
                self.bad.mark(int(self.offsets[s]) + f, source.paths[f], str(err))
                continue
            holes = None
            if codec is not None:
                decoded, lead = loaded[5]
                cutoff_row, holes = _codec_cutoff_and_holes(decoded, lead, cfg.segment_samples, width, true_row)
            return self._item(loaded, kind, cutoff_row, gap, true_row, s, f, holes)
        raise A2SBError(
            f"no readable file found in {self.MAX_ATTEMPTS} draws ({self.bad_files} files unreadable)"
        )


def _working_lowpass_kinds(kinds: list[str]) -> list[str]:
    """The configured lowpass kinds that work here (degrade may lack one; MP3 needs libsndfile MP3)."""
    from .. import degrade

    known = getattr(degrade, "LOWPASS_KINDS", ())
    probe = np.random.default_rng(0).standard_normal(4096).astype(np.float32) * 0.1
    ok = []
    for kind in kinds:
        try:
            if kind not in known:
                raise A2SBError("unknown kind")
            degrade.lowpass(probe, SAMPLE_RATE, 4010.0, kind=kind, order=4)
        except Exception as err:
            log.warning("lowpass kind %r not available (%s); not used for training", kind, err)
            continue
        ok.append(kind)
    if kinds and not ok:
        log.warning("no lowpass kind available: BWE items use the clean known band only")
    return ok


def _working_codecs(names: list[str]) -> list[str]:
    """The configured codecs this libsndfile can write; an A2SBError when none."""
    from .. import codecs

    ok = [c for c in names if codecs.available(c)]
    for c in names:
        if c not in ok:
            log.warning("codec %r not available in this libsndfile; not used for training", c)
    if not ok:
        raise A2SBError(f"p_codec > 0 but none of the codecs {', '.join(names)} is available here")
    return ok


class ValidationSet(_SegmentSource):
    """Fixed validation items (docs/method.md §Training): per manifest the first `max_files` files of the split, at
    most `max_items` segments, degraded by the evaluation mix (50/50 BWE at 4 kHz / centred inpaint
    gap of 0.1013 of the segment, per item from a fixed seed).

    Segments follow the published layout (segment i starts at i·(T_seg + 1 ms)); when a manifest has
    more segments than `max_items`, they are shared round-robin between files and spread evenly inside
    each file, so many files are covered and no file is represented by its intro only.
    Normalisation as configured (loudness mode without random gain); channel 0 of a multichannel file
    unless channel is "mean".
    """

    TAG = 0xA25B1

    def __init__(self, config: DataConfig, split: str = "validation", max_files: int = 100,
                 max_items: int = 256, seed: int = 0, bwe_hz: float = EVAL_BWE_HZ,
                 inpaint_frac: float = EVAL_INPAINT_FRAC):
        super().__init__(config, split, seed)
        self.bwe_row = row_of_frequency(bwe_hz)
        self.gap = _inpaint_span(inpaint_frac, 0.0, False, config.frames)
        t_seg = config.segment_samples / SAMPLE_RATE + 0.001
        self.items = []  # (source, file, start sample)
        for s, source in enumerate(self.sources):
            counts = [max(int(d // t_seg), 1) for d in source.durations[:max_files]]
            taken = [0] * len(counts)
            budget = max_items
            while budget > 0 and any(t < c for t, c in zip(taken, counts)):
                for k, c in enumerate(counts):
                    if budget > 0 and taken[k] < c:
                        taken[k] += 1
                        budget -= 1
            for f, (m, n) in enumerate(zip(taken, counts)):
                for j in range(m):
                    segment = int(round((j + 0.5) * n / m - 0.5))
                    self.items.append((s, f, int(math.floor(segment * t_seg * SAMPLE_RATE))))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        s, f, start = self.items[index]
        rng = self._rng(index, 0)
        bwe = rng.random() < 0.5
        source = self.sources[s]
        try:
            loaded = self._load(s, f, start, 0.0, 0.0)
        except _Unreadable as err:  # keep the validation set's size fixed: a silent item stands in
            self.bad.mark(int(self.offsets[s]) + f, source.paths[f], str(err))
            silent = np.zeros(self.config.segment_samples, dtype=np.float32)
            extra = self.config.context_samples
            context = np.zeros(self.config.segment_samples + 2 * extra if extra else 0, dtype=np.float32)
            loaded = (silent, silent, start, context, (0, 0))
        kind, cutoff_row, gap = (BWE, self.bwe_row, (0, 0)) if bwe else (INPAINT, N_ROWS, self.gap)
        return self._item(loaded, kind, cutoff_row, gap, source.true_rows[f], s, f)


class StepSampler(Sampler):
    """Batches of indices: step k on rank r gets (k·world + r)·batch + [0, batch). Endless unless
    `steps` is given; disjoint across ranks and steps, so a run resumed at step k sees what it would
    have seen."""

    def __init__(self, batch_size: int, start_step: int = 0, world_size: int = 1, rank: int = 0,
                 steps: int | None = None):
        if batch_size < 1 or world_size < 1 or not 0 <= rank < world_size or start_step < 0:
            raise A2SBError("need batch_size >= 1, world_size >= 1, 0 <= rank < world_size, start_step >= 0")
        self.batch_size, self.start_step = batch_size, start_step
        self.world_size, self.rank, self.steps = world_size, rank, steps

    def __iter__(self):
        step = self.start_step
        while self.steps is None or step < self.start_step + self.steps:
            base = (step * self.world_size + self.rank) * self.batch_size
            yield list(range(base, base + self.batch_size))
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("the step sampler is endless")
        return self.steps


def make_loader(dataset: Dataset, batch_size: int, start_step: int = 0, world_size: int = 1, rank: int = 0,
                workers: int = 0, seed: int = 0, steps: int | None = None, pin_memory: bool = False,
                prefetch_factor: int | None = None) -> DataLoader:
    """Deterministic training loader: batch k (from start_step on) of this rank holds the items
    (k·world_size + rank)·batch_size + j, in order, whatever the number of workers. `seed` seeds the
    loader's own torch generator (worker base seeds); the items depend on the dataset's seed only."""
    sampler = StepSampler(batch_size, start_step, world_size, rank, steps)
    extra = {"prefetch_factor": prefetch_factor} if workers > 0 and prefetch_factor else {}
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(int(seed)), **extra)


def make_validation_loader(dataset: Dataset, batch_size: int, workers: int = 0) -> DataLoader:
    """Validation items in order (no shuffling, last partial batch kept)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
