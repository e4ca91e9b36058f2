#!/usr/bin/env python3
"""A second full-band reference set for EVALUATION ONLY: new pieces rendered with soundfonts no training
data uses.

The pieces come from the project's own composer (scripts/make_example.py, the one scripts/prepare_data.py
renders the training set with), from seeds 900000 up (FULLBAND_SEED + 100·i, the next one while a piece
has no cymbals; the training renders use 20000 + i), alternating rock (full drum kit: hi-hats, ride,
crashes) and mixed General MIDI ensembles with drums.
Each piece is rendered with FluidSynth once per soundfont found among SOUNDFONTS (Debian's
timgm6mb-soundfont and musescore-general-soundfont; FluidR3_GM, the training soundfont, is never used
here) and the middle CLIP_SECONDS are kept:

    data/fullband_clips/<soundfont>/fb-<i>-<style>.flac     stereo, 44.1 kHz, 24-bit, 10 s
    data/fullband_clips/fullband.json                        what each clip is (seed, style, instruments...)

Every clip is checked to be full band: its power above 16 kHz relative to the whole clip
(`above_16k_db`) must be above FULLBAND_MIN_DB, else the script says so and exits with status 1. These
soundfonts and clips must never enter a training manifest (docs/data.md).

    apt-get install -y fluidsynth timgm6mb-soundfont musescore-general-soundfont
    python scripts/make_fullband_set.py [--out data/fullband_clips] [--pieces 8] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_example import (  # noqa: E402  (our own composer and renderer)
    compose_styled_piece,
    describe_midi,
    instrument_names,
    render_with_fluidsynth,
)
from prepare_data import DRUM_GROUPS, high_band_db  # noqa: E402

FULLBAND_SEED = 900000  # training renders: RENDERED_SEED (20000) + i, far below
FULLBAND_STYLES = ("rock", "mixed")
CLIP_SECONDS = 10.0
FULLBAND_MIN_DB = -60.0  # power above 16 kHz relative to the clip's: below this the clip is not full band
SOUNDFONTS = {  # sub-folder -> candidate files (the first that exists); none of them is used for training
    "timgm6mb": ["/usr/share/sounds/sf2/TimGM6mb.sf2"],
    "musescore": ["/usr/share/sounds/sf3/MuseScore_General_Full.sf3", "/usr/share/sounds/sf2/MuseScore_General.sf2",
                  "/usr/share/sounds/sf3/MuseScore_General.sf3"],
}


def fullband_piece(i: int, seconds: float) -> tuple[str, int, str, bytes]:
    """(name, seed, style, MIDI) of piece i of the full-band set: the first seed from FULLBAND_SEED + 100·i
    whose piece has cymbals or hi-hats (the mixed style leaves out drums in 30 % of its pieces)."""
    style = FULLBAND_STYLES[i % len(FULLBAND_STYLES)]
    cymbals = {k for group in ("hi-hat", "crash", "ride", "china/splash") for k in DRUM_GROUPS[group]}
    for seed in range(FULLBAND_SEED + 100 * i, FULLBAND_SEED + 100 * (i + 1)):
        midi = compose_styled_piece(style, seed, seconds + 3.0)  # rendered longer, the middle kept
        if cymbals & set(describe_midi(midi)["drum_keys"]):
            break
    return f"fb-{i:02d}-{style}", seed, style, midi


def middle(path: Path, seconds: float) -> None:
    """Keep the middle `seconds` of a rendered file (in place); shorter files are left whole."""
    audio, rate = sf.read(str(path), always_2d=True)
    n = int(round(seconds * rate))
    if len(audio) > n:
        start = (len(audio) - n) // 2
        audio = audio[start : start + n]
    sf.write(str(path), audio, rate, subtype="PCM_24")


def render_set(out: Path, pieces: int, seconds: float) -> list[dict]:
    found = {name: next((Path(p) for p in places if Path(p).is_file()), None) for name, places in SOUNDFONTS.items()}
    for name, path in found.items():
        print(f"[fullband] soundfont {name}: {path or 'not installed, skipped'}")
    found = {name: path for name, path in found.items() if path is not None}
    if not found:
        sys.exit("no evaluation soundfont installed: apt-get install -y timgm6mb-soundfont musescore-general-soundfont")
    details = []
    for i in range(pieces):
        name, seed, style, midi_bytes = fullband_piece(i, seconds)
        info = describe_midi(midi_bytes)
        drums = [g for g, keys in DRUM_GROUPS.items() if set(keys) & set(info["drum_keys"])]
        for font, sf2 in found.items():
            folder = out / font
            folder.mkdir(parents=True, exist_ok=True)
            flac = folder / f"{name}.flac"
            with tempfile.TemporaryDirectory() as tmp:
                midi = Path(tmp) / f"{name}.mid"
                midi.write_bytes(midi_bytes)
                render_with_fluidsynth(midi, flac, sf2)
            middle(flac, seconds)
            levels = high_band_db(flac)
            clip = {"file": f"{font}/{flac.name}", "soundfont": font, "soundfont_file": str(sf2), "seed": seed,
                    "style": style, "bpm": round(info["bpm"]), "instruments": instrument_names(info), "drums": drums,
                    "duration": round(sf.info(str(flac)).duration, 3), **levels,
                    "full_band": bool(levels["above_16k_db"] > FULLBAND_MIN_DB)}
            details.append(clip)
            print(f"[fullband] {clip['file']:32s} {style:5s} {clip['duration']:4.1f} s  >8 kHz "
                  f"{levels['above_8k_db']:+6.1f} dB  >16 kHz {levels['above_16k_db']:+6.1f} dB  "
                  f"{'full band' if clip['full_band'] else 'NOT FULL BAND'}  drums: {', '.join(drums) or 'none'}")
    (out / "fullband.json").write_text(json.dumps(details, indent=1) + "\n")
    return details


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="data/fullband_clips", help="output folder (default data/fullband_clips)")
    parser.add_argument("--pieces", type=int, default=8, help="pieces per soundfont (default 8)")
    parser.add_argument("--seconds", type=float, default=CLIP_SECONDS, help="clip length (default 10)")
    args = parser.parse_args(argv)
    details = render_set(Path(args.out), args.pieces, args.seconds)
    narrow = [d["file"] for d in details if not d["full_band"]]
    high = np.array([d["above_16k_db"] for d in details])
    print(f"[fullband] {len(details)} clips in {args.out}; power above 16 kHz {high.min():+.1f} to "
          f"{high.max():+.1f} dB of the clip's")
    if narrow:
        print(f"[fullband] not full band (above 16 kHz at most {FULLBAND_MIN_DB:g} dB): {', '.join(narrow)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
