"""Why one band gain table cannot put the level right on both evaluation sets (issue 25).

Two measurements from files that other commands already wrote:

1. `--rows`: the per-clip level biases that experiments/fit_band_gain.py measured on training clips (its
   `--cache` JSON), split by the manifest each clip came from (real music vs FluidSynth renders). The
   fitted table is the median over both together; this prints the median of each on its own.
2. `--bench A.json B.json`: two `a2sb bench quality --json` results on the same clips (e.g. the model
   and band replication): per octave, the correlation over clips of their level biases on non-empty
   cells (bias_ne_db_octK), with each one's mean and median. A correlation near 1 says the clip-to-clip
   spread comes from the music (how much of its band above the cutoff the band below predicts), not from
   either method.

    python experiments/level_by_material.py --rows runs/fit/e4000_rows.json \
        --bench runs/scores/e4000g50_ho_bwe4000.json runs/scores/sbr_ho_bwe4000.json
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

MANIFESTS = {"renders": "data/rendered/rendered.csv", "music": "data/music_wide.csv"}


def material_of(paths: dict[str, set[str]], path: str) -> str:
    return next((name for name, members in paths.items() if path in members), "other")


def by_material(rows: list[dict], manifests: dict[str, str]) -> None:
    paths = {}
    for name, manifest in manifests.items():
        with open(manifest, newline="") as f:
            paths[name] = {r["file_path"] for r in csv.DictReader(f)}
    groups: dict[tuple[int, str], list[list[float]]] = {}
    for r in rows:
        groups.setdefault((r["cutoff"], material_of(paths, r["path"])), []).append(r["bias"])
    print("| cutoff | material | values | median bias_ne per octave (dB) |")
    print("|---|---|---:|---|")
    for (cutoff, material), biases in sorted(groups.items()):
        width = max(map(len, biases))
        a = np.array([b + [np.nan] * (width - len(b)) for b in biases], dtype=float)
        medians = [float(np.nanmedian(col)) if np.isfinite(col).any() else float("nan") for col in a.T]
        print(f"| {cutoff / 1000:g} kHz | {material} | {len(a)} | " + " / ".join(f"{m:+.1f}" for m in medians) + " |")


def correlation(first: Path, second: Path) -> None:
    def per_clip(path: Path) -> dict[str, dict]:
        d = json.loads(path.read_text())
        return {f["file"]: f for f in d["files"] if f["method"] != "lowpassed"}

    a, b = per_clip(first), per_clip(second)
    common = sorted(set(a) & set(b))
    print(f"{len(common)} clips in both: {first.name} vs {second.name}")
    for k in range(1, 4):
        key = f"bias_ne_db_oct{k}"
        pairs = np.array([(a[c].get(key), b[c].get(key)) for c in common], dtype=float)
        pairs = pairs[np.isfinite(pairs).all(1)]
        if len(pairs) < 3:
            continue
        r = np.corrcoef(pairs.T)[0, 1]
        print(f"octave {k}: r = {r:.3f}; mean {pairs[:, 0].mean():+.1f} vs {pairs[:, 1].mean():+.1f} dB, "
              f"median {np.median(pairs[:, 0]):+.1f} vs {np.median(pairs[:, 1]):+.1f} dB, "
              f"clips from {pairs[:, 0].min():+.1f} to {pairs[:, 0].max():+.1f} dB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=Path, help="fit_band_gain.py's --cache JSON")
    parser.add_argument("--bench", type=Path, nargs=2, metavar="JSON", help="two bench results on the same clips")
    args = parser.parse_args()
    if not args.rows and not args.bench:
        parser.error("give --rows, --bench or both")
    if args.rows:
        by_material(json.loads(args.rows.read_text()), MANIFESTS)
    if args.bench:
        correlation(*args.bench)
    return 0


if __name__ == "__main__":
    sys.exit(main())
