"""Cut held-out tracks (data/tracks.json, from scripts/prepare_data.py) into short clips for
`a2sb bench quality`. Clips start at evenly spaced positions between 10 % and 90 % of each track; a
short track gives only as many clips as fit there without overlapping (at least one).

    python scripts/make_test_clips.py                          # test-split tracks -> data/test_clips
    python scripts/make_test_clips.py --split heldout --by-package --tracks 8 --per-track 1 \
        --seconds 10 --out data/heldout_clips                  # held-out packages, one folder each

With --by-package the clips go to OUT/<package>/ (the bench reports per sub-folder), and --tracks N
takes N tracks per package, chosen by the hash that also decides the splits (not by name or taste).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from a2sb.audio import audio_info, read_audio, write_audio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracks-json", default="data/tracks.json")
    parser.add_argument("--split", default="test", help="test (held-out tracks) or heldout (held-out packages)")
    parser.add_argument("--by-package", action="store_true", help="one sub-folder of clips per package")
    parser.add_argument("--tracks", type=int, default=0, help="at most N tracks per package (0: all)")
    parser.add_argument("--per-track", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", default="data/test_clips")
    args = parser.parse_args()
    from hashlib import sha256

    by_package = defaultdict(list)
    for track in json.loads(Path(args.tracks_json).read_text()):
        if track["split"] == args.split:
            by_package[track["package"]].append(track)
    for package, tracks in sorted(by_package.items()):
        tracks.sort(key=lambda t: sha256(t["relpath"].encode()).hexdigest())
        if args.tracks:
            tracks = tracks[: args.tracks]
        out = Path(args.out) / package if args.by_package else Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for track in sorted(tracks, key=lambda t: t["relpath"]):
            path = track["path"]
            duration = audio_info(path).duration
            span = 0.8 * duration - args.seconds
            count = max(1, min(args.per_track, int(0.8 * duration // args.seconds)))
            for k in range(count):
                start = 0.1 * duration + (span * k / max(count - 1, 1) if span > 0 else 0.0)
                if count == 1 and span > 0:
                    start = 0.5 * duration - args.seconds / 2  # a single clip: the middle of the track
                audio, rate = read_audio(path, 44100, start=start, duration=args.seconds)
                name = f"{Path(path).stem.replace(' ', '_')}_{k}.flac"
                write_audio(out / name, audio, rate)
                print(f"{out.name}/{name}: {start:.1f}-{start + args.seconds:.1f} s of {Path(path).name}, "
                      f"{audio.shape[0]} ch")


if __name__ == "__main__":
    main()
