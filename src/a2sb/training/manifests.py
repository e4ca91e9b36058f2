"""Training manifests: CSV files `split,file_path,duration[,estimated_true_sr]` (the published format,
plus an optional 4th column), written by `a2sb data manifest` from folders of audio (splits by a
stable hash of each path) and read by the datasets."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import sys
from pathlib import Path

import numpy as np

from ..audio import AUDIO_EXTENSIONS, audio_info, read_audio, temporary_beside
from ..errors import A2SBError

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
MANIFEST_HEADER = ["split", "file_path", "duration", "estimated_true_sr"]


# Bandwidth estimation of long files looks at a few excerpts instead of decoding everything.
EXCERPT_SECONDS = 10.0
EXCERPT_COUNT = 6
SILENCE_RMS = 1e-4  # -80 dBFS: excerpts this quiet say nothing about the bandwidth

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
                if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                path = os.path.join(here, name)
                found.append((path, Path(os.path.relpath(path, root)).as_posix()))
    return found


def estimate_true_sr(path: str, rate: int | None = None, duration: float | None = None) -> int:
    """2 × the detected cutoff of a file, or its sample rate when it is full band (or no detector).

    Files up to a minute are analysed whole; longer ones by EXCERPT_COUNT evenly spread excerpts, and
    the widest band found counts (quiet passages only ever pull a roll-off estimate down)."""
    if rate is None or duration is None:
        info = audio_info(path)
        rate, duration = info.sample_rate, info.duration
    from ..detect import detect_cutoff as detect  # the detector (numpy, scipy) only where it is used

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
