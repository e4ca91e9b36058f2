"""How well can the level of a missing band be predicted from the band below the cutoff? (issue 13)

The per-octave level bias target asks a bandwidth extension to land within 2 dB of the reference's band
power in every octave above the cutoff. Whatever makes the band, its level has to come from the
passband. This script measures how far that is possible on the project's music: it lowpasses clips of
every track (two 8 s clips per track, Butterworth order 8 as the quality bench), runs the strong SBR,
and takes its per-octave level bias (a2sb.metrics, per channel) as the error of SBR's envelope. Three
predictors of that error are compared per package, leaving each training package out in turn:

- none: SBR's envelope as it is (the error is the bias itself);
- constant: the median error over the other packages' clips (per cutoff and octave);
- regression: least squares on passband features (SBR's fitted slope and three level differences
  between thirds of an octave below 0.9·fc), fitted on the other packages' clips.

The figure is the mean over packages of |mean error over the package's clips| in dB: what a per-package
(or a three-package) level target sees. The held-out packages are then predicted from all training
packages. Clips whose band error exceeds 40 dB (references empty above a lossy coder's lowpass) are
left out of the fits and the figures.

`--fit FILE` writes the constant predictor fitted on all training packages (the median error per cutoff
and octave, octaves starting below 20 kHz) as a band level offset table for `a2sb export
--band-level-offsets` (a2sb.levels.octave_table_db).

    python experiments/level_predictability.py [--cache runs/level_predictability.json] [--fit FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from a2sb.baselines import bwe_sbr
from a2sb.degrade import lowpass
from a2sb.metrics import _octave_bias, spectrogram
from a2sb.representation import SAMPLE_RATE, stft
from a2sb.sbr import sbr_slope

CUTOFFS = (2500, 4000, 5500, 8000, 11000)
CLIP_STARTS = (0.3, 0.7)  # fractions of the track: two clips each
SECONDS = 8.0
OUTLIER_DB = 40.0
FIT_BELOW_HZ = 20000.0  # octaves starting above this are slivers below Nyquist: not in the table
HELD_OUT = "heldout"


def read_clip(path: str, start_fraction: float) -> np.ndarray | None:
    info = sf.info(path)
    n = int(SECONDS * info.samplerate)
    start = int(max(0, info.frames - n) * start_fraction)
    x, rate = sf.read(path, start=start, frames=n, dtype="float32", always_2d=True)
    x = x.T if rate == SAMPLE_RATE else soxr.resample(x, rate, SAMPLE_RATE).T.astype(np.float32)
    x = np.repeat(x, 2, 0) if x.shape[0] == 1 else x
    return x if np.mean(x**2) > 1e-6 else None  # skip silence


def passband_levels(y: np.ndarray, cutoff: float) -> list[float]:
    """Mean log power (dB) of six thirds of an octave below 0.9·fc, nearest first."""
    power = spectrogram(y) ** 2
    freqs = np.arange(power.shape[1]) * SAMPLE_RATE / 2048
    levels = []
    for j in range(1, 7):
        band = (freqs >= 0.9 * cutoff * 2 ** (-j / 3)) & (freqs < 0.9 * cutoff * 2 ** (-(j - 1) / 3))
        levels.append(float(np.mean(10 * np.log10(power[:, band].mean(1) + 1e-20))))
    return levels


def clip_rows(job) -> list[dict]:
    track, start_fraction = job
    x = read_clip(track["path"], start_fraction)
    if x is None:
        return []
    rows = []
    for cutoff in CUTOFFS:
        y = lowpass(x, SAMPLE_RATE, cutoff, "butter", 8)
        s = bwe_sbr(y, SAMPLE_RATE, cutoff)
        slopes = sbr_slope(stft(torch.from_numpy(y).double()).abs().square().mean(-1), cutoff)
        for c in range(x.shape[0]):
            bias = _octave_bias(spectrogram(x[c]), spectrogram(s[c]), cutoff, 2048, SAMPLE_RATE)
            rows.append({"package": track["package"], "split": track["split"], "cutoff": cutoff,
                         "bias": [float(b) for b in bias], "slope": float(slopes[c]),
                         "levels": passband_levels(y[c], cutoff)})
    return rows


def collect(tracks: list[dict]) -> list[dict]:
    torch.set_num_threads(1)
    jobs = [(t, f) for t in tracks for f in CLIP_STARTS]
    rows = []
    with Pool(2) as pool:
        for done, found in enumerate(pool.imap_unordered(clip_rows, jobs), 1):
            rows += found
            print(f"\r{done}/{len(jobs)} clips", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def features(row: dict) -> np.ndarray:
    b = np.array(row["levels"])
    return np.array([1.0, row["slope"], b[0] - b[2], b[0] - b[5], b[2] - b[5]])


def package_errors(rows, cutoff: int, octave: int, held_out: bool):
    """{predictor: [mean error of each test package]}; test packages = each training package in turn,
    or the held-out packages (fitted on all training packages)."""
    use = [r for r in rows if r["cutoff"] == cutoff and octave < len(r["bias"])
           and np.isfinite(r["bias"][octave]) and abs(r["bias"][octave]) < OUTLIER_DB]
    y = np.array([r["bias"][octave] for r in use])
    X = np.array([features(r) for r in use])
    package = np.array([r["package"] for r in use])
    test_set = np.array([r["split"] == HELD_OUT for r in use])
    tests = sorted(set(package[test_set])) if held_out else sorted(set(package[~test_set]))
    out = {"none": [], "constant": [], "regression": []}
    for p in tests:
        train, test = ~test_set & (package != p), package == p
        w = np.linalg.lstsq(X[train], y[train], rcond=None)[0]
        out["none"].append(float(np.mean(y[test])))
        out["constant"].append(float(np.mean(y[test]) - np.median(y[train])))
        out["regression"].append(float(np.mean(y[test] - X[test] @ w)))
    return out, float(np.std(y))


def fitted_table(rows) -> dict:
    """Median error per cutoff and octave over the training packages' clips (offset table)."""
    octaves = []
    for cutoff in CUTOFFS:
        use = [r for r in rows if r["cutoff"] == cutoff and r["split"] != HELD_OUT]
        values = []
        for octave in range(len(use[0]["bias"])):
            if cutoff * 2**octave >= FIT_BELOW_HZ:
                break
            y = np.array([r["bias"][octave] for r in use])
            values.append(round(float(np.median(y[np.isfinite(y) & (np.abs(y) < OUTLIER_DB)])), 2))
        octaves.append(values)
    return {"cutoffs_hz": list(CUTOFFS), "octaves_db": octaves}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", default="data/tracks.json")
    parser.add_argument("--cache", default=None, help="JSON of the collected rows (read if it exists)")
    parser.add_argument("--fit", default=None, metavar="FILE", help="write the offset table (JSON) here")
    args = parser.parse_args()
    if args.cache and Path(args.cache).exists():
        rows = json.loads(Path(args.cache).read_text())
    else:
        rows = collect(json.loads(Path(args.tracks).read_text()))
        if args.cache:
            Path(args.cache).write_text(json.dumps(rows))
    print(f"{len(rows)} clip-channel-cutoff rows from {len({r['package'] for r in rows})} packages\n")
    print("| cutoff | octave | clip spread (sd) dB | training packages, left out in turn: none / constant / "
          "regression | held-out packages: none / constant / regression | held-out, error of the 3-package mean |")
    print("|---|---|---:|---:|---:|---:|")
    for cutoff in CUTOFFS:
        for octave in range(len(next(r for r in rows if r["cutoff"] == cutoff)["bias"])):
            lopo, spread = package_errors(rows, cutoff, octave, held_out=False)
            held, _ = package_errors(rows, cutoff, octave, held_out=True)
            low, high = cutoff * 2**octave / 1000, min(cutoff * 2 ** (octave + 1), SAMPLE_RATE / 2) / 1000
            fmt = " / ".join
            print(f"| {cutoff / 1000:g} kHz | {low:g}–{high:g} kHz | {spread:.1f} | "
                  f"{fmt(f'{np.mean(np.abs(v)):.1f}' for v in lopo.values())} | "
                  f"{fmt(f'{np.mean(np.abs(v)):.1f}' for v in held.values())} | "
                  f"{fmt(f'{np.mean(v):+.1f}' for v in held.values())} |")
    if args.fit:
        table = fitted_table(rows)
        Path(args.fit).write_text(json.dumps(table) + "\n")
        print(f"\noffset table (median error per octave, training packages) written to {args.fit}: {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
