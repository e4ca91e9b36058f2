"""Per-band level bias of bandwidth extension: is the regenerated band too loud or too quiet?

LSD says how far a restoration is from the reference, not in which direction. This script degrades
each clip as `a2sb bench quality --task bwe` does (the middle --max-seconds, Butterworth lowpass),
restores it with each method and prints, per frequency band above the cutoff, the mean log10 power
ratio restored / reference (bels: +1 = 10 dB too loud) and the band's own LSD, on the mono mix.

    python experiments/band_level.py data/quick_clips --cutoff 4000
    python experiments/band_level.py data/quick_clips --model runs/export --methods a2sb
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from a2sb import evaluate
from a2sb.degrade import lowpass
from a2sb.errors import A2SBError
from a2sb.metrics import magnitude_spectrogram

RATE = 44100
EPS = 1e-10  # power floor: -100 dB, below any band's level in real music


def band_edges(cutoff_hz: float) -> list[tuple[float, float]]:
    edges = [cutoff_hz, *[f for f in (8000.0, 12000.0, 16000.0) if f > cutoff_hz], RATE / 2]
    return list(zip(edges[:-1], edges[1:]))


def band_scores(reference: np.ndarray, restored: np.ndarray, bands) -> list[tuple[float, float]]:
    """(mean log10 power ratio, LSD) per band, on the mono mix."""
    n = min(reference.shape[-1], restored.shape[-1])
    reference, restored = (np.atleast_2d(x)[:, :n].mean(0) for x in (reference, restored))
    R = np.log10(magnitude_spectrogram(reference) ** 2 + EPS)
    E = np.log10(magnitude_spectrogram(restored) ** 2 + EPS)
    freqs = np.fft.rfftfreq(2048, 1 / RATE)
    out = []
    for low, high in bands:
        d = (E - R)[:, (freqs >= low) & (freqs < high)]
        out.append((float(d.mean()), float(np.sqrt((d**2).mean(axis=1)).mean())))
    return out


def clip_parser(doc: str) -> argparse.ArgumentParser:
    """Arguments shared with sbr_envelope.py: the clips, the lowpass and the a2sb model."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--cutoff", type=float, default=4000.0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--model", default=None, help="a2sb model (bundled name or folder); default: bundled")
    return parser


def degraded_clips(args):
    """(name, clean, degraded) per audio file of args.directory, degraded as `a2sb bench quality --task bwe`."""
    files = sorted(p for p in Path(args.directory).iterdir() if evaluate._is_audio(p))
    if not files:
        raise A2SBError(f"no audio files in {args.directory}")
    for path in files:
        clean = evaluate._read_clean(path, args.max_seconds)
        yield path.name, clean, lowpass(clean, RATE, args.cutoff, kind="butter", order=8)


def main() -> int:
    parser = clip_parser(__doc__)
    parser.add_argument("--steps", type=int, default=None, help="a2sb sampling steps; default: the model's")
    parser.add_argument("--sampler", choices=("ode", "sde"), default=None)
    parser.add_argument("--methods", default="sbr,a2sb", help="comma-separated, as for `a2sb bench quality`")
    args = parser.parse_args()
    try:  # the bench's own method table: same names, same a2sb settings, same error for a bad name
        methods = evaluate._bench_methods("bwe", args.methods, args)
        bands = band_edges(args.cutoff)
        scores: dict[str, list] = {name: [] for name in methods}
        for _, clean, degraded in degraded_clips(args):
            for name, method in methods.items():
                restored = np.asarray(method(degraded, RATE, cutoff_hz=args.cutoff))
                scores[name].append(band_scores(clean, restored, bands))
    except A2SBError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    header = " | ".join(f"{low / 1000:g}–{high / 1000:g} kHz" for low, high in bands)
    clips = len(next(iter(scores.values())))
    print(f"{clips} clips from {args.directory}, cutoff {args.cutoff:g} Hz; per band: bias (bels) / LSD\n")
    print(f"| method | {header} |\n|---|" + "---:|" * len(bands))
    for name, per_file in scores.items():
        mean = np.mean(per_file, axis=0)  # bands x (bias, lsd)
        cells = " | ".join(f"{bias:+.2f} / {lsd:.2f}" for bias, lsd in mean)
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
