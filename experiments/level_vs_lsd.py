"""Level bias against LSD per octave: can a bandwidth extension meet both on these references?

The level bias (a2sb.metrics.level_bias) compares band *power* per frame, which a few strong bins
dominate; LSD (F27) compares every bin in log, so near-empty bins count as much as loud ones. When the
reference's band is sparse (a lossy coder leaves most bins of the top octave empty), the level that
minimises LSD lies far below the level that zeroes the bias. This script measures that per octave
above the cutoff, per channel, over the frames the bias counts (reference band not silent):

  bias        10·log10(restored / reference band power), as the bench's bias_db_octN;
  peak ref    how much of the band's power sits in few bins: 10·log10(mean power) − mean 10·log10(power)
              over the band's bins (2.5 dB for white noise, 0 for a flat spectrum, tens of dB when most
              bins are empty), for the reference and for the restoration ("peak est");
  LSD @ g     the octave's LSD (F27, the bench's formula) after scaling the restored band by g dB, so the
              row shows whether raising the band to zero bias would cost LSD.

Clips are degraded as `a2sb bench quality --task bwe` degrades them (the middle --max-seconds,
Butterworth order 8), sub-folders are groups as for the bench:

    python experiments/level_vs_lsd.py data/ab_clips --cutoff 4000
    python experiments/level_vs_lsd.py data/ab_clips --methods a2sb --model runs/m_X
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from band_level import clip_parser

from a2sb import evaluate
from a2sb.degrade import lowpass
from a2sb.errors import A2SBError
from a2sb.metrics import POWER_FLOOR, SILENT_POWER, _lsd_per_frame, _octave_bias, octave_bands, spectrogram, stft_params

RATE = 44100
GAINS_DB = (-10.0, 0.0, 5.0, 10.0, 20.0)


def peakedness_db(power: np.ndarray) -> np.ndarray:
    """Per frame (rows of `power`, frames x bins): 10·log10 of the mean over bins minus the mean of
    10·log10 (arithmetic over geometric mean, in dB; ≥ 0, 0 only for a flat band)."""
    return 10 * np.log10(power.mean(axis=1) + POWER_FLOOR) - (10 * np.log10(power + POWER_FLOOR)).mean(axis=1)


def octave_scores(reference: np.ndarray, restored: np.ndarray, cutoff_hz: float,
                  gains_db=GAINS_DB) -> np.ndarray:
    """(octaves, 3 + len(gains)): bias, peak ref, peak est, LSD at each gain; mean over channels."""
    n_fft, hop = stft_params(RATE)
    freqs = np.arange(n_fft // 2 + 1) * RATE / n_fft
    n = min(reference.shape[-1], restored.shape[-1])
    per_channel = []
    for r, e in zip(np.atleast_2d(reference)[:, :n], np.atleast_2d(restored)[:, :n]):
        R, E = spectrogram(r, n_fft, hop), spectrogram(e, n_fft, hop)
        biases = _octave_bias(R, E, cutoff_hz, n_fft, RATE)  # the bench's own bias_db_octN
        rows = []
        for (low, high), bias in zip(octave_bands(cutoff_hz, RATE), biases):
            band = (freqs >= low) & ((freqs < high) | (freqs == RATE / 2))
            loud = np.mean(R[:, band] ** 2, axis=1) >= SILENT_POWER  # the frames the bias counts
            if not loud.any():
                rows.append([np.nan] * (3 + len(gains_db)))
                continue
            r_band, e_band = R[loud][:, band], E[loud][:, band]
            lsds = [float(_lsd_per_frame(r_band, e_band * 10 ** (g / 20)).mean()) for g in gains_db]
            rows.append([float(bias), float(peakedness_db(r_band**2).mean()),
                         float(peakedness_db(e_band**2).mean()), *lsds])
        per_channel.append(rows)
    return np.nanmean(np.array(per_channel, dtype=float), axis=0)


def main() -> int:
    parser = clip_parser(__doc__)
    parser.add_argument("--methods", default="sbr,a2sb", help="comma-separated, as for `a2sb bench quality`")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--sampler", choices=("ode", "sde"), default=None)
    parser.add_argument("--stereo", default=None)
    args = parser.parse_args()
    try:
        methods = evaluate._bench_methods("bwe", args.methods, args)
        files = evaluate.bench_files(Path(args.directory))
        if not files:
            raise A2SBError(f"no audio files in {args.directory}")
        scores: dict[str, list] = {name: [] for name in methods}
        for path, _group in files:
            clean = evaluate._read_clean(path, args.max_seconds)
            degraded = lowpass(clean, RATE, args.cutoff, kind="butter", order=8)
            for name, method in methods.items():
                restored = np.asarray(method(degraded, RATE, cutoff_hz=args.cutoff), dtype=np.float32)
                scores[name].append(octave_scores(clean, restored, args.cutoff))
    except A2SBError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    bands = octave_bands(args.cutoff, RATE)
    print(f"{len(files)} clips from {args.directory}, cutoff {args.cutoff:g} Hz; means over clips and channels\n")
    gains = " | ".join(f"LSD @ {g:+g} dB" for g in GAINS_DB)
    print(f"| method | octave | bias dB | peak ref dB | peak est dB | {gains} |")
    print("|---|---|" + "---:|" * (3 + len(GAINS_DB)))
    for name, per_file in scores.items():
        mean = np.nanmean(per_file, axis=0)
        for (low, high), row in zip(bands, mean):
            cells = " | ".join(f"{v:+.1f}" if i == 0 else f"{v:.1f}" if i < 3 else f"{v:.2f}"
                               for i, v in enumerate(row))
            print(f"| {name} | {low / 1000:g}–{high / 1000:g} kHz | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
