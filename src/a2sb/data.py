"""Training data: manifests, random training crops with on-the-fly degradations, fixed validation items,
the batch -> (x0, x1, mask, loss_mask) step, and a resumable loader (SPEC §1.5, §2, §2.5, §2.6).

Manifests are CSV files `split,file_path,duration[,estimated_true_sr]` (the published format, plus an
optional 4th column). Items are dicts of tensors built on the CPU from waveforms only; the STFT picture,
the masks and the noise fill are made per batch by `build_batch`, on whatever device the batch is on.

Every training item is a pure function of (seed, index), so a loader that starts its index sequence at
step·batch reproduces the batches of an uninterrupted run exactly, with any number of workers.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import logging
import math
import multiprocessing as mp
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .audio import audio_info, read_audio, resample, temporary_beside
from .errors import A2SBError, reject_unknown_keys
from .masks import FILL_NOISE
from .prior import PRIOR_KINDS, Prior, fill, gap_runs, similarity_spectrum, widen
from .representation import HOP, N_ROWS, SAMPLE_RATE, num_frames, row_of_frequency, spec_to_representation, stft
from .sbr import sbr_spectrum

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MANIFEST_HEADER = ["split", "file_path", "duration", "estimated_true_sr"]

# Extensions libsndfile (1.1+, with MP3/Opus) can decode. RAW is left out: it needs a format to be given.
AUDIO_EXTENSIONS = frozenset(
    "wav wave flac ogg oga opus mp3 aif aiff aifc au snd caf w64 rf64 avr htk ircam sf mat mpc nist sph "
    "paf pvf sd2 sds svx 8svx voc wve xi".split()
)

# Degradation kinds of the multinomial draw (SPEC §2.4), in the published order.
BWE, EXTENSION, INPAINT = 0, 1, 2

# Audio read around a crop so resampling and filters have no edge transients inside it (44.1 kHz samples).
CROP_MARGIN = 4096

# Evaluation degradation (SPEC §2.6, `eval_transforms_aug`).
EVAL_BWE_HZ = 4000.0
EVAL_INPAINT_FRAC = 0.1013

# Bandwidth estimation of long files looks at a few excerpts instead of decoding everything.
EXCERPT_SECONDS = 10.0
EXCERPT_COUNT = 6
SILENCE_RMS = 1e-4  # -80 dBFS: excerpts this quiet say nothing about the bandwidth


# --------------------------------------------------------------------------------------------------
# Configuration


def _default_kinds() -> list[str]:
    return ["butter", "cheby1", "ellip", "fir", "resample", "brickwall"]


@dataclass
class DataConfig:
    """Data settings of a training run. Defaults are the published pretraining settings (SPEC §2.6)
    except `p_waveform_lowpass` (0 in the published code: its known band is always the clean signal).

    manifests: [{"path": CSV, "weight": w}, ...]; a manifest is picked with probability ∝ weight, then a
        file in it with probability ∝ duration.
    normalise: "published" = per crop, divide by the peak if it exceeds 1, then map an all-positive
        signal x to 2x − 1 (SPEC §1.5.3); "loudness" = scale the crop to `loudness_target_db` dBFS RMS
        plus a uniform random gain of ±`loudness_jitter_db` dB (none for validation), then scale down
        if the peak exceeds 1 (so loud, peaky crops end a little under the target). Silent crops are
        left as they are.
    channel: "random" = one channel of a multichannel file, drawn per item; "mean" = the downmix.
    """

    manifests: list = field(default_factory=list)
    segment_samples: int = 130560
    sample_rate: int = SAMPLE_RATE
    p_bwe: float = 0.5
    p_extension: float = 0.0
    p_inpaint: float = 0.5
    bwe_min_hz: float = 2000.0
    bwe_max_hz: float = 16000.0
    inpaint_min_frac: float = 0.03378
    inpaint_max_frac: float = 0.5404
    inpaint_random_position: bool = True
    fill_noise: float = FILL_NOISE
    prior: str = "noise"  # how x1's region to generate is filled: noise (published) | dsp (a2sb.prior)
    prior_context_s: float = 4.0  # dsp prior: audio read on each side of a crop for the similarity search
    p_waveform_lowpass: float = 0.5
    lowpass_kinds: list = field(default_factory=_default_kinds)
    lowpass_orders: list = field(default_factory=lambda: [4, 8, 12])
    apply_sr_loss_mask: bool = True
    min_true_sr: int = 32000
    normalise: str = "published"
    loudness_target_db: float = -20.0
    loudness_jitter_db: float = 6.0
    channel: str = "random"
    workers: int = 4
    epoch_length: int = 10_000_000  # virtual epoch: items are drawn, so any length works

    def __post_init__(self) -> None:
        self.manifests = [_manifest_entry(m) for m in (self.manifests or [])]
        self.lowpass_kinds = [str(k) for k in self.lowpass_kinds]
        self.lowpass_orders = [int(o) for o in self.lowpass_orders]
        self.validate()

    def validate(self) -> None:
        def bad(msg: str):
            raise A2SBError(f"data config: {msg}")

        if self.sample_rate != SAMPLE_RATE:
            bad(f"sample_rate must be {SAMPLE_RATE} (the representation is fixed to it)")
        if self.segment_samples < HOP:
            bad(f"segment_samples must be at least {HOP}")
        probs = (self.p_bwe, self.p_extension, self.p_inpaint)
        if min(probs) < 0 or sum(probs) <= 0:
            bad("p_bwe, p_extension, p_inpaint must be >= 0 with a positive sum")
        if not 0 < self.bwe_min_hz <= self.bwe_max_hz:
            bad("need 0 < bwe_min_hz <= bwe_max_hz")
        if not 0 <= self.inpaint_min_frac <= self.inpaint_max_frac <= 1:
            bad("need 0 <= inpaint_min_frac <= inpaint_max_frac <= 1")
        if not 0 <= self.p_waveform_lowpass <= 1:
            bad("p_waveform_lowpass must be in [0, 1]")
        if self.p_waveform_lowpass > 0 and (not self.lowpass_kinds or not self.lowpass_orders):
            bad("p_waveform_lowpass > 0 needs lowpass_kinds and lowpass_orders")
        if any(o < 1 for o in self.lowpass_orders):
            bad("lowpass_orders must be >= 1")
        if self.normalise not in ("published", "loudness"):
            bad(f"normalise must be 'published' or 'loudness', got {self.normalise!r}")
        if self.channel not in ("random", "mean"):
            bad(f"channel must be 'random' or 'mean', got {self.channel!r}")
        if self.prior not in PRIOR_KINDS:
            bad(f"prior must be one of {', '.join(PRIOR_KINDS)}, got {self.prior!r}")
        if self.fill_noise < 0 or self.prior_context_s < 0:
            bad("fill_noise and prior_context_s must be >= 0")
        if self.workers < 0 or self.epoch_length < 1:
            bad("workers must be >= 0 and epoch_length >= 1")

    @classmethod
    def from_dict(cls, d: dict | None) -> DataConfig:
        d = dict(d or {})
        reject_unknown_keys(d, [f.name for f in dataclasses.fields(cls)], "data config: unknown setting(s)")
        return cls(**d)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def frames(self) -> int:
        return num_frames(self.segment_samples)

    def x1_prior(self) -> Prior:
        return Prior(self.prior, self.fill_noise, self.prior_context_s)

    @property
    def context_samples(self) -> int:
        """Audio on each side of a crop that items carry for the dsp prior (whole hops; 0 = none)."""
        if self.prior != "dsp":
            return 0
        return int(round(self.prior_context_s * SAMPLE_RATE / HOP)) * HOP


def _manifest_entry(m) -> dict:
    if isinstance(m, (str, os.PathLike)):
        return {"path": str(m), "weight": 1.0}
    if not isinstance(m, dict) or "path" not in m:
        raise A2SBError(f"data config: a manifest is a path or {{path, weight}}, got {m!r}")
    extra = set(m) - {"path", "weight"}
    if extra:
        raise A2SBError(f"data config: unknown manifest setting(s) {', '.join(sorted(extra))}")
    weight = float(m.get("weight", 1.0))
    if weight < 0:
        raise A2SBError(f"data config: manifest weight must be >= 0, got {weight}")
    return {"path": str(m["path"]), "weight": weight}


def load_data_config(path: str | os.PathLike) -> DataConfig:
    """A DataConfig from a YAML file (the mapping itself, or under a top-level `data:` key)."""
    import yaml

    try:
        with open(path) as f:
            d = yaml.safe_load(f) or {}
    except OSError as err:
        raise A2SBError(f"cannot read data config {path}: {err.strerror}") from None
    if isinstance(d, dict) and isinstance(d.get("data"), dict):
        d = d["data"]
    return DataConfig.from_dict(d)


# --------------------------------------------------------------------------------------------------
# Manifests


def split_of(key: str, fractions=(0.9, 0.05, 0.05), seed: int = 0) -> str:
    """Deterministic split of a file/folder key: a hash of (seed, key) read as a number in [0, 1).

    Adding files never moves existing ones to another split (unlike a shuffled list)."""
    fractions = _check_fractions(fractions)
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    edges = np.cumsum(fractions) / sum(fractions)
    return SPLITS[min(int(np.searchsorted(edges, u, side="right")), len(SPLITS) - 1)]


def _check_fractions(fractions) -> tuple[float, float, float]:
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise A2SBError(f"split fractions must be three numbers >= 0 (train, validation, test): {fractions}")
    return fractions


def scan_audio(dirs) -> list[tuple[str, str]]:
    """(absolute path, path relative to its scanned folder) of the audio files under `dirs`, sorted.

    Hidden files and folders are ignored (e.g. macOS '._x.wav' resource forks, which look like audio);
    symbolic links are followed once."""
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    found = []
    for root in dirs:
        root = os.path.abspath(root)
        if not os.path.isdir(root):
            raise A2SBError(f"no such folder: {root}")
        seen = set()
        for here, subdirs, files in os.walk(root, followlinks=True):
            real = os.path.realpath(here)
            if real in seen:  # a link loop
                subdirs[:] = []
                continue
            seen.add(real)
            subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
            for name in sorted(files):
                if name.startswith(".") or Path(name).suffix.lower().lstrip(".") not in AUDIO_EXTENSIONS:
                    continue
                path = os.path.join(here, name)
                found.append((path, Path(os.path.relpath(path, root)).as_posix()))
    return found


_DETECT = None


def _detector():
    """a2sb.detect.detect_cutoff, or None while that module does not exist."""
    global _DETECT
    if _DETECT is None:
        try:
            from .detect import detect_cutoff
        except ImportError:
            detect_cutoff = False
        _DETECT = detect_cutoff
    return _DETECT or None


def estimate_true_sr(path: str, rate: int | None = None, duration: float | None = None) -> int:
    """2 × the detected cutoff of a file, or its sample rate when it is full band (or no detector).

    Files up to a minute are analysed whole; longer ones by EXCERPT_COUNT evenly spread excerpts, and
    the widest band found counts (quiet passages only ever pull a roll-off estimate down)."""
    if rate is None or duration is None:
        info = audio_info(path)
        rate, duration = info.sample_rate, info.duration
    detect = _detector()
    if detect is None:
        return int(rate)
    if duration <= EXCERPT_SECONDS * EXCERPT_COUNT:
        windows = [(0.0, None)]
    else:
        step = duration / EXCERPT_COUNT
        windows = [((k + 0.5) * step - EXCERPT_SECONDS / 2, EXCERPT_SECONDS) for k in range(EXCERPT_COUNT)]
    widest = None
    for start, length in windows:
        audio, _ = read_audio(path, sample_rate=None, start=start, duration=length)
        if audio.size == 0 or float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) < SILENCE_RMS:
            continue
        try:
            cutoff = detect(audio, rate)
        except A2SBError:
            raise
        except Exception as err:  # a detector bug must not stop a long scan; full band is the safe answer
            log.warning("bandwidth detection failed on %s (%s); assuming full band", path, err)
            return int(rate)
        if cutoff is None:
            return int(rate)
        widest = cutoff if widest is None else max(widest, cutoff)
    if widest is None:
        return int(rate)
    return int(min(round(2 * widest), rate))


def _probe(job: tuple[str, bool]):
    """(duration, true_sr) of a file, or the reason it cannot be used (runs in worker processes)."""
    path, bandwidth = job
    try:
        info = audio_info(path)
        if info.frames <= 0 or info.sample_rate <= 0:
            return "empty file"
        true_sr = estimate_true_sr(path, info.sample_rate, info.duration) if bandwidth else info.sample_rate
        return info.duration, true_sr
    except A2SBError as err:
        return str(err)
    except Exception as err:  # libsndfile/soxr raise assorted types on damaged data
        return f"{type(err).__name__}: {err}"


def write_manifest(
    dirs,
    out_csv: str | os.PathLike,
    split_fractions=(0.9, 0.05, 0.05),
    by: str = "file",
    seed: int = 0,
    estimate_bandwidth: bool = True,
    workers: int = 1,
    verbose: bool = True,
) -> dict:
    """Scan `dirs` for audio and write a 4-column manifest (absolute paths) to `out_csv`.

    The split of a file is a hash of its path relative to the scanned folder (`by="file"`) or of that
    path's folder (`by="folder"`, keeps albums/sessions together so no recording leaks across splits).
    estimated_true_sr = 2 × detected cutoff, or the file's rate if full band / no detector.
    Unreadable files are skipped with a warning. Returns {"rows", "splits", "skipped"}.
    """
    fractions = _check_fractions(split_fractions)
    if by not in ("file", "folder"):
        raise A2SBError(f"--by must be 'file' or 'folder', got {by!r}")
    out_csv = Path(out_csv)
    if not out_csv.parent.exists():
        raise A2SBError(f"output folder does not exist: {out_csv.parent}")
    files = scan_audio(dirs)
    if not files:
        raise A2SBError(f"no audio files found under {', '.join(map(str, dirs))}")
    if estimate_bandwidth and _detector() is None and verbose:
        print("a2sb: bandwidth detector not available; estimated_true_sr = file sample rate", file=sys.stderr)

    jobs = [(path, estimate_bandwidth) for path, _ in files]
    results = _map(_probe, jobs, workers, verbose)
    rows, skipped, counts = [], [], dict.fromkeys(SPLITS, 0)
    for (path, rel), result in zip(files, results):
        if isinstance(result, str):
            skipped.append(path)
            print(f"a2sb: warning: skipping {path}: {result}", file=sys.stderr)
            continue
        duration, true_sr = result
        key = rel if by == "file" else Path(rel).parent.as_posix()
        split = split_of(key, fractions, seed)
        counts[split] += 1
        rows.append([split, path, f"{duration:.6f}", str(int(true_sr))])
    if not rows:
        raise A2SBError(f"none of the {len(files)} audio files could be read")

    tmp = temporary_beside(out_csv)  # not mkstemp: the manifest gets 0666 less the umask, not 0600
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(MANIFEST_HEADER)
            writer.writerows(rows)
        os.replace(tmp, out_csv)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if verbose:
        parts = ", ".join(f"{counts[s]} {s}" for s in SPLITS)
        print(f"wrote {out_csv}: {len(rows)} files ({parts}); skipped {len(skipped)} unreadable")
    return {"rows": len(rows), "splits": counts, "skipped": skipped}


def _map(fn, jobs, workers: int, verbose: bool):
    from tqdm import tqdm

    bar = dict(total=len(jobs), desc="scanning", unit="file", disable=None if verbose else True)
    if workers <= 1 or len(jobs) < 2:
        return [fn(j) for j in tqdm(jobs, **bar)]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(fn, jobs, chunksize=8), **bar))


def read_manifest(path: str | os.PathLike) -> list[dict]:
    """Rows {split, path, duration, true_sr} of a 3- or 4-column manifest (true_sr None when absent).

    A header line (first cell 'split') is skipped. Relative file paths are taken relative to the current
    folder like the published loader, unless the first one does not exist there but does relative to
    the manifest's folder; then all are taken relative to the manifest's folder."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            lines = list(csv.reader(f))
    except OSError as err:
        raise A2SBError(f"cannot read manifest {path}: {err.strerror}") from None
    rows = []
    base = None
    for number, cells in enumerate(lines, 1):
        cells = [c.strip() for c in cells]
        if not cells or not any(cells):
            continue
        if number == 1 and cells[0].lower() == "split":
            continue
        if len(cells) not in (3, 4):
            raise A2SBError(f"{path}:{number}: expected 3 or 4 columns, got {len(cells)}")
        split, file_path = cells[0], cells[1]
        try:
            duration = float(cells[2])
            true_sr = float(cells[3]) if len(cells) == 4 and cells[3] else None
        except ValueError:
            raise A2SBError(f"{path}:{number}: duration/estimated_true_sr must be numbers") from None
        if not os.path.isabs(file_path):
            if base is None:
                here = os.path.exists(file_path) or not (path.parent / file_path).exists()
                base = Path(".") if here else path.parent
            file_path = str(base / file_path)
        rows.append({"split": split, "path": file_path, "duration": duration, "true_sr": true_sr})
    return rows


# --------------------------------------------------------------------------------------------------
# Reading crops


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
        if float(np.min(crop)) * scale > 0:  # all-positive signal -> 2x − 1 (SPEC §1.5.3)
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


# --------------------------------------------------------------------------------------------------
# Datasets


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

    def _load(self, s: int, f: int, position: float | int, channel_u: float, gain_db: float, lowpass=None):
        """(clean, degraded, start, context, valid) crop of file f of source s. A float position in [0, 1)
        places the crop uniformly in the file, an int is the start sample (clamped to the file);
        lowpass = (cutoff_hz, kind, order) or None. `context` is the clean crop with
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
            from .degrade import lowpass as lowpass_filter

            cutoff_hz, kind, order = lowpass
            # Filter the piece with its margins, so the crop has no filter start-up at its edges.
            degraded = lowpass_filter(piece, SAMPLE_RATE, cutoff_hz, kind=kind, order=order)
            degraded = degraded[offset:offset + length]
        return np.ascontiguousarray(clean), np.ascontiguousarray(degraded), start, context, valid

    def _item(self, loaded, kind, cutoff_row, gap, true_row, s, f) -> dict:
        clean, degraded, start, context, valid = loaded
        return {
            "clean": torch.from_numpy(np.array(clean, dtype=np.float32)),
            "degraded": torch.from_numpy(np.array(degraded, dtype=np.float32)),
            "context": torch.from_numpy(np.array(context, dtype=np.float32)),  # (0,) without the dsp prior
            "context_valid": torch.tensor([int(valid[0]), int(valid[1])], dtype=torch.int64),
            "cutoff_row": torch.tensor(int(cutoff_row), dtype=torch.int64),
            "gap": torch.tensor([int(gap[0]), int(gap[1])], dtype=torch.int64),
            "true_row": torch.tensor(int(true_row), dtype=torch.int64),
            "kind": torch.tensor(int(kind), dtype=torch.int64),  # BWE, EXTENSION or INPAINT (for logging)
            "source": torch.tensor(int(self.offsets[s] + f), dtype=torch.int64),  # index into all files
            "start": torch.tensor(int(start), dtype=torch.int64),  # crop start, 44.1 kHz samples
        }

    def file_path(self, source_index: int) -> str:
        """Path of the file an item's "source" number refers to."""
        s = int(np.searchsorted(self.offsets, source_index, side="right")) - 1
        return self.sources[s].paths[source_index - int(self.offsets[s])]


def _bwe_rows(min_hz: float, max_hz: float) -> tuple[int, int]:
    """[lo, hi) of the random BWE cutoff row (SPEC §2.1)."""
    lo = row_of_frequency(min_hz)
    hi = max(min(row_of_frequency(max_hz), N_ROWS), lo + 1)
    return lo, hi


def _inpaint_span(frac: float, position_u: float, random_position: bool, width: int) -> tuple[int, int]:
    """Masked columns [a, b) of a gap covering `frac` of the segment (F12)."""
    start_frac = position_u * (1.0 - frac) if random_position else 0.5 - frac / 2
    return int(start_frac * width), int((start_frac + frac) * width)


class TrainingSet(_SegmentSource):
    """Random training items: item `index` is a pure function of (seed, index).

    Per item: a manifest (∝ weight), a file in it (∝ duration), a crop start (uniform), a channel, a
    gain, and one degradation from the multinomial (BWE, extension, inpaint) of SPEC §2.4. A BWE item
    takes its known band from a real waveform lowpass with probability p_waveform_lowpass (random kind
    and order, nominal cutoff inside the chosen row, so masking starts at the row and the filter's
    transition band below it stays in the known region as it would in real audio). BWE cutoffs stay
    below the file's true band (estimated_true_sr) when that is narrower than bwe_max_hz: extending a
    band the file never had teaches nothing (its loss mask would be empty). Unreadable files are
    skipped deterministically (the next draw of the item's own random stream).
    """

    TAG = 0xA25B0
    MAX_ATTEMPTS = 64

    def __init__(self, config: DataConfig, split: str = "train", seed: int = 0):
        super().__init__(config, split, seed)
        weights = np.array([s.weight for s in self.sources])
        self.source_edges = np.cumsum(weights) / weights.sum()
        probs = np.array([config.p_bwe, config.p_extension, config.p_inpaint], dtype=np.float64)
        self.kind_edges = np.cumsum(probs) / probs.sum()
        self.bwe_rows = _bwe_rows(config.bwe_min_hz, config.bwe_max_hz)
        self.lowpass_kinds = _working_lowpass_kinds(config.lowpass_kinds) if config.p_waveform_lowpass else []

    def __len__(self) -> int:
        return self.config.epoch_length

    def __getitem__(self, index: int) -> dict:
        cfg = self.config
        width = cfg.frames
        # Degradation draws come from their own stream, so a skipped file does not change them.
        rng = self._rng(index, 0)
        kind = min(int(np.searchsorted(self.kind_edges, rng.random(), side="right")), INPAINT)
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
            elif kind == INPAINT:
                gap = _inpaint_span(frac, position_u, cfg.inpaint_random_position, width)
            else:
                gap = (ext_start, width) if ext_after else (0, ext_start)
            try:
                loaded = self._load(s, f, position, channel_u, gain_db, lowpass)
            except _Unreadable as err:
                self.bad.mark(int(self.offsets[s]) + f, source.paths[f], str(err))
                continue
            return self._item(loaded, kind, cutoff_row, gap, true_row, s, f)
        raise A2SBError(
            f"no readable file found in {self.MAX_ATTEMPTS} draws ({self.bad_files} files unreadable)"
        )


def _working_lowpass_kinds(kinds: list[str]) -> list[str]:
    """The configured lowpass kinds that work here (degrade may lack one; MP3 needs libsndfile MP3)."""
    from . import degrade

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


class ValidationSet(_SegmentSource):
    """Fixed validation items (SPEC §2.6): per manifest the first `max_files` files of the split, at
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


# --------------------------------------------------------------------------------------------------
# Batches and loaders


def build_batch(batch: dict, noise: torch.Tensor | None = None, prior: Prior | None = None,
                generator: torch.Generator | None = None) -> dict:
    """Collated items -> {"x0", "x1", "mask", "loss_mask"} on the batch's device.

    x0 = picture of clean (B×3×H×W); mask (B×1×H×W, 1 = generate) = rows ≥ cutoff_row ∪ columns in
    [gap); loss_mask = mask × (rows < true_row) (F14); x1 = picture of degraded with the hole filled
    as `prior` says (default: the published white noise of std 0.5 in all 3 channels, F13; the dsp
    prior puts the DSP estimate of `dsp_estimate` under the noise). Masks have one channel: expand to 3
    before normalising a loss by their sum if the published normalisation (F21) is wanted.
    """
    prior = prior or Prior()
    clean = batch["clean"].float()
    degraded = batch.get("degraded")
    spec = stft(clean)
    x0 = spec_to_representation(spec)
    xd, spec_d = x0, spec
    if degraded is not None:
        degraded = degraded.to(clean.device, torch.float32)
        differs = (degraded != clean).any(dim=-1)
        if bool(differs.any()):  # only items whose waveform was degraded need a second STFT
            spec_d = spec.clone()
            spec_d[differs] = stft(degraded[differs])
            xd = x0.clone()
            xd[differs] = spec_to_representation(spec_d[differs])
    b, _, h, w = x0.shape
    device = x0.device
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    cutoff = batch["cutoff_row"].to(device).view(-1, 1, 1)
    gap = batch["gap"].to(device).view(-1, 2)
    span = (cols >= gap[:, 0].view(-1, 1, 1)) & (cols < gap[:, 1].view(-1, 1, 1))
    mask = ((rows >= cutoff) | span).unsqueeze(1).to(x0.dtype)
    keep = (rows < batch["true_row"].to(device).view(-1, 1, 1)).unsqueeze(1)
    loss_mask = mask * keep.to(x0.dtype)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    estimate = dsp_estimate(spec_d, batch) if prior.informative else None
    x1 = fill(xd, mask, noise.to(device, x0.dtype), prior, estimate)
    return {"x0": x0, "x1": x1, "mask": mask, "loss_mask": loss_mask}


def cutoff_of_row(row: int) -> float:
    """A cutoff frequency whose first generated row is `row` (the middle of the row's bin)."""
    return (row + 0.5) * SAMPLE_RATE / (2 * N_ROWS)


def dsp_estimate(spec_d: torch.Tensor, batch: dict) -> torch.Tensor:
    """Picture of the DSP estimate of each item's hole (B×3×H×W, zero where there is none): spectral
    band replication of the degraded STFT above the cutoff row, and in a gap the best-matching passage
    of the item's context audio (`batch["context"]`: the crop with the same audio on each side)."""
    b, _, w = spec_d.shape
    estimate = torch.zeros(b, 3, N_ROWS, w, device=spec_d.device)
    context = batch.get("context")
    pad = (context.shape[-1] - batch["clean"].shape[-1]) // 2 if context is not None else 0
    for i in range(b):
        row = int(batch["cutoff_row"][i])
        first, stop = (int(v) for v in batch["gap"][i])
        if row < N_ROWS:
            estimate[i] = spec_to_representation(sbr_spectrum(spec_d[i], cutoff_of_row(row)))
        if stop > first and pad > 0:
            spec_c = stft(context[i].to(spec_d.device, torch.float32))
            offset = pad // HOP  # context frame offset + j is crop frame j (whole hops)
            lo, hi = (int(v) for v in batch["context_valid"][i])
            centres = torch.arange(spec_c.shape[-1], device=spec_c.device) * HOP
            # frames whose window reaches the zeros beyond the file are no source or template either
            outside = (centres < lo + HOP * 2) | (centres >= hi - HOP * 2)
            gap_cols = torch.zeros_like(outside)
            gap_cols[first + offset:stop + offset] = True
            filled, got = similarity_spectrum(spec_c[None], widen(gap_cols) | outside, gap_runs(gap_cols))
            if bool(got.any()):
                estimate[i, :, :, first:stop] = spec_to_representation(filled[0, :, first + offset:stop + offset])
    return estimate


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


# --------------------------------------------------------------------------------------------------
# Command line: `a2sb data manifest`


def _parse_split(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 0 or sum(parts) <= 0:
        raise argparse.ArgumentTypeError(f"expected three fractions like 0.9,0.05,0.05, got {text!r}")
    return parts


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("data", help="prepare training data (manifests)",
                                   description="Prepare training data.")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    m = actions.add_parser(
        "manifest",
        help="scan folders of audio and write a training manifest (CSV)",
        description="Scan DIR... for audio files and write split,file_path,duration,estimated_true_sr. "
        "Splits are decided by a hash of each file's (or folder's) relative path, so they are stable "
        "when files are added.",
    )
    m.add_argument("dirs", nargs="+", metavar="DIR")
    m.add_argument("-o", "--output", required=True, metavar="CSV")
    m.add_argument("--by", choices=["file", "folder"], default="file",
                   help="split unit: single files, or whole folders kept together (default file)")
    m.add_argument("--seed", type=int, default=0, help="seed of the split hash (default 0)")
    m.add_argument("--split", type=_parse_split, default=(0.9, 0.05, 0.05), metavar="TR,VA,TE",
                   help="train,validation,test fractions (default 0.9,0.05,0.05)")
    m.add_argument("--no-bandwidth", action="store_true",
                   help="do not estimate each file's true bandwidth (faster: headers only)")
    m.add_argument("--workers", type=int, default=1, help="processes for reading files (default 1)")
    m.set_defaults(func=_manifest_command)


def _manifest_command(args) -> int:
    write_manifest(args.dirs, args.output, split_fractions=args.split, by=args.by, seed=args.seed,
                   estimate_bandwidth=not args.no_bandwidth, workers=args.workers)
    return 0
