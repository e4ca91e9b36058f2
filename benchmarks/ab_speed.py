"""Restoration speed of two checkouts side by side: each checkout's own benchmarks/restore_speed.py runs
with that checkout's package (PYTHONPATH=<checkout>/src), the two alternating for a few rounds in one
run, so both see the same machine and load. Prints each round, then the median per checkout and the
ratio new/old (above 1: the new checkout is slower).

    git worktree add --detach /tmp/before <old commit>
    python benchmarks/ab_speed.py /tmp/before . --rounds 3            # 30 s stereo BWE + 10 min inpainting

Arguments after `--` go to both restore_speed.py runs (default: --skip-full).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

KEYS = {"rtf": "BWE 30 s stereo: real-time factor", "fast_inpainting_s": "inpainting 10 min: seconds"}


def run(tree: Path, extra: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), PYTHONWARNINGS="ignore")
    done = subprocess.run([sys.executable, str(tree / "benchmarks" / "restore_speed.py"), *extra], env=env,
                          cwd=tree, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"ab_speed: {tree}: restore_speed.py failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="checkout measured first in each round (the baseline)")
    parser.add_argument("new", type=Path, help="checkout compared with it")
    parser.add_argument("--rounds", type=int, default=3)
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"] or ["--skip-full"]
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    results: dict[str, list[dict]] = {"old": [], "new": []}
    for r in range(args.rounds):
        for name in ("old", "new") if r % 2 == 0 else ("new", "old"):  # alternate who goes first
            results[name].append(run(trees[name], extra))
            shown = ", ".join(f"{k} {results[name][-1][k]:.3f}" for k in KEYS if k in results[name][-1])
            print(f"round {r + 1} {name}: {shown}", flush=True)
    for key, label in KEYS.items():
        if key not in results["old"][0]:
            continue
        old = statistics.median(x[key] for x in results["old"])
        new = statistics.median(x[key] for x in results["new"])
        print(f"{label}: old {old:.3f}, new {new:.3f}, new/old {new / old:.3f} (median of {args.rounds})")


if __name__ == "__main__":
    main()
