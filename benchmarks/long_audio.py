"""Memory and time of `a2sb restore` on long stereo files (bounded-memory wavefront sampler).

For each length a synthetic stereo file (harmonic tones + noise, lowpassed at 8 kHz, three 0.3 s
silent gaps) is written, then restored file-to-file in a fresh subprocess (cutoff and gaps detected
automatically, a small network, few steps), which reports its own peak RSS. Memory must not grow
with the length and time must grow linearly.

    python benchmarks/long_audio.py                      # 1, 10 and 60 minutes, bundled model, 2 steps
    python benchmarks/long_audio.py --minutes 1 10 --device cuda --steps 3
    python benchmarks/long_audio.py --model preset:tiny   # any model: bundled name, folder, preset:NAME
    python benchmarks/long_audio.py --model stub          # everything but the network (cheap stand-in)

The default is the bundled model (a small CPU network): the `tiny` test preset is small in parameters
but not in compute (45 GFLOP per window, four times the bundled model), so an hour of stereo through it
takes most of a day on a 2-core CPU.

`--model stub` keeps the tiny architecture's interface but replaces the network by a cheap elementwise
function: it measures the pipeline's own memory and time (transforms, noise, wavefront bookkeeping,
file I/O) on machines where running the real network over an hour takes too long. The network's own
memory depends on the batch size only, not on the length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

RATE = 44100


def write_synthetic(path: Path, minutes: float, seed: int = 0, gap_seconds: float = 0.3, cutoff_hz: float = 8000
                    ) -> list[tuple[float, float]]:
    """Stereo tones + noise lowpassed at `cutoff_hz`, silent gaps at 1/4, 1/2 and 3/4 of the length;
    written chunk by chunk, so an hour takes no more memory than a minute. Returns the gaps (s)."""
    import soundfile as sf
    from scipy.signal import butter, sosfilt, sosfilt_zi

    rng = np.random.default_rng(seed)
    total = int(minutes * 60 * RATE)
    sos = butter(8, cutoff_hz, fs=RATE, output="sos")
    state = [sosfilt_zi(sos) * 0.0 for _ in range(2)]
    gaps = [(round(f * total / RATE, 3), round(f * total / RATE, 3) + gap_seconds) for f in (0.25, 0.5, 0.75)]
    partials = rng.uniform(110, 3000, size=(2, 24))
    chunk = 1 << 20
    with sf.SoundFile(str(path), "w", RATE, 2, "PCM_16") as f:
        for start in range(0, total, chunk):
            n = min(chunk, total - start)
            t = (start + np.arange(n)) / RATE
            out = np.empty((n, 2), np.float32)
            for c in range(2):
                tones = sum(np.sin(2 * np.pi * p * t + k) * (0.5 + 0.5 * np.sin(0.1 * t + k)) / (k + 4)
                            for k, p in enumerate(partials[c]))
                filtered, state[c] = sosfilt(sos, 0.1 * tones + 0.05 * rng.standard_normal(n), zi=state[c])
                out[:, c] = 0.5 * filtered
            for g0, g1 in gaps:
                a, b = max(int(g0 * RATE) - start, 0), min(int(g1 * RATE) - start, n)
                if a < b:
                    out[a:b] = 0
            f.write(out)
    return gaps


def child(args) -> None:
    """Runs in its own process: restore one file and report time and peak RSS as JSON."""
    import torch

    from a2sb import restorer

    torch.set_num_threads(args.threads or torch.get_num_threads())
    start_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    model = args.model
    if args.model == "stub":
        from a2sb.model import A2SBModel
        from a2sb.network import preset

        class Stub(A2SBModel):
            def predict_noise(self, x, t, expert=None):
                return 0.5 * torch.tanh(x + t.to(x).reshape(-1, 1, 1, 1))

        model = Stub(preset("tiny"), t_cutoffs=[0.5]).eval()
    restorer.restore(args.input, args.output, model=model, steps=args.steps, device=args.device,
                     batch_size=args.batch_size, overwrite=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak / 1024, "import_rss_mib": start_rss / 1024}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--steps", type=int, default=2, help="time grid points (steps − 1 network calls)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--model", default="default",
                        help="bundled name, model folder, preset:NAME (random weights), or 'stub' (a cheap "
                             "stand-in for the network)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: default)")
    parser.add_argument("--workdir", default=None, help="where the audio files go (default: a temp folder)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.batch_size != "auto":
        args.batch_size = int(args.batch_size)
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = []
        for minutes in args.minutes:
            src = Path(tmp) / f"long_{minutes:g}min.wav"
            write_synthetic(src, minutes)
            cmd = [sys.executable, __file__, "--child", "--input", str(src), "--output", str(src) + ".out.wav",
                   "--steps", str(args.steps), "--device", args.device, "--batch-size", str(args.batch_size),
                   "--threads", str(args.threads), "--model", args.model]
            done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
            if done.returncode:
                sys.exit(f"{minutes:g} min failed:\n{done.stderr}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            result["minutes"] = minutes
            result["seconds_per_audio_minute"] = result["seconds"] / minutes
            rows.append(result)
            print(f"{minutes:6g} min: {result['seconds']:8.1f} s  ({result['seconds_per_audio_minute']:6.2f} s per "
                  f"audio minute), peak RSS {result['peak_rss_mib']:7.0f} MiB "
                  f"(after imports {result['import_rss_mib']:.0f} MiB)", flush=True)
            os.unlink(src)
            os.unlink(str(src) + ".out.wav")
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
