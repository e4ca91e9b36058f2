"""Speed of `a2sb restore`: real-time factor on a 30 s stereo clip, and fast inpainting against running
every window on a 10-minute file with three 0.5 s gaps.

The model is the bundled default when there is one, else the cpu-small preset with RANDOM weights
(the speed is the same as trained weights of that size; the output is not a restoration). Times are
for `a2sb.restore` file to file (what `a2sb restore` runs), after the model is loaded.

    python benchmarks/restore_speed.py --device cuda                 # RTF, default steps
    python benchmarks/restore_speed.py --steps 10 --inpaint-minutes 10 --device cuda
    python benchmarks/restore_speed.py --skip-full                   # fast inpainting only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from long_audio import write_synthetic  # noqa: E402


def pick_model(name: str | None) -> str:
    from a2sb.model import bundled_models

    if name:
        return name
    if "default" in bundled_models():
        return "default"
    print("no bundled model: using the cpu-small preset with random weights", flush=True)
    return "preset:cpu-small"


def timed_restore(src, dst, model, **options) -> float:
    from a2sb import restorer

    t0 = time.perf_counter()
    restorer.restore(src, dst, model=model, overwrite=True, **options)
    if str(model.device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="bundled name, folder, or preset:NAME (default: see above)")
    parser.add_argument("--steps", type=int, default=None, help="time grid points (default: the model's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length for the real-time factor")
    parser.add_argument("--inpaint-minutes", type=float, default=10.0)
    parser.add_argument("--skip-rtf", action="store_true")
    parser.add_argument("--skip-full", action="store_true", help="do not run every window for comparison")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torch

    from a2sb import restorer

    batch = args.batch_size if args.batch_size == "auto" else int(args.batch_size)
    source = pick_model(args.model)
    t0 = time.perf_counter()
    model = restorer.resolve_model(source, args.device)
    load = time.perf_counter() - t0
    steps = args.steps or model.default_steps
    print(f"model {source} ({model.num_parameters():,} parameters) on {model.device}, {steps} steps "
          f"({steps - 1} network calls per window), load {load:.1f} s, torch threads {torch.get_num_threads()}",
          flush=True)
    results = {"model": source, "device": str(model.device), "steps": steps}
    common = dict(steps=steps, batch_size=batch)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        # warm-up on 3 s (CUDA context, kernel selection), so it is not counted in the first measurement
        warm = Path(tmp) / "warm.wav"
        write_synthetic(warm, 0.05)
        timed_restore(warm, Path(tmp) / "warm_out.wav", model, cutoff=8000, gaps=None, **{**common, "steps": 2})
        if not args.skip_rtf:
            clip = Path(tmp) / "clip.wav"
            write_synthetic(clip, args.seconds / 60)
            seconds = timed_restore(clip, Path(tmp) / "clip_out.wav", model, cutoff=8000, gaps=None, **common)
            results["rtf"] = seconds / args.seconds
            print(f"bandwidth extension of {args.seconds:g} s stereo: {seconds:.1f} s, real-time factor "
                  f"{results['rtf']:.3f}", flush=True)
        if args.inpaint_minutes > 0:
            long = Path(tmp) / "long.wav"
            gaps = write_synthetic(long, args.inpaint_minutes, gap_seconds=0.5)
            fast = timed_restore(long, Path(tmp) / "fast.wav", model, cutoff=None, gaps=gaps, **common)
            results["fast_inpainting_s"] = fast
            print(f"inpainting {len(gaps)} x 0.5 s gaps in {args.inpaint_minutes:g} min stereo: fast {fast:.1f} s",
                  flush=True)
            if not args.skip_full:
                full = timed_restore(long, Path(tmp) / "full.wav", model, cutoff=None, gaps=gaps,
                                     fast_inpainting=False, **common)
                results["every_window_s"] = full
                results["speedup"] = full / fast
                print(f"  every window: {full:.1f} s -> fast inpainting is {full / fast:.1f}x faster", flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
