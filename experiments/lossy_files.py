"""Restore lossy copies of a clip and compare the result with the plain decode (docs/experiments.md,
"restoring real lossy files"): the level per half second, the lowest STFT bins, and how many random
reads of Ogg files come back wrong through raw libsndfile seeks and through a2sb's FileWave.

    python experiments/lossy_files.py data/heldout_clips/freedroidrpg-data/Bleostrada_0.flac

Writes its files to a temporary folder; restores the MP3 with the bundled model, peak safety off.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from a2sb.audio import FileWave
from a2sb.restorer import Restorer


def band_power(x: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    n, hop = 2048, 512
    frames = np.lib.stride_tricks.sliding_window_view(x.mean(1), n)[::hop] * np.hanning(n)
    return np.fft.rfftfreq(n, 1 / rate), (np.abs(np.fft.rfft(frames, axis=1)) ** 2).mean(0)


def wrong_reads(path: Path, reads: int, through_filewave: bool) -> int:
    whole, _ = sf.read(path, dtype="float32", always_2d=True)
    starts = np.random.default_rng(1).integers(0, len(whole) - 3000, reads)
    wave = FileWave(path, rate=None) if through_filewave else None
    raw = None if through_filewave else sf.SoundFile(path)
    bad = 0
    for s in (int(v) for v in starts):
        if wave is not None:
            got = wave.read(s, s + 3000).T
        else:
            raw.seek(s)
            got = raw.read(3000, dtype="float32", always_2d=True)
        bad += got.shape != whole[s:s + 3000].shape or not np.array_equal(got, whole[s:s + 3000])
    (wave or raw).close()
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    args = parser.parse_args()
    x, rate = sf.read(args.clip, dtype="float32", always_2d=True)
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        mp3, out = folder / "clip.mp3", folder / "restored.flac"
        sf.write(mp3, x, rate, format="MP3")  # libsndfile's default settings
        report = Restorer(peak_safety=False).restore_file(mp3, out)  # no gain: levels compare directly
        print(report.plan.describe(), report.describe(), sep="\n")
        d, _ = sf.read(mp3, dtype="float64", always_2d=True)
        y, _ = sf.read(out, dtype="float64", always_2d=True)
        n, half = min(len(d), len(y)), rate // 2
        steps = [10 * np.log10(np.mean(y[i:i + half] ** 2) / np.mean(d[i:i + half] ** 2))
                 for i in range(0, n - half, half)]
        print(f"restored vs decode per half second: {min(steps):+.2f} .. {max(steps):+.2f} dB")
        f, pd = band_power(d[:n], rate)
        _, py = band_power(y[:n], rate)
        for k in (0, 2, 4):
            print(f"bin {k} ({f[k]:.0f} Hz): {10 * np.log10(py[k] / pd[k]):+.2f} dB")
        for subtype in ("VORBIS", "OPUS"):
            ogg = folder / f"clip_{subtype.lower()}.ogg"
            # (Opus only takes 48 kHz among the usual rates: the clip is simply played faster; only reads matter)
            sf.write(ogg, x, 48000 if subtype == "OPUS" else rate, format="OGG", subtype=subtype)
            print(f"{subtype}: wrong random reads, raw seeks {wrong_reads(ogg, 91, False)}/91, "
                  f"FileWave {wrong_reads(ogg, 91, True)}/91")


if __name__ == "__main__":
    main()
