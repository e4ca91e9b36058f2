"""Write a training manifest with only the tracks whose own bandwidth reaches a frequency.

prepare_data.py measures every track's bandwidth (`bandwidth_hz` in data/tracks.json: the highest
frequency its long-term spectrum holds). Lossy sources cut at 13-16 kHz teach a model that the band above
is empty; this keeps the rows of a manifest whose track reaches --min-bandwidth (issue 13, benchmarks/README.md).

    python scripts/filter_manifest.py data/music.csv data/music_wide.csv --min-bandwidth 17000
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--min-bandwidth", type=float, default=17000.0, help="Hz (default 17000)")
    parser.add_argument("--tracks", type=Path, default=Path("data/tracks.json"), help="prepare_data.py's track list")
    args = parser.parse_args()
    if args.output.resolve() == args.manifest.resolve():
        print("error: the output would overwrite the input manifest", file=sys.stderr)
        return 2
    try:
        bandwidth = {t["path"]: t["bandwidth_hz"] for t in json.loads(args.tracks.read_text())}
        with args.manifest.open(newline="") as f:
            reader = csv.DictReader(f)
            rows, fields = list(reader), reader.fieldnames
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    unknown = [r["file_path"] for r in rows if r["file_path"] not in bandwidth]
    if unknown:
        print(f"error: {len(unknown)} manifest rows are not in {args.tracks}, e.g. {unknown[0]}", file=sys.stderr)
        return 2
    kept = [r for r in rows if bandwidth[r["file_path"]] >= args.min_bandwidth]
    with args.output.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    minutes = sum(float(r["duration"]) for r in kept) / 60
    print(f"{args.output}: {len(kept)} of {len(rows)} rows ({minutes:.0f} min) reach {args.min_bandwidth:g} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
