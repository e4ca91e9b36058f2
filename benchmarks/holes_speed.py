"""What codec repair costs (issue 25): the hole search of one 256-frame block (`a2sb.holes.hole_cells`,
stereo, with its margins), and a 10 s stereo MP3 of examples/example.flac (~56 kbit/s) restored by the
bundled model with holes repaired and with `holes="off"`, side by side in one run (best of `--rounds`).

    python benchmarks/holes_speed.py --rounds 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

from a2sb import Restorer
from a2sb.holes import MARGIN_FRAMES, hole_cells
from a2sb.representation import HOP, stft

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    x, rate = sf.read(ROOT / "examples" / "example.flac", dtype="float32")
    block = torch.from_numpy(x[: (256 + 2 * MARGIN_FRAMES) * HOP].T.copy())
    spec = stft(block)
    hole_cells(spec, 700)  # warm-up (imports)
    started = time.perf_counter()
    for _ in range(5):
        hole_cells(spec, 700)
    print(f"hole search, one 256-frame stereo block: {(time.perf_counter() - started) / 5:.3f} s")
    restorer = Restorer()
    with tempfile.TemporaryDirectory() as tmp:
        mp3 = Path(tmp) / "example.mp3"
        sf.write(mp3, x, rate, format="MP3", subtype="MPEG_LAYER_III", compression_level=0.9,
                 bitrate_mode="CONSTANT")
        times = {"auto": [], "off": []}
        for _ in range(args.rounds):
            for holes in times:
                started = time.perf_counter()
                restorer.restore_file(mp3, Path(tmp) / f"out-{holes}.flac", holes=holes, overwrite=True)
                times[holes].append(time.perf_counter() - started)
        plan = restorer.analyse(mp3)
    auto, off = min(times["auto"]), min(times["off"])
    print(f"10 s stereo MP3 ({plan.codec}, holes {100 * plan.hole_share:.1f} %): holes repaired {auto:.1f} s, "
          f"holes off {off:.1f} s, ratio {auto / off:.2f}")


if __name__ == "__main__":
    main()
