"""Training throughput: segments per second of the training step for each network preset, and of the
data loader alone.

    python benchmarks/train_throughput.py                       # tiny, cpu-small, cpu-base (+ paper on GPU)
    python benchmarks/train_throughput.py --presets paper --batch 10 --steps 20
    python benchmarks/train_throughput.py --loader-workers 0 2 8 --skip-train
    python benchmarks/train_throughput.py --presets cpu-small --threads 1 --precision fp32 bf16 \
        --memory-format channels_last contiguous --loader-workers     # CPU: layouts and precisions side by side

The step is the real one (`a2sb.training.trainer.Trainer.train_step`: STFT picture and masks via build_batch,
bridge sample, forward/backward, clip, RAdam) on synthetic waveforms, so no audio files are needed;
on CUDA it runs with the configured precision (bf16 autocast by default). The loader benchmark writes
synthetic audio files to a temporary folder and times `a2sb.training.datasets.make_loader` (decode, crop, degrade),
which needs soundfile.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np
import torch

from a2sb.representation import N_ROWS
from a2sb.training.config import DataConfig, load_config
from a2sb.training.datasets import TrainingSet, make_loader
from a2sb.training.pictures import build_batch
from a2sb.training.trainer import Trainer

SR = 44100


def synthetic_batch(batch: int, samples: int, seed: int = 0) -> dict:
    """Collated items as the training set yields them: half BWE, half inpainting."""
    g = torch.Generator().manual_seed(seed)
    frames = 1 + samples // 512
    clean = 0.1 * torch.randn(batch, samples, generator=g)
    cutoff = torch.where(torch.arange(batch) % 2 == 0, torch.tensor(371), torch.tensor(N_ROWS))
    gap = torch.tensor([[0, 0] if i % 2 == 0 else [frames // 3, frames // 2] for i in range(batch)])
    return {"clean": clean, "degraded": clean.clone(), "cutoff_row": cutoff, "gap": gap,
            "true_row": torch.full((batch,), N_ROWS)}


def bench_step(preset: str, batch: int, samples: int, steps: int, warmup: int, device: str,
               precision: str, memory_format: str = "channels_last") -> dict:
    config = load_config({
        "model": {"preset": preset},
        "data": {"manifests": [], "segment_samples": samples},
        "trainer": {"batch_size": batch, "precision": precision, "device": device},
    })
    dev = torch.device(device)
    trainer = Trainer(config, dev)
    if memory_format == "contiguous":  # the trainer's own is channels_last: compare with the plain layout
        trainer.module.to(memory_format=torch.contiguous_format)
    raw = {k: v.to(dev) for k, v in synthetic_batch(batch, samples).items()}

    def build(b):
        return build_batch(b, prior=config.data.x1_prior())

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for s in range(warmup):
        trainer.train_step([raw], s, build=build)
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for s in range(steps):
        result = trainer.train_step([raw], warmup + s, build=build)
    sync()
    elapsed = time.perf_counter() - start
    params = sum(p.numel() for p in trainer.net.parameters())
    out = {"preset": preset, "precision": precision, "layout": memory_format, "params_M": params / 1e6,
           "batch": batch, "s_per_step": elapsed / steps,
           "samples_per_s": batch * steps / elapsed, "loss": result.loss}
    if dev.type == "cuda":
        out["peak_GiB"] = torch.cuda.max_memory_allocated() / 2**30
    return out


def bench_loader(workers: int, batch: int, samples: int, batches: int, folder: str) -> dict:
    manifest = os.path.join(folder, "manifest.csv")
    if not os.path.exists(manifest):
        import soundfile as sf

        rows = ["split,file_path,duration,estimated_true_sr"]
        t = np.arange(20 * SR) / SR
        for i in range(8):
            rng = np.random.default_rng(i)
            x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in rng.uniform(100, 8000, 4))
            rate = (44100, 48000)[i % 2]  # half the files need resampling
            x = x[:: 1] if rate == SR else np.interp(np.arange(20 * rate) / rate, t, x)
            path = os.path.join(folder, f"f{i}.flac")
            sf.write(path, np.stack([x, x], 1).astype(np.float32), rate)
            rows.append(f"train,{path},20.0,{rate}")
        with open(manifest, "w") as f:
            f.write("\n".join(rows) + "\n")
    config = DataConfig.from_dict({"manifests": [manifest], "segment_samples": samples})
    ds = TrainingSet(config, seed=0)
    loader = make_loader(ds, batch, workers=workers)
    it = iter(loader)
    next(it)  # worker start-up is not throughput
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    elapsed = time.perf_counter() - start
    return {"workers": workers, "batch": batch, "samples_per_s": batch * batches / elapsed}


def table(rows: list[dict], keys: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(k, "")) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.rjust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", nargs="+", help="default: tiny cpu-small cpu-base (+ paper on CUDA)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "bf16", "fp32"],
                   help="bf16 autocast, float32, or auto (bf16 on CUDA, fp32 on CPU); several: side by side")
    p.add_argument("--memory-format", nargs="+", default=["channels_last"], choices=["channels_last", "contiguous"],
                   help="layout of the weights (the trainer uses channels_last); several: side by side")
    p.add_argument("--batch", type=int, help="segments per step (default 10 on CUDA, 2 on CPU)")
    p.add_argument("--segment", type=int, default=130560, help="samples per segment (default 130560, W=256)")
    p.add_argument("--steps", type=int, help="timed steps (default 20 on CUDA, 3 on CPU)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--loader-workers", type=int, nargs="*", default=[0], help="loader benchmark worker counts")
    p.add_argument("--loader-batches", type=int, default=10)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    presets = args.presets or ["tiny", "cpu-small", "cpu-base"] + (["paper"] if cuda else [])
    batch = args.batch or (10 if cuda else 2)
    steps = args.steps or (20 if cuda else 3)
    where = torch.cuda.get_device_name() if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {where}; segment {args.segment} samples, precision "
          f"{', '.join(args.precision)}", flush=True)
    if not args.skip_train:
        rows = []
        for name in presets:
            for precision in args.precision:
                for layout in args.memory_format:
                    try:
                        rows.append(bench_step(name, batch, args.segment, steps, args.warmup, args.device,
                                               precision, layout))
                    except torch.cuda.OutOfMemoryError:
                        rows.append({"preset": name, "batch": batch, "loss": "out of memory"})
                        torch.cuda.empty_cache()
                    print(table(rows[-1:], list(rows[-1])), flush=True)
        keys = ["preset", "precision", "layout", "params_M", "batch", "s_per_step", "samples_per_s"]
        keys += ["peak_GiB"] if cuda else []
        print("\ntraining step\n" + table(rows, keys), flush=True)
    if args.loader_workers:
        try:
            import soundfile  # noqa: F401
        except ImportError:
            print("\nloader benchmark skipped: soundfile is not installed", file=sys.stderr)
            return 0
        rows = []
        with tempfile.TemporaryDirectory() as folder:
            for w in args.loader_workers:
                rows.append(bench_loader(w, batch, args.segment, args.loader_batches, folder))
        print("\ndata loader (decode, crop, degrade; no STFT)\n" + table(rows, ["workers", "batch", "samples_per_s"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
