#!/usr/bin/env python3
"""Render the project's example clip and its damaged versions.

The music is the opening theme of Beethoven's "Ode to Joy" (Symphony No. 9, 1824; public domain), with
the notes, harmony, bass line and drum part written out in this file for this project. It is turned into
a MIDI file by the small writer below and rendered at 44.1 kHz by FluidSynth with the Fluid R3 General MIDI
soundfont (MIT licence, Frank Wen). Nothing else third-party goes into the audio.

Writes (default folder examples/):
  example.flac            clean, 44.1 kHz stereo, 16-bit FLAC (all three are 16-bit)
  example_lowpassed.flac  lowpassed at 4 kHz (8th-order Butterworth, zero phase with sosfiltfilt)
  example_gaps.flac       two 0.3 s digital-silence gaps centred at 3.0 s and 7.0 s

Usage:  python scripts/make_example.py [--soundfont PATH] [--out-dir examples]
Needs the `fluidsynth` program (apt-get install fluidsynth) and FluidR3_GM.sf2 (Debian's
fluid-soundfont-gm; scripts/prepare_data.py extracts it into data/pkgs/).

The MIDI writer, `compose_random_piece` and `render_with_fluidsynth` are also used by
scripts/prepare_data.py --rendered to make extra training material.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
try:
    from a2sb.audio import read_audio, write_audio
    from a2sb.degrade import insert_gaps, lowpass
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT / "src"))
    from a2sb.audio import read_audio, write_audio
    from a2sb.degrade import insert_gaps, lowpass

SAMPLE_RATE = 44100
PPQ = 480  # MIDI ticks per quarter note
DRUMS = 9  # General MIDI percussion channel (channel 10, counted from 0)
SOUNDFONT_PLACES = (
    ROOT / "data/pkgs/fluid-soundfont-gm/usr/share/sounds/sf2/FluidR3_GM.sf2",
    Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"),
)
LENGTH_S = 10.0
LOWPASS_HZ = 4000.0
GAPS_S = [(2.85, 3.15), (6.85, 7.15)]  # 0.3 s each, centred at 3.0 s and 7.0 s


# ------------------------------------------------------------------------------------------- MIDI writer


class Midi:
    """Collects notes and controller settings, and serialises them as a format-0 Standard MIDI File."""

    def __init__(self, bpm: float):
        self.bpm = bpm
        self.events: list[tuple[int, int, bytes]] = []  # (tick, order, message); note-offs sort first

    def setup(
        self, channel: int, program: int | None, volume: int = 100, pan: int = 64, reverb: int = 40, chorus: int = 0
    ) -> None:
        msgs = [
            bytes([0xB0 | channel, 7, volume]),
            bytes([0xB0 | channel, 10, pan]),
            bytes([0xB0 | channel, 91, reverb]),
            bytes([0xB0 | channel, 93, chorus]),
        ]
        if program is not None:
            msgs.append(bytes([0xC0 | channel, program]))
        self.events += [(0, 0, m) for m in msgs]

    def note(self, channel: int, pitch: int, start_beats: float, length_beats: float, velocity: int) -> None:
        on = int(round(start_beats * PPQ))
        off = max(on + 1, int(round((start_beats + length_beats) * PPQ)))
        pitch, velocity = int(np.clip(pitch, 0, 127)), int(np.clip(velocity, 1, 127))
        self.events.append((on, 2, bytes([0x90 | channel, pitch, velocity])))
        self.events.append((off, 1, bytes([0x80 | channel, pitch, 0])))

    def to_bytes(self) -> bytes:
        tempo = int(round(60_000_000 / self.bpm))
        track = bytearray(b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big"))
        now = 0
        for tick, _, message in sorted(self.events, key=lambda e: (e[0], e[1])):
            track += _varlen(tick - now) + message
            now = tick
        track += b"\x00\xff\x2f\x00"  # end of track
        header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, PPQ)
        return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


# ------------------------------------------------------------------------------------------ the example

# Scale degrees of C major as MIDI notes (melody written one octave up, as a bright lead).
NOTE = {"C": 72, "D": 74, "E": 76, "F": 77, "G": 79}
# "Ode to Joy": bars 1-3 of the first phrase and the cadence of the second; NAME[:BEATS], bars split by |.
MELODY_TEXT = "E E F G | G F E D | C C D E | D:1.5 C:0.5 C:2"
MELODY = [(item.split(":")[0], float(item.split(":")[1]) if ":" in item else 1.0)
          for item in MELODY_TEXT.replace("|", " ").split()]  # fmt: skip
# Harmony per half bar over 4 bars plus a closing bar: chord -> (bass root, chord tones) as MIDI notes.
CHORD_TONES = {
    "C": (48, (60, 64, 67)),
    "G": (43, (59, 62, 67)),
    "G7": (43, (59, 62, 65)),
    "Am": (45, (60, 64, 69)),
    "F": (41, (60, 65, 69)),
}
CHORDS = [CHORD_TONES[name] for name in "C C  G G7  Am F  G C  C C".split()]


def compose_example(bpm: float = 120.0) -> bytes:
    """Our arrangement of the theme for lead, bells, strings, piano, bass and a drum kit."""
    m = Midi(bpm)
    lead, bells, strings, piano, bass = 0, 1, 2, 3, 4
    m.setup(lead, 56, volume=96, pan=56, reverb=50)  # trumpet
    m.setup(bells, 9, volume=70, pan=88, reverb=60)  # glockenspiel, an octave above the tune
    m.setup(strings, 48, volume=70, pan=30, reverb=70, chorus=30)  # string ensemble
    m.setup(piano, 6, volume=72, pan=100, reverb=40)  # harpsichord: bright plucked chords
    m.setup(bass, 33, volume=100, pan=64, reverb=10)  # finger bass
    m.setup(DRUMS, None, volume=110, pan=64, reverb=30)
    t = 0.0
    for name, beats in MELODY:
        m.note(lead, NOTE[name], t, beats * 0.95, 100)
        m.note(bells, NOTE[name] + 12, t, min(beats, 1.0), 80)
        t += beats
    for i, (root, tones) in enumerate(CHORDS):
        start = 2.0 * i
        hold = 4.0 if i == len(CHORDS) - 2 else 2.0
        if i == len(CHORDS) - 1:
            continue  # the closing chord rings over both of the last half bars
        for p in tones:
            m.note(strings, p, start, hold * 0.98, 70)
        for k in range(4 if hold == 2.0 else 2):  # harpsichord eighth-note arpeggio
            m.note(piano, tones[k % 3] + 12, start + 0.5 * k, 0.5, 78)
        m.note(bass, root - 12, start, 0.9, 105)
        m.note(bass, root - 12 + (7 if i % 2 else 12), start + 1.0, 0.9, 95)
    bars = 4
    for bar in range(bars):
        b = 4.0 * bar
        m.note(DRUMS, 49 if bar in (0, 2) else 57, b, 1.0, 110)  # crash cymbal 1 / 2
        for k in range(8):  # hi-hat eighths, open on the last off-beat
            m.note(DRUMS, 46 if k == 7 else 42, b + 0.5 * k, 0.5, 95 if k % 2 == 0 else 70)
        for k in range(4):
            m.note(DRUMS, 54, b + k + 0.5, 0.25, 75)  # tambourine on the off-beats
        m.note(DRUMS, 36, b, 0.5, 115)
        m.note(DRUMS, 36, b + 2.5, 0.5, 100)
        m.note(DRUMS, 38, b + 1, 0.5, 105)
        m.note(DRUMS, 38, b + 3, 0.5, 110)
        if bar == bars - 1:
            for k in range(4):  # snare fill into the last chord
                m.note(DRUMS, 38, b + 3 + 0.25 * k, 0.25, 80 + 8 * k)
    m.note(DRUMS, 49, 16.0, 4.0, 120)  # final crash and ride bell over the last chord
    m.note(DRUMS, 53, 16.0, 4.0, 90)
    m.note(DRUMS, 36, 16.0, 0.5, 120)
    return m.to_bytes()


# ------------------------------------------------------------------------------- random pieces (training)

MELODIC_PROGRAMS = [p for p in range(0, 112) if p not in range(96, 104)]  # skip the "synth FX" family
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10), "dorian": (0, 2, 3, 5, 7, 9, 10)}
PROGRESSIONS = [(0, 5, 3, 4), (0, 3, 4, 0), (0, 4, 5, 3), (5, 3, 0, 4), (0, 1, 4, 0), (0, 3, 0, 4)]


def compose_random_piece(seed: int, seconds: float = 60.0) -> bytes:
    """A seeded piece of our own: random key, mode, tempo, progression, instruments and drums."""
    rng = random.Random(seed)
    bpm = rng.choice([72, 84, 96, 108, 120, 132, 144])
    tonic = 48 + rng.randrange(12)
    scale = SCALES[rng.choice(list(SCALES))]
    progression = rng.choice(PROGRESSIONS)
    m = Midi(bpm)
    roles = ["lead", "pad", "arp", "bass"]
    programs = {role: rng.choice(MELODIC_PROGRAMS) for role in roles}
    programs["bass"] = rng.choice([32, 33, 34, 35, 36, 38, 39, 42, 43, 58, 70, 71, 0, 4])
    for ch, role in enumerate(roles):
        m.setup(
            ch,
            programs[role],
            volume=rng.randrange(70, 110),
            pan=rng.randrange(20, 108),
            reverb=rng.randrange(10, 80),
            chorus=rng.randrange(0, 50),
        )
    drums = rng.random() < 0.7
    if drums:
        m.setup(DRUMS, None, volume=rng.randrange(80, 115), reverb=rng.randrange(10, 50))

    def degree(d: int, octave: int = 0) -> int:
        return tonic + scale[d % 7] + 12 * (d // 7 + octave)

    bars = int(np.ceil(seconds * bpm / 60 / 4)) + 1
    last = degree(0, 1)
    for bar in range(bars):
        t0 = 4.0 * bar
        root = progression[bar % len(progression)]
        chord = [root, root + 2, root + 4]
        for d in chord:
            m.note(1, degree(d, 1), t0, 3.9, rng.randrange(50, 80))
        m.note(3, degree(root, -1), t0, 1.8, rng.randrange(85, 115))
        m.note(3, degree(root + rng.choice([0, 4, 7]), -1), t0 + 2, 1.8, rng.randrange(75, 105))
        step = rng.choice([0.25, 0.5])
        for k in range(int(4 / step)):
            m.note(2, degree(chord[k % 3], 2), t0 + k * step, step, rng.randrange(50, 90))
        t = t0
        while t < t0 + 4:
            beats = rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0])
            beats = min(beats, t0 + 4 - t)
            if rng.random() < 0.85:
                target = degree(rng.choice(chord) + 7 * rng.choice([1, 1, 2]), 0)
                last = int(np.clip(last + np.sign(target - last) * rng.choice([1, 2, 3, 4]), 60, 96))
                m.note(0, last, t, beats * 0.9, rng.randrange(70, 120))
            t += beats
        if drums:
            for k in range(8):
                m.note(DRUMS, rng.choice([42, 42, 44, 46, 51, 54, 70]), t0 + 0.5 * k, 0.5, rng.randrange(50, 100))
            m.note(DRUMS, 36, t0, 0.5, 110)
            m.note(DRUMS, 36, t0 + rng.choice([2, 2.5]), 0.5, 100)
            m.note(DRUMS, rng.choice([38, 40, 39]), t0 + 1, 0.5, 100)
            m.note(DRUMS, rng.choice([38, 40, 39]), t0 + 3, 0.5, 105)
            if bar % 4 == 0:
                m.note(DRUMS, rng.choice([49, 57, 55, 52]), t0, 2.0, 110)
    return m.to_bytes()


# ----------------------------------------------------------------------------------------------- render


def find_soundfont(given: str | None = None) -> Path:
    for place in ([Path(given)] if given else []) + list(SOUNDFONT_PLACES):
        if place.is_file():
            return place
    sys.exit(
        "FluidR3_GM.sf2 not found: run scripts/prepare_data.py (it extracts Debian's fluid-soundfont-gm "
        "into data/pkgs) or apt-get install fluid-soundfont-gm, or pass --soundfont"
    )


def render_with_fluidsynth(midi: Path, out: Path, soundfont: Path, gain: float = 0.5) -> None:
    """Render a MIDI file to a 44.1 kHz stereo FLAC (24-bit) normalised to -1 dBFS peak."""
    if shutil.which("fluidsynth") is None:
        sys.exit("the fluidsynth program is missing: apt-get install fluidsynth")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "render.wav"
        cmd = [
            "fluidsynth",
            "-q",
            "-n",
            "-i",
            "-g",
            str(gain),
            "-r",
            str(SAMPLE_RATE),
            "-O",
            "float",
            "-T",
            "wav",
            "-F",
            str(wav),
            str(soundfont),
            str(midi),
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        audio, rate = read_audio(wav, sample_rate=None)
    if rate != SAMPLE_RATE:
        raise RuntimeError(f"fluidsynth rendered at {rate} Hz, expected {SAMPLE_RATE}")
    write_audio(out, normalise(audio), SAMPLE_RATE)


def normalise(audio: np.ndarray, peak_db: float = -1.0) -> np.ndarray:
    peak = float(np.abs(audio).max())
    return audio if peak == 0 else (audio * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def band_levels(audio: np.ndarray) -> dict[str, float]:
    """Level of each band relative to the whole signal's power (dB), from a Welch PSD of the mid channel."""
    f, p = scipy.signal.welch(audio.mean(axis=0), SAMPLE_RATE, nperseg=4096)
    total = p.sum()
    bands = {
        "0-4k": (0, 4e3),
        "4-8k": (4e3, 8e3),
        "8-12k": (8e3, 12e3),
        "12-16k": (12e3, 16e3),
        "16-18k": (16e3, 18e3),
        "18-20k": (18e3, 20e3),
        "20-22k": (20e3, 22.05e3),
    }
    return {k: float(10 * np.log10(p[(f >= lo) & (f < hi)].sum() / total + 1e-30)) for k, (lo, hi) in bands.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Render examples/example*.flac (see the module docstring).")
    ap.add_argument("--soundfont", help="path of FluidR3_GM.sf2 (default: data/pkgs/... or /usr/share/...)")
    ap.add_argument("--out-dir", type=Path, default=ROOT / "examples")
    args = ap.parse_args(argv)
    soundfont = find_soundfont(args.soundfont)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    print(f"soundfont: {soundfont}")
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "example.mid"
        midi.write_bytes(compose_example())
        raw = Path(tmp) / "raw.flac"
        render_with_fluidsynth(midi, raw, soundfont)
        audio, _ = read_audio(raw, sample_rate=None)
    n = int(LENGTH_S * SAMPLE_RATE)
    audio = np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]
    fade = int(1.5 * SAMPLE_RATE)  # the closing chord fades out instead of being cut
    audio[:, -fade:] *= np.cos(np.linspace(0, np.pi / 2, fade)) ** 2
    audio = normalise(audio)
    clean = out / "example.flac"
    write_audio(clean, audio, SAMPLE_RATE, subtype="PCM_16")
    write_audio(
        out / "example_lowpassed.flac",
        lowpass(audio, SAMPLE_RATE, LOWPASS_HZ, "butter", 8),
        SAMPLE_RATE,
        subtype="PCM_16",
    )
    write_audio(out / "example_gaps.flac", insert_gaps(audio, SAMPLE_RATE, GAPS_S), SAMPLE_RATE, subtype="PCM_16")
    for name in ("example.flac", "example_lowpassed.flac", "example_gaps.flac"):
        path = out / name
        info = sf.info(str(path))
        x, _ = read_audio(path, sample_rate=None)
        levels = "  ".join(f"{k} {v:6.1f}" for k, v in band_levels(x).items())
        print(
            f"{path}: {info.duration:.2f} s, {info.channels} ch, {info.samplerate} Hz, {info.subtype}, "
            f"{os.path.getsize(path) / 1e6:.2f} MB\n    band level vs total (dB): {levels}"
        )


if __name__ == "__main__":
    main()
