"""Is the regenerated band too smooth in time, and does widening its dynamics help? (issue 25)

A network trained with a squared error predicts, where it is unsure, something near a mean, and a mean
over time-shifted possibilities is smoother than any one of them: quieter (the level deficit the band
gain table corrects) and with weaker onsets. This script measures, on 8 s clips lowpassed at 4 kHz
(Butterworth, order 8, as the quality bench) and restored with a model at its defaults:

- the spread over time (std of ln|S| per STFT row, mean over rows that are not silent) of the octave
  below the cutoff, and of the reference's and the restoration's first two octaves above it;
- the effect on LSD, onset correlation and level (a2sb.metrics.compute_metrics) of widening each
  regenerated row's log magnitude around its mean over time by k = (the input's spread below the
  cutoff) / (the row's spread), bounded to [1, K] for each K given ("keep power": then scaled back to
  the row's power before the widening, so that only the shape changes).

    python experiments/temporal_expansion.py data/heldout_clips data/fullband_clips --cache runs/expand/clips.npz \
        --kmax 1.3 2.0

The restorations are cached (`--cache`; ~10 s of CPU per clip on 2 cores).
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np
import torch

from a2sb import metrics
from a2sb.audio import read_audio
from a2sb.degrade import lowpass
from a2sb.evaluate import restore_a2sb
from a2sb.representation import N_FFT, SAMPLE_RATE, istft, stft

CUTOFF_HZ = 4000.0
SECONDS = 8.0
SILENT = 1e-5  # mean |S| of a row below this: not counted in a spread


def restorations(folders: list[str], model: str | None) -> dict[str, np.ndarray]:
    """{clip path: (3, channels, n) reference, lowpassed input, restoration}."""
    out = {}
    for folder in folders:
        for path in sorted(glob.glob(f"{folder}/*/*.flac")):
            x, _ = read_audio(path, SAMPLE_RATE, duration=SECONDS)
            x = np.repeat(x, 2, 0) if x.shape[0] == 1 else x
            y = lowpass(x, SAMPLE_RATE, CUTOFF_HZ, "butter", 8)
            r = restore_a2sb(y, SAMPLE_RATE, CUTOFF_HZ, model=model)
            n = min(x.shape[1], r.shape[1])
            out[path] = np.stack([x[:, :n], y[:, :n], r[:, :n]]).astype(np.float32)
            print(f"\r{len(out)} clips restored", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return out


def spread(magnitude: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Per channel, the mean over rows lo..hi-1 that are not silent of the std over frames of ln|S|."""
    band = magnitude[:, lo:hi].double()
    std = torch.log(band + 1e-9).std(-1)
    keep = band.mean(-1) > SILENT
    return torch.stack([std[ch][keep[ch]].mean() if keep[ch].any() else std.new_tensor(float("nan"))
                        for ch in range(band.shape[0])])


def widen(lowpassed: np.ndarray, restored: np.ndarray, first_row: int, kmax: float, keep_power: bool) -> np.ndarray:
    Y, R = stft(torch.from_numpy(lowpassed)), stft(torch.from_numpy(restored))
    M = R.abs().double()
    L = torch.log(M + 1e-9)
    target = spread(Y.abs(), first_row // 2, first_row)
    mean, std = L[:, first_row:].mean(-1, keepdim=True), L[:, first_row:].std(-1, keepdim=True)
    k = (target[:, None, None] / std).nan_to_num(1.0).clamp(1.0, kmax)
    L[:, first_row:] = mean + k * (L[:, first_row:] - mean)
    widened = torch.exp(L)
    if keep_power:
        before, after = (m[:, first_row:].square().mean(-1, keepdim=True) for m in (M, widened))
        widened[:, first_row:] *= torch.sqrt(before / after)
    return istft(R * (widened / (M + 1e-12)).to(R.real.dtype), length=restored.shape[-1]).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", help="clip folders (PACKAGE/CLIP.flac), e.g. data/heldout_clips")
    parser.add_argument("--model", default=None)
    parser.add_argument("--cache", type=Path, default=None, help="npz of the restorations (read if it exists)")
    parser.add_argument("--kmax", type=float, nargs="*", default=[1.3, 2.0])
    args = parser.parse_args()
    if args.cache and args.cache.exists():
        with np.load(args.cache) as f:
            clips = {k.replace("|", "/"): f[k] for k in f.files}
    else:
        clips = restorations(args.folders, args.model)
        if args.cache:
            np.savez(args.cache, **{k.replace("/", "|"): v for k, v in clips.items()})
    first_row = int(round(CUTOFF_HZ / SAMPLE_RATE * N_FFT))
    spreads, scores = {}, {}
    variants = [(1.0, False)] + [(k, keep) for k in args.kmax for keep in (False, True)]
    for path, (x, y, r) in clips.items():
        group = next((f for f in args.folders if path.startswith(f)), Path(path).parent.parent.name)
        S = [stft(torch.from_numpy(a)).abs() for a in (x, y, r)]
        c = first_row
        spreads.setdefault(group, []).append(
            [float(spread(S[1], c // 2, c).mean())]
            + [float(spread(S[i], lo, hi).mean()) for lo, hi in ((c, 2 * c), (2 * c, 4 * c)) for i in (0, 2)])
        for kmax, keep in variants:
            e = r if kmax == 1.0 else widen(y, r, first_row, kmax, keep)
            m = metrics.compute_metrics(x, e, cutoff_hz=CUTOFF_HZ)
            scores.setdefault((group, kmax, keep), []).append(
                [m["lsd"], m["lsd_16k"], m["onset_corr"]] + [m.get(f"bias_ne_db_oct{i}", np.nan) for i in (1, 2, 3)])
    print("| clips | n | spread below the cutoff | octave 1: reference / restored | octave 2: reference / restored |")
    print("|---|---:|---:|---|---|")
    for group, rows in spreads.items():
        a = np.nanmean(np.array(rows), 0)
        print(f"| {group} | {len(rows)} | {a[0]:.2f} | {a[1]:.2f} / {a[2]:.2f} | {a[3]:.2f} / {a[4]:.2f} |")
    print("\n| clips | K | keep power | lsd | lsd_16k | onset_corr | bias_ne per octave (dB) |")
    print("|---|---:|---|---:|---:|---:|---|")
    for (group, kmax, keep), rows in scores.items():
        a = np.nanmean(np.array(rows, float), 0)
        print(f"| {group} | {kmax:g} | {'yes' if keep else 'no'} | {a[0]:.3f} | {a[1]:.3f} | {a[2]:.3f} | "
              + " / ".join(f"{v:+.1f}" for v in a[3:]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
