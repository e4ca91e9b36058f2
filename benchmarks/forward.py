"""Time one network forward pass per window (3×1024×256) for each preset; print parameters, FLOPs per
window and achieved FLOP/s.

    python benchmarks/forward.py [--presets tiny,cpu-small,cpu-base,paper] [--batch 1] [--repeats 3]
                                 [--device cpu|cuda] [--dtype float32|bfloat16] [--autocast]
                                 [--memory-format channels_last|contiguous]

FLOPs are counted with torch.utils.flop_counter (2 per multiply-add) on a meta-device pass (no compute);
the first real pass is a warm-up unless --no-warmup (used for the 565M paper network on a CPU).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from a2sb.network import AttnUNetF, preset, time_embedding, time_multipliers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default="tiny,cpu-small,cpu-base,paper")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--memory-format", default="channels_last", choices=["channels_last", "contiguous"],
                        help="layout of the weights (A2SBModel uses channels_last)")
    parser.add_argument("--autocast", action="store_true", help="bf16 autocast on float32 weights")
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{platform.processor() or 'cpu'}"
    print(f"device: {name}, threads {torch.get_num_threads()}, torch {torch.__version__}, dtype {args.dtype}, "
          f"{'bf16 autocast, ' if args.autocast else ''}{args.memory_format} weights, batch {args.batch}, "
          f"window 3x1024x{args.width}")
    print(f"{'preset':<10} {'params':>12} {'GFLOP/window':>13} {'s/window':>10} {'GFLOP/s':>9}")
    for name in args.presets.split(","):
        cfg = preset(name)
        with torch.device("meta"), FlopCounterMode(display=False) as counter:
            AttnUNetF(cfg)(torch.zeros(args.batch, 3, 1024, args.width), torch.zeros(args.batch, cfg.emb_channels))
        flops = counter.get_total_flops() / args.batch
        layout = torch.channels_last if args.memory_format == "channels_last" else torch.contiguous_format
        net = AttnUNetF(cfg).to(device, dtype, memory_format=layout).eval()
        x = torch.randn(args.batch, 3, 1024, args.width, device=device, dtype=dtype)
        emb = time_embedding(torch.rand(args.batch, device=device), time_multipliers(cfg.emb_channels).to(device))
        emb = emb.to(dtype)
        cast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.autocast)
        with torch.inference_mode(), cast:
            if not args.no_warmup:
                net(x, emb)
            times = []
            for _ in range(args.repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                net(x, emb)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append((time.perf_counter() - start) / args.batch)
        best = min(times)
        print(f"{name:<10} {net.num_parameters():>12,} {flops / 1e9:>13.1f} {best:>10.3f} {flops / best / 1e9:>9.1f}")
        del net


if __name__ == "__main__":
    main()
