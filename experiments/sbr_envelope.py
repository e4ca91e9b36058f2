"""Experiment (rejected for the pipeline): give a2sb's regenerated band the level of SBR's output.

experiments/band_level.py shows the bundled model's band above the cutoff 11-15 dB too quiet below
16 kHz while SBR's tilt-extrapolated level is nearly unbiased. This script rescales a2sb's STFT above
the cutoff, per third-octave band and per clip, by the power ratio SBR / a2sb (a fraction `share` of
it in dB, bounded to ±20 dB) and scores the result with the bench's metrics (LSD, LSD above the
cutoff, LSD up to 16 kHz), on the clips and degradation of `a2sb bench quality --task bwe`.

    python experiments/sbr_envelope.py data/quick_clips --cutoff 4000
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from band_level import RATE, clip_parser, degraded_clips  # experiments/ is the script's folder

from a2sb import baselines, evaluate
from a2sb.errors import A2SBError
from a2sb.metrics import compute_metrics
from a2sb.representation import N_FFT, istft, stft

BOUND_DB = 20.0


def with_level_of(restored: np.ndarray, guide: np.ndarray, cutoff_hz: float, share: float) -> np.ndarray:
    """`restored` with each third-octave band above the cutoff scaled towards the mean power of `guide`."""
    spec, guide_power = stft(torch.from_numpy(restored).double()), stft(torch.from_numpy(guide).double()).abs() ** 2
    power = spec.abs() ** 2
    freqs = np.fft.rfftfreq(N_FFT, 1 / RATE)
    gain_db = np.zeros(len(freqs))
    edges = cutoff_hz * 2 ** (np.arange(0, 8, 1 / 3))
    for low, high in zip(edges[:-1], edges[1:]):
        band = torch.from_numpy((freqs >= low) & (freqs < high))
        if band.any():
            ratio = (guide_power[:, band].mean() + 1e-12) / (power[:, band].mean() + 1e-12)
            gain_db[band.numpy()] = np.clip(share * 10 * np.log10(float(ratio)), -BOUND_DB, BOUND_DB)
    ramp = np.clip((freqs - cutoff_hz) / 200.0, 0, 1)  # no step at the cutoff
    gain = torch.from_numpy(10 ** (gain_db * ramp / 20))[None, :, None]
    return istft(spec * gain, length=restored.shape[-1]).numpy().astype(np.float32)


def main() -> int:
    args = clip_parser(__doc__).parse_args()
    keys = ("lsd", "lsd_high", "lsd_16k")
    scores: dict[str, list] = {}
    try:
        for _, clean, degraded in degraded_clips(args):
            n = clean.shape[-1]
            a2sb = evaluate.restore_a2sb(degraded, RATE, args.cutoff, model=args.model)[..., :n]
            sbr = np.asarray(baselines.BWE_METHODS["sbr"](degraded, RATE, cutoff_hz=args.cutoff), np.float32)[..., :n]
            outputs = {"sbr": sbr, "a2sb": a2sb, "a2sb, SBR level": with_level_of(a2sb, sbr, args.cutoff, 1.0),
                       "a2sb, half-way to SBR level": with_level_of(a2sb, sbr, args.cutoff, 0.5)}
            for name, y in outputs.items():
                m = compute_metrics(clean, y, cutoff_hz=args.cutoff)
                scores.setdefault(name, []).append([m[k] for k in keys])
    except A2SBError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"{len(scores['a2sb'])} clips from {args.directory}, cutoff {args.cutoff:g} Hz; mean over clips\n")
    print("| method | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for name, rows in scores.items():
        print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in np.mean(rows, axis=0)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
