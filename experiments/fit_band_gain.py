"""Fit a model's band gain table: how much too quiet (or loud) its regenerated band comes out (issue 25).

A network trained with a squared error on the compressed magnitude |S|^0.25 predicts, where it is
unsure, something near the mean of the compressed magnitude; raised back to the 4th power that mean
is below the mean power (Jensen's inequality), so the less predictable the band (the top octaves), the
quieter it comes out. This script measures that deficit of one model on *training* material: clips of
tracks from the given manifests (FluidSynth renders and the wide-band tracks of the training split;
never the held-out packages or the full-band evaluation set), lowpassed as the quality bench does
(Butterworth, order 8) at several cutoffs and restored with the model at its own defaults but without
any band level correction (`band_level="off"`, so neither an older table nor the cap takes part).
For every cutoff and octave above it, the table holds minus the median over clips and channels of the
level bias on the reference's non-empty cells (a2sb.metrics.level_bias, bias_ne_db): the dB by which
restoration raises that octave of the band (a2sb.levels.octave_table_db; `a2sb export --band-gain FILE`).

    python experiments/fit_band_gain.py --model DIR --out FILE [--manifest CSV ...] [--clips N] [--scale S]

`--scale` keeps a fraction of the measured deficit: LSD against lossy references prefers a quieter band
than the power-unbiased one (docs/experiments.md, 2026-12-06), and the bundled model keeps half.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np

from a2sb.audio import read_audio
from a2sb.degrade import lowpass
from a2sb.evaluate import restore_a2sb
from a2sb.metrics import level_bias
from a2sb.representation import SAMPLE_RATE

CUTOFFS = (2500, 4000, 5500, 8000, 11000, 16000)
FIT_BELOW_HZ = 20000.0  # octaves starting above this are slivers below Nyquist: not in the table
GAIN_BOUNDS_DB = (-12.0, 12.0)  # a larger correction would say more about the clips than the model
MANIFESTS = ("data/rendered/rendered.csv", "data/music_wide.csv")


def clips_of(manifest: str, count: int, seconds: float) -> list[tuple[str, float]]:
    """`count` training tracks of `manifest` spread over the list, each with the start of its middle clip."""
    with open(manifest, newline="") as f:
        tracks = [r for r in csv.DictReader(f) if r["split"] == "train"]
    picked = [tracks[int(i)] for i in np.linspace(0, len(tracks) - 1, min(count, len(tracks)))]
    return [(r["file_path"], max(0.0, (float(r["duration"]) - seconds) / 2)) for r in picked]


def read_clip(path: str, start_s: float, seconds: float) -> np.ndarray | None:
    """The clip as stereo at 44.1 kHz (a2sb.audio.read_audio), or None where it is silent."""
    x, _ = read_audio(path, SAMPLE_RATE, start=start_s, duration=seconds)
    x = np.repeat(x, 2, 0) if x.shape[0] == 1 else x
    return x if np.mean(x**2) > 1e-6 else None


def measure(model: str, clips: list[tuple[str, float]], seconds: float) -> list[dict]:
    rows = []
    for k, (path, start) in enumerate(clips, 1):
        x = read_clip(path, start, seconds)
        if x is None:
            continue
        for cutoff in CUTOFFS:
            y = lowpass(x, SAMPLE_RATE, cutoff, "butter", 8)
            restored = restore_a2sb(y, SAMPLE_RATE, cutoff, model=model, band_level="off")
            bias = level_bias(x, restored, cutoff, SAMPLE_RATE, per_channel=True, nonempty=True)
            rows += [{"path": path, "cutoff": cutoff, "bias": [float(v) for v in channel]} for channel in bias]
        print(f"\r{k}/{len(clips)} clips", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def fitted_table(rows: list[dict], scale: float = 1.0) -> dict:
    """Minus the median bias per cutoff and octave, times `scale` (a fraction of the measured deficit)."""
    octaves = []
    for cutoff in CUTOFFS:
        values = []
        for octave in range(max(len(r["bias"]) for r in rows if r["cutoff"] == cutoff)):
            if cutoff * 2**octave >= FIT_BELOW_HZ:
                break
            y = np.array([r["bias"][octave] for r in rows if r["cutoff"] == cutoff and octave < len(r["bias"])])
            y = y[np.isfinite(y)]
            values.append(round(scale * float(np.clip(-np.median(y), *GAIN_BOUNDS_DB)), 2) if len(y) else 0.0)
        octaves.append(values)
    return {"cutoffs_hz": list(CUTOFFS), "octaves_db": octaves}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model folder (restored with band level off)")
    parser.add_argument("--out", required=True, metavar="FILE", help="write the band gain table (JSON) here")
    parser.add_argument("--manifest", action="append", default=None, help=f"default: {', '.join(MANIFESTS)}")
    parser.add_argument("--clips", type=int, default=8, help="clips per manifest (default 8)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--cache", default=None, help="JSON of the measured rows (read if it exists)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="write this fraction of the measured deficit (default 1; the bundled model: 0.5)")
    args = parser.parse_args()
    if args.cache and Path(args.cache).exists():
        rows = json.loads(Path(args.cache).read_text())
    else:
        began = time.time()
        clips = [c for m in (args.manifest or MANIFESTS) for c in clips_of(m, args.clips, args.seconds)]
        rows = measure(args.model, clips, args.seconds)
        print(f"{len(clips)} clips x {len(CUTOFFS)} cutoffs in {time.time() - began:.0f} s", file=sys.stderr)
        if args.cache:
            Path(args.cache).write_text(json.dumps(rows))
    table = fitted_table(rows, args.scale)
    print("| cutoff | " + " | ".join(f"octave {k + 1}" for k in range(max(map(len, table["octaves_db"])))) + " |")
    for cutoff, values in zip(table["cutoffs_hz"], table["octaves_db"]):
        print(f"| {cutoff / 1000:g} kHz | " + " | ".join(f"{v:+.1f} dB" for v in values) + " |")
    print(f"(the table's gain, {args.scale:g} x minus the model's median level bias on non-empty cells)")
    Path(args.out).write_text(json.dumps(table) + "\n")
    print(f"band gain table written to {args.out}: {table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
