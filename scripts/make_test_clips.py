"""Cut the held-out test tracks (data/splits.json, from scripts/prepare_data.py) into 20 s clips for
`a2sb bench quality`: several clips per track give a steadier mean than three whole tracks, at a cost a
CPU can afford. Clips start at evenly spaced positions between 10 % and 90 % of each track; a short track
gives only as many clips as fit there without overlapping (at least one).

    python scripts/make_test_clips.py [--per-track 4] [--seconds 20] [--out data/test_clips]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from a2sb.audio import audio_info, read_audio, write_audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--splits", default="data/splits.json")
    parser.add_argument("--split", default="test")
    parser.add_argument("--per-track", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", default="data/test_clips")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for track in json.loads(Path(args.splits).read_text())[args.split]:
        duration = audio_info(track).duration
        span = 0.8 * duration - args.seconds
        count = max(1, min(args.per_track, int(0.8 * duration // args.seconds)))
        for k in range(count):
            start = 0.1 * duration + (span * k / max(count - 1, 1) if span > 0 else 0.0)
            audio, rate = read_audio(track, 44100, start=start, duration=args.seconds)
            name = f"{Path(track).stem.replace(' ', '_')}_{k}.flac"
            write_audio(out / name, audio, rate)
            print(f"{name}: {start:.1f}-{start + args.seconds:.1f} s of {Path(track).name}, {audio.shape[0]} ch")


if __name__ == "__main__":
    main()
