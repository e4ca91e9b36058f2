"""How often a finished two-process gloo DDP job aborts at exit, with and without os._exit.

    python experiments/ddp_exit.py --runs 32

Each run is `torchrun --standalone --nproc_per_node 2` of a toy script (three DDP steps of a linear layer,
one all_gather, rank 0 a second late every other run, destroy_process_group) that ends either through the
interpreter's shutdown or with os._exit(0), as `a2sb train` ranks do (a2sb.cli.training._train_command). Prints
the failed runs per ending and how many of them died of SIGABRT.
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TOY = """
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 4))
for _ in range(3):
    model(torch.randn(2, 4)).sum().backward()
dist.all_gather([torch.empty(3) for _ in range(2)], torch.ones(3))
if dist.get_rank() == 0:
    time.sleep(float(os.environ["RANK0_DELAY"]))
dist.destroy_process_group()
if os.environ["ENDING"] == "os._exit":
    sys.stdout.flush(); sys.stderr.flush(); os._exit(0)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32, help="runs per ending (default %(default)s)")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.runs} runs per ending")
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "toy_ddp.py"
        script.write_text(TOY)
        for ending in ("interpreter", "os._exit"):
            failed = aborted = 0
            for i in range(args.runs):
                env = dict(os.environ, ENDING=ending, RANK0_DELAY=str(i % 2), OMP_NUM_THREADS="1")
                proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                                       "--nproc_per_node", "2", str(script)],
                                      env=env, capture_output=True, text=True, timeout=120)
                failed += proc.returncode != 0
                aborted += "SIGABRT" in proc.stderr
            print(f"ending {ending:<12} failed {failed}/{args.runs}  (SIGABRT in {aborted})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
