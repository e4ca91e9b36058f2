"""A small training pack to carry to a lent GPU machine (which has no internet and no data): from each
train/validation row of the given manifests, `seconds` of mono audio from the middle of the file,
written as Ogg Vorbis at libsndfile `--level` (0.2 ≈ 140 kbit/s mono) or, with `:flac`, as 16-bit FLAC
(lossless: full-band material must stay full band; the 2026-12-04 GPU run learned an empty top band
from renders coded at Vorbis 0.2, docs/experiments.md), with one manifest per input,
`OUT/<its name>.csv`, whose paths are relative to OUT and whose 4th column is the source's estimated
true rate (the manifest's own, or measured here with a2sb.training.manifests.estimate_true_sr), so that
training never asks for a band the source does not have. A manifest is given as PATH:SECONDS[:flac].

    python scripts/make_gpu_pack.py data/music_wide.csv:5 data/rendered/rendered.csv:3:flac -o data/gpu_pack26

The files are written to disk (libsndfile's Vorbis writer has crashed writing a minute of audio into a
memory buffer here). Prints the pack's size; the GPU machine takes at most ~45 MiB beside the repo.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from a2sb.audio import SAMPLE_RATE, audio_info, read_audio  # noqa: E402
from a2sb.training.manifests import estimate_true_sr, read_manifest  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("manifests", nargs="+", help="PATH:SECONDS[:flac]")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--level", type=float, default=0.2, help="libsndfile Vorbis compression level")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, total = [], []
    for spec in args.manifests:
        path, seconds, *kind = spec.split(":")
        seconds, flac = float(seconds), kind == ["flac"]
        if kind not in ([], ["flac"]):
            parser.error(f"expected PATH:SECONDS[:flac], got {spec}")
        tag = Path(path).stem
        for i, row in enumerate(read_manifest(path)):
            if row["split"] not in ("train", "validation"):
                continue
            info = audio_info(row["path"])
            take = min(seconds, info.duration)
            start = max(0.0, (info.duration - take) / 2)
            audio, _ = read_audio(row["path"], SAMPLE_RATE, start=start, duration=take)
            mono = audio.mean(0).astype(np.float32)
            rel = f"{row['split']}/{tag}-{i:04d}.{'flac' if flac else 'ogg'}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            if flac:
                sf.write(out / rel, mono[:, None], SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            else:
                sf.write(out / rel, mono[:, None], SAMPLE_RATE, format="OGG", subtype="VORBIS",
                         compression_level=args.level)
            true_sr = row.get("true_sr") or estimate_true_sr(row["path"], info.sample_rate, info.duration)
            true_sr = min(true_sr, SAMPLE_RATE)
            rows.append([row["split"], rel, f"{len(mono) / SAMPLE_RATE:.6f}", str(int(true_sr))])
        with open(out / f"{tag}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["split", "file_path", "duration", "estimated_true_sr"])
            writer.writerows(rows)
        total += rows
        rows = []
    rows = total
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    minutes = sum(float(r[2]) for r in rows) / 60
    print(f"{len(rows)} files, {minutes:.1f} min of mono audio, {size / 2**20:.1f} MiB in {out}")


if __name__ == "__main__":
    main()
