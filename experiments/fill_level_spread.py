"""How far does music's own level in a short gap depart from the level around it? (safe gap fills)

`a2sb.levels.make_fill_safe` brings a gap fill's level per octave towards the level of the input within
FILL_CONTEXT_SECONDS on each side of the gap. A bound tighter than music's own spread pulls a right fill
away from the truth. This script measures that spread on *training* tracks (the training split of the
given manifests; never the held-out packages): for windows of `--gap` seconds spread over each track,
the difference (dB) between the window's power per octave (a2sb.levels.band_power, octave_edges) and the
power of its neighbourhood (the context without the window), and prints its percentiles per octave,
with the share of windows outside ±1.5 dB of the neighbourhood and the share outside the range that the
two sides span (from 1.5 dB under the quieter side's level to 1.5 dB over the louder's).

    python experiments/fill_level_spread.py [--manifest CSV ...] [--tracks N] [--gap 0.3]
"""

from __future__ import annotations

import argparse
import csv

import numpy as np

from a2sb.audio import read_audio
from a2sb.levels import FILL_CONTEXT_SECONDS, band_power, octave_edges
from a2sb.representation import N_FFT, SAMPLE_RATE

MANIFESTS = ("data/music_wide.csv", "data/rendered/rendered.csv")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", action="append", default=None, help=f"default: {', '.join(MANIFESTS)}")
    parser.add_argument("--tracks", type=int, default=20, help="tracks per manifest (default 20)")
    parser.add_argument("--windows", type=int, default=12, help="windows per track (default 12)")
    parser.add_argument("--gap", type=float, default=0.3, help="window length in seconds (default 0.3)")
    args = parser.parse_args()
    edges = octave_edges()
    gap = int(args.gap * SAMPLE_RATE)
    reach = int(FILL_CONTEXT_SECONDS * SAMPLE_RATE)
    segment = int(min(N_FFT, 2 ** np.floor(np.log2(gap))))
    valid = np.ones(2 * reach + gap, bool)  # the neighbourhood: the context without the window
    valid[reach:reach + gap] = False
    rows, outside_sides = [], []
    for manifest in args.manifest or MANIFESTS:
        with open(manifest, newline="") as f:
            tracks = [r for r in csv.DictReader(f) if r["split"] == "train"]
        for i in np.linspace(0, len(tracks) - 1, min(args.tracks, len(tracks))).astype(int):
            x, _ = read_audio(tracks[i]["file_path"], SAMPLE_RATE)
            x = np.asarray(x, np.float64)
            n = x.shape[-1]
            if n < 2 * reach + gap:
                continue
            for s in np.linspace(reach, n - reach - gap, args.windows).astype(int):
                inside, _ = band_power(x[:, s:s + gap], None, segment, edges)
                around, count = band_power(x[:, s - reach:s + gap + reach], valid, segment, edges)
                if count and inside.sum() > 0 and around.sum() > 0:
                    rows.append(10 * np.log10((inside + 1e-20) / (around + 1e-20)))
                    sides = [band_power(part, None, segment, edges)[0]
                             for part in (x[:, s - reach:s], x[:, s + gap:s + gap + reach])]
                    lo_db, hi_db = (10 * np.log10(f(sides[0], sides[1]) + 1e-20) for f in (np.minimum, np.maximum))
                    level = 10 * np.log10(inside + 1e-20)
                    outside_sides.append((level < lo_db - 1.5) | (level > hi_db + 1.5))
    d, sides = np.array(rows), np.array(outside_sides)
    print(f"{len(d)} windows of {args.gap:g} s; window minus context, dB per octave")
    print("| octave (Hz) | 5 % | 10 % | 25 % | median | 75 % | 90 % | 95 % | share outside ±1.5 dB "
          "| outside the sides' range ±1.5 dB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for k in range(d.shape[1]):
        col = d[:, k][np.isfinite(d[:, k])]
        p = np.percentile(col, [5, 10, 25, 50, 75, 90, 95])
        print(f"| {edges[k]:.0f}-{edges[k + 1]:.0f} | " + " | ".join(f"{v:+.1f}" for v in p)
              + f" | {np.mean(np.abs(col) > 1.5):.0%} | {np.mean(sides[:, k][np.isfinite(d[:, k])]):.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
