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

The MIDI writer, the composers of the rendered training set (`compose_random_piece`: random General MIDI
ensembles; `compose_rock_piece`: distorted guitars, electric bass and a full drum kit; both seeded and
deterministic), `describe_midi` (what a MIDI file plays) and `render_with_fluidsynth` are also used by
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

    def bend(self, channel: int, at_beats: float, semitones: float, bend_range: float = 2.0) -> None:
        """Pitch bend to `semitones` (GM default range +-2 semitones) from `at_beats` on."""
        value = int(np.clip(round(8192 + semitones / bend_range * 8192), 0, 16383))
        self.events.append((int(round(at_beats * PPQ)), 1, bytes([0xE0 | channel, value & 0x7F, value >> 7])))

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


# ------------------------------------------------------------------------------ rock pieces (training)

# Feels and the tempos (BPM) each is played at.
ROCK_FEELS = {
    "straight": (100, 108, 116, 120, 126, 132, 138, 144),  # kick 1 and 3, snare 2 and 4
    "halftime": (120, 132, 140, 150, 160, 170),  # snare on 3 only
    "punk": (160, 168, 176, 184, 192, 200),  # kick on every beat
    "metal": (100, 108, 116, 126, 132, 140),  # double kick in sixteenths, gallops and chugs
    "shuffle": (96, 104, 112, 120, 132),  # swung eighths (the off-beat at 2/3 of the beat)
}
# Power-chord riffs: semitones above the tonic, one chord per bar; all within the natural minor scale.
ROCK_RIFFS = [
    (0, 0, 3, 5), (0, 10, 8, 10), (0, 5, 7, 5), (0, 3, 10, 5), (0, 8, 10, 0),
    (0, 7, 5, 3), (0, 10, 5, 7), (0, 0, 8, 7), (0, 5, 0, 7), (0, 3, 5, 8),
]  # fmt: skip
MINOR = (0, 2, 3, 5, 7, 8, 10)
PENTATONIC = (0, 3, 5, 7, 10)
ROCK_GUITARS = (29, 30)  # GM Overdriven Guitar, Distortion Guitar
ROCK_BASSES = (33, 34)  # GM Electric Bass (finger), Electric Bass (pick)
ROCK_KEYS = (16, 17, 18, 4, 48, 50, 61)  # organs, electric piano, string ensembles, brass section
ROCK_KITS = (0, 8, 16)  # GM2 drum kits in FluidR3_GM (bank 128): Standard, Room, Power
# General MIDI percussion keys (channel 10) used below.
KICK, SNARE, RIM, CLOSED_HAT, PEDAL_HAT, OPEN_HAT = 36, 38, 37, 42, 44, 46
CRASH1, CRASH2, RIDE, RIDE_BELL, CHINA, SPLASH = 49, 57, 51, 53, 52, 55
TOMS = (50, 48, 47, 45, 43, 41)  # high to low


def compose_rock_piece(seed: int, seconds: float = 60.0) -> bytes:
    """A seeded rock piece of our own: power-chord riffs on overdriven / distortion guitars (two, panned
    apart, or one), electric bass, a lead guitar with bends, sometimes organ / keys / strings, and a full
    drum kit on channel 10 (kick, snare, hi-hats in the verses, ride in the choruses, crashes at section
    starts, tom fills). Sections: intro, then verse / chorus / solo of 8 bars, and a final ringing chord.
    The same seed always gives the same bytes."""
    rng = random.Random(seed)
    feel = rng.choice(list(ROCK_FEELS))
    bpm = rng.choice(ROCK_FEELS[feel])
    tonic = rng.choice((38, 40, 40, 41, 42, 43, 45, 46) if feel == "metal" else (40, 40, 41, 42, 43, 44, 45, 46))
    verse_riff, chorus_riff = rng.sample(ROCK_RIFFS, 2)
    swing = feel == "shuffle"
    push = rng.random() < 0.4  # play the next bar's chord on the last eighth ("push")
    m = Midi(bpm)
    rhythm, double, lead, bass, keys = 0, 1, 2, 3, 4
    side = rng.randrange(18, 40)
    m.setup(rhythm, rng.choice(ROCK_GUITARS), volume=rng.randrange(88, 110), pan=side, reverb=rng.randrange(10, 45))
    doubled = rng.random() < 0.6  # double-tracked rhythm guitar, panned to the other side
    if doubled:
        m.setup(double, rng.choice(ROCK_GUITARS), volume=rng.randrange(85, 105), pan=128 - side,
                reverb=rng.randrange(10, 45))  # fmt: skip
    m.setup(lead, rng.choice(ROCK_GUITARS), volume=rng.randrange(80, 105), pan=rng.randrange(50, 78),
            reverb=rng.randrange(30, 70), chorus=rng.randrange(0, 30))  # fmt: skip
    m.setup(bass, rng.choice(ROCK_BASSES), volume=rng.randrange(95, 120), pan=64, reverb=rng.randrange(0, 20))
    use_keys = rng.random() < 0.4
    if use_keys:
        m.setup(keys, rng.choice(ROCK_KEYS), volume=rng.randrange(55, 80), pan=rng.randrange(30, 98),
                reverb=rng.randrange(30, 80), chorus=rng.randrange(0, 60))  # fmt: skip
    m.setup(DRUMS, rng.choice(ROCK_KITS), volume=rng.randrange(100, 124), reverb=rng.randrange(15, 50))

    def at(beat: float) -> float:
        """Swing: in a shuffle the off-beat eighth comes at 2/3 of the beat."""
        whole = np.floor(beat)
        return whole + 2 / 3 if swing and abs(beat - whole - 0.5) < 1e-9 else beat

    def hum(beat: float) -> float:  # a little timing looseness
        return max(0.0, at(beat) + rng.uniform(-0.012, 0.012))

    def hit(ch: int, pitch: int, beat: float, length: float, velocity: int) -> None:
        m.note(ch, pitch, hum(beat), length, velocity + rng.randrange(-6, 7))

    def power_chord(root: int, beat: float, length: float, velocity: int, big: bool = False) -> None:
        for ch in (rhythm, double) if doubled else (rhythm,):
            start = hum(beat)
            for p in (root, root + 7, root + 12) + ((root + 19,) if big else ()):
                m.note(ch, p, start, length, velocity + rng.randrange(-5, 6))

    bars = max(6, int(np.ceil(seconds * bpm / 240)))
    length = 8 if bars >= 24 else 4
    plan = [("intro", rng.choice((2, 4)))]
    order = ["verse", "chorus", "verse", "chorus", "solo", "chorus"]
    while sum(n for _, n in plan) < bars:
        plan.append((order[(len(plan) - 1) % len(order)], length))
    plan[-1] = (plan[-1][0], plan[-1][1] - (sum(n for _, n in plan) - bars))
    if plan[-1][1] <= 0:
        plan.pop()

    verse_guitar = rng.choice(("chug8", "gallop", "chug16") if feel == "metal" else ("chug8", "chug8", "riff"))
    chorus_guitar = rng.choice(("open8", "sustain", "sync"))
    if feel == "punk":
        verse_guitar, chorus_guitar = "chug8", "open8"
    if swing:
        verse_guitar = "chug8"
    verse_lead = rng.random() < 0.5
    hat_16ths = feel == "straight" and rng.random() < 0.3
    bar = 0
    lead_pitch = tonic + 24 + rng.choice(PENTATONIC)
    for section, count in plan:
        riff = chorus_riff if section in ("chorus", "solo") else verse_riff
        for k in range(count):
            t0 = 4.0 * bar
            root = tonic + riff[k % 4]
            after = tonic + riff[(k + 1) % 4]
            first, last = k == 0, k == count - 1
            # ----- guitars
            style = {"chorus": chorus_guitar, "solo": "open8", "verse": verse_guitar}.get(section, "sustain")
            if section == "intro" and count == 4 and k < 2:
                style = "chug8"  # the riff alone, then the band comes in
            if style == "chug8":
                for e in range(8):
                    r = after if push and e == 7 else root
                    power_chord(r, t0 + 0.5 * e, 0.2 if e % 2 else 0.3, 92 if e % 2 == 0 else 80)
            elif style == "chug16":
                for e in range(16):
                    power_chord(root, t0 + 0.25 * e, 0.15, 90 if e % 4 == 0 else 76)
            elif style == "gallop":
                for b in range(4):
                    for off, dur in ((0.0, 0.5), (0.5, 0.25), (0.75, 0.25)):
                        power_chord(root, t0 + b + off, dur * 0.6, 95 if off == 0 else 80)
            elif style == "riff":  # single-note riff on the root, octave and minor pentatonic
                for e in range(8):
                    note = root + (0 if e % 2 == 0 else rng.choice((12, 10, 7, 3, 0)))
                    for ch in (rhythm, double) if doubled else (rhythm,):
                        m.note(ch, note, hum(t0 + 0.5 * e), 0.4, 95 + rng.randrange(-6, 6))
            elif style == "open8":
                for e in range(8):
                    r = after if push and e == 7 else root
                    power_chord(r, t0 + 0.5 * e, 0.47, 110 if e % 2 == 0 else 96, big=e == 0)
            elif style == "sync":
                for off, dur in ((0.0, 1.5), (1.5, 1.0), (2.5, 1.0), (3.5, 0.5)):
                    r = after if push and off == 3.5 else root
                    power_chord(r, t0 + off, dur * 0.95, 112, big=off == 0)
            else:  # sustain: ringing chords
                power_chord(root, t0, 1.95, 115, big=True)
                power_chord(root, t0 + 2, 1.95, 105, big=True)
            # ----- bass, locked to the guitar's root
            low = root - 12 if root - 12 >= 28 else root
            if feel == "halftime" and section != "solo":
                for off in (0.0, 1.5, 2.0, 3.0):
                    hit(bass, low, t0 + off, 0.45 if off == 1.5 else 0.9, 105)
            else:
                for e in range(8):
                    note = low + (12 if section == "chorus" and e % 4 == 3 else 0)
                    if e == 7 and push:
                        note = after - 12 if after - 12 >= 28 else after
                    hit(bass, note, t0 + 0.5 * e, 0.42, 108 if e % 2 == 0 else 96)
            # ----- keys: sustained triads in the choruses
            if use_keys and section in ("chorus", "solo"):
                i = MINOR.index((root - tonic) % 12)
                triad = [root + 12 + (MINOR[(i + s) % 7] - MINOR[i]) % 12 for s in (0, 2, 4)]
                for p in triad:
                    hit(keys, p, t0, 3.9, 80)
            # ----- lead guitar: phrases on the minor pentatonic, with bends; fast runs in the solo
            if section in ("chorus", "solo") or (section == "verse" and verse_lead and k % 2 == 1):
                t = t0
                cells = (0.25, 0.25, 0.5, 0.5) if section == "solo" else (0.5, 0.5, 1.0, 1.0, 1.5, 2.0)
                while t < t0 + 4 - 1e-9:
                    dur = min(rng.choice(cells), t0 + 4 - t)
                    if rng.random() < (0.95 if section == "solo" else 0.8):
                        scale = [tonic + 24 + 12 * o + d for o in (0, 1) for d in PENTATONIC] + [tonic + 48]
                        j = min(range(len(scale)), key=lambda n: abs(scale[n] - lead_pitch))
                        j = int(np.clip(j + rng.choice((-2, -1, -1, 1, 1, 2, 0)), 0, len(scale) - 1))
                        lead_pitch = scale[j]
                        start = hum(t)
                        vel = rng.randrange(90, 120)
                        if dur >= 1.0 and rng.random() < 0.5:  # bend up a whole step into the note
                            m.bend(lead, start, -2.0)
                            for s in range(1, 5):
                                m.bend(lead, start + 0.06 * s, -2.0 + 0.5 * s)
                            m.note(lead, lead_pitch, start, dur * 0.95, vel)
                            m.bend(lead, start + dur * 0.95, 0.0)
                        else:
                            m.note(lead, lead_pitch, start, dur * 0.9, vel)
                    t += dur
            # ----- drums
            kick = {"straight": [0, 2] + rng.sample([2.5, 1.5, 3.5, 0.5], rng.randrange(0, 2)),
                    "halftime": [0, rng.choice((1.5, 2.5)), 3.5 * (rng.random() < 0.3)],
                    "punk": [0, 1, 2, 3], "metal": [0.25 * e for e in range(16)] if section != "verse"
                    else [0.5 * e for e in range(8)], "shuffle": [0, 1.5, 2, 3.5]}[feel]  # fmt: skip
            snares = [2] if feel == "halftime" else [1, 3]
            if section == "intro" and count == 4 and k < 2:
                kick, snares = [], []  # guitar alone for the first two bars
            for off in sorted(set(kick)):
                hit(DRUMS, KICK, t0 + off, 0.25, 112 if off in (0, 2) else 98)
            for off in snares:
                hit(DRUMS, SNARE, t0 + off, 0.25, 114)
            if section == "verse" and rng.random() < 0.3:  # ghost note
                hit(DRUMS, SNARE, t0 + rng.choice((1.75, 2.75, 3.25)), 0.2, 40)
            if section in ("chorus", "solo"):  # ride in the choruses, bell on the beats sometimes
                for e in range(8):
                    bell = e % 2 == 0 and rng.random() < 0.35
                    hit(DRUMS, RIDE_BELL if bell else RIDE, t0 + 0.5 * e, 0.5, 100 if e % 2 == 0 else 84)
                if feel != "halftime":
                    for b in range(4):
                        hit(DRUMS, PEDAL_HAT, t0 + b + 0.5, 0.25, 70)
                if feel == "metal" and rng.random() < 0.3:
                    hit(DRUMS, CHINA, t0 + 3, 0.5, 100)
            elif section == "verse" or (section == "intro" and not (count == 4 and k < 2)):
                step = 0.25 if hat_16ths else 0.5
                for e in range(int(4 / step)):
                    open_hat = e == int(4 / step) - 1 and k % 2 == 1
                    hit(DRUMS, OPEN_HAT if open_hat else CLOSED_HAT, t0 + step * e, step,
                        96 if e % int(1 / step) == 0 else 74)  # fmt: skip
            if first and not (section == "intro" and count == 4):
                hit(DRUMS, rng.choice((CRASH1, CRASH2)), t0, 2.0, 118)
                if rng.random() < 0.25:
                    hit(DRUMS, SPLASH, t0 + 0.5, 0.5, 95)
            elif section in ("chorus", "solo") and k % 2 == 0:
                hit(DRUMS, rng.choice((CRASH1, CRASH2)), t0, 2.0, 108)
            elif section == "intro" and count == 4 and k == 2:
                hit(DRUMS, CRASH1, t0, 2.0, 118)
            if last:  # fill into the next section: snare and toms, high to low, in sixteenths
                beats = rng.choice((1, 1, 2))
                n = 4 * beats
                for e in range(n):
                    drum = SNARE if e < n // 4 else TOMS[(e - n // 4) * len(TOMS) // (n - n // 4)]
                    hit(DRUMS, drum, t0 + 4 - beats + 0.25 * e, 0.25, 90 + 2 * e)
            bar += 1
    # ----- the end: one ringing chord with crashes
    t0 = 4.0 * bar
    power_chord(tonic, t0, 3.8, 118, big=True)
    hit(bass, tonic - 12 if tonic - 12 >= 28 else tonic, t0, 3.8, 115)
    if use_keys:
        for p in (tonic + 12, tonic + 15, tonic + 19):
            hit(keys, p, t0, 3.8, 85)
    hit(lead, tonic + 24, t0, 3.8, 110)
    for drum in (KICK, CRASH1, CRASH2):
        hit(DRUMS, drum, t0, 3.0, 120)
    return m.to_bytes()


STYLES = {"mixed": compose_random_piece, "rock": compose_rock_piece}


def compose_styled_piece(style: str, seed: int, seconds: float = 60.0) -> bytes:
    """A piece in one of the STYLES: "mixed" (compose_random_piece) or "rock" (compose_rock_piece)."""
    return STYLES[style](seed, seconds)


# ----------------------------------------------------------------------------------- describing a MIDI

GM_PROGRAMS = (
    "Acoustic Grand Piano|Bright Acoustic Piano|Electric Grand Piano|Honky-tonk Piano|Electric Piano 1|"
    "Electric Piano 2|Harpsichord|Clavinet|Celesta|Glockenspiel|Music Box|Vibraphone|Marimba|Xylophone|"
    "Tubular Bells|Dulcimer|Drawbar Organ|Percussive Organ|Rock Organ|Church Organ|Reed Organ|Accordion|"
    "Harmonica|Tango Accordion|Nylon Guitar|Steel Guitar|Jazz Guitar|Clean Guitar|Muted Guitar|"
    "Overdriven Guitar|Distortion Guitar|Guitar Harmonics|Acoustic Bass|Finger Bass|Pick Bass|Fretless Bass|"
    "Slap Bass 1|Slap Bass 2|Synth Bass 1|Synth Bass 2|Violin|Viola|Cello|Contrabass|Tremolo Strings|"
    "Pizzicato Strings|Orchestral Harp|Timpani|String Ensemble 1|String Ensemble 2|Synth Strings 1|"
    "Synth Strings 2|Choir Aahs|Voice Oohs|Synth Voice|Orchestra Hit|Trumpet|Trombone|Tuba|Muted Trumpet|"
    "French Horn|Brass Section|Synth Brass 1|Synth Brass 2|Soprano Sax|Alto Sax|Tenor Sax|Baritone Sax|Oboe|"
    "English Horn|Bassoon|Clarinet|Piccolo|Flute|Recorder|Pan Flute|Blown Bottle|Shakuhachi|Whistle|Ocarina|"
    "Square Lead|Sawtooth Lead|Calliope Lead|Chiff Lead|Charang Lead|Voice Lead|Fifths Lead|Bass + Lead|"
    "New Age Pad|Warm Pad|Polysynth Pad|Choir Pad|Bowed Pad|Metallic Pad|Halo Pad|Sweep Pad|Rain FX|"
    "Soundtrack FX|Crystal FX|Atmosphere FX|Brightness FX|Goblins FX|Echoes FX|Sci-fi FX|Sitar|Banjo|"
    "Shamisen|Koto|Kalimba|Bagpipe|Fiddle|Shanai|Tinkle Bell|Agogo|Steel Drums|Woodblock|Taiko Drum|"
    "Melodic Tom|Synth Drum|Reverse Cymbal|Guitar Fret Noise|Breath Noise|Seashore|Bird Tweet|"
    "Telephone Ring|Helicopter|Applause|Gunshot"
).split("|")
DRUM_KITS = {0: "Standard", 8: "Room", 16: "Power", 24: "Electronic", 25: "TR-808", 32: "Jazz", 40: "Brush",
             48: "Orchestra"}  # fmt: skip


def describe_midi(data: bytes) -> dict:
    """What a Standard MIDI File plays: tempo, the program of each channel (channels are counted from 0;
    the GM drum channel is 9), note-on counts per channel, the percussion keys used on channel 9, and its
    length in beats. Reads format 0/1 files with or without running status."""
    if data[:4] != b"MThd":
        raise ValueError("not a Standard MIDI File")
    header_len = struct.unpack(">I", data[4:8])[0]
    ppq = struct.unpack(">H", data[12:14])[0]
    pos = 8 + header_len
    out = {"bpm": None, "programs": {}, "notes": {}, "drum_keys": set(), "beats": 0.0, "bends": 0}
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack(">I", data[pos + 4 : pos + 8])[0]
        track, pos = data[pos + 8 : pos + 8 + size], pos + 8 + size
        if kind != b"MTrk":
            continue
        i, tick, status = 0, 0, 0
        while i < len(track):
            delta = 0
            while True:
                byte = track[i]
                i += 1
                delta = (delta << 7) | (byte & 0x7F)
                if byte < 0x80:
                    break
            tick += delta
            if track[i] >= 0x80:
                status = track[i]
                i += 1
            if status == 0xFF:
                meta, n = track[i], track[i + 1]  # our files and short metas: one length byte
                if meta == 0x51 and out["bpm"] is None:
                    out["bpm"] = 60_000_000 / int.from_bytes(track[i + 2 : i + 5], "big")
                i += 2 + n
                continue
            if status in (0xF0, 0xF7):
                i += 1 + track[i]
                continue
            kind_, ch = status & 0xF0, status & 0x0F
            width = 1 if kind_ in (0xC0, 0xD0) else 2
            args = track[i : i + width]
            i += width
            if kind_ == 0xC0:
                out["programs"].setdefault(ch, args[0])
            elif kind_ == 0x90 and args[1] > 0:
                out["notes"][ch] = out["notes"].get(ch, 0) + 1
                if ch == DRUMS:
                    out["drum_keys"].add(args[0])
            elif kind_ == 0xE0:
                out["bends"] += 1
            out["beats"] = max(out["beats"], tick / ppq)
    out["drum_keys"] = sorted(out["drum_keys"])
    return out


def instrument_names(info: dict) -> list[str]:
    """Readable instruments of a describe_midi() result, e.g. "ch1 Distortion Guitar (30)", "drums: Power kit"."""
    names = []
    for ch in sorted(set(info["notes"]) | set(info["programs"])):
        if not info["notes"].get(ch):
            continue
        program = info["programs"].get(ch, 0)
        if ch == DRUMS:
            names.append(f"drums: {DRUM_KITS.get(program, f'kit {program}')} kit")
        else:
            names.append(f"ch{ch + 1} {GM_PROGRAMS[program]} ({program})")
    return names


# ----------------------------------------------------------------------------------------------- render


def find_soundfont(given: str | None = None) -> Path:
    for place in ([Path(given)] if given else []) + list(SOUNDFONT_PLACES):
        if place.is_file():
            return place
    sys.exit(
        "FluidR3_GM.sf2 not found: run scripts/prepare_data.py (it extracts Debian's fluid-soundfont-gm "
        "into data/pkgs) or apt-get install fluid-soundfont-gm, or pass --soundfont"
    )


def render_with_fluidsynth(
    midi: Path, out: Path, soundfont: Path, gain: float = 0.5, trim_below_db: float | None = None
) -> None:
    """Render a MIDI file to a 44.1 kHz stereo FLAC (24-bit) normalised to -1 dBFS peak. With
    `trim_below_db`, the reverb tail is cut where every later 50 ms block is quieter than that (dBFS RMS,
    after normalising), with a 50 ms fade-out."""
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
    audio = normalise(audio)
    if trim_below_db is not None:
        audio = trim_tail(audio, trim_below_db)
    write_audio(out, audio, SAMPLE_RATE)


def trim_tail(audio: np.ndarray, below_db: float, block_s: float = 0.05) -> np.ndarray:
    """Cut the end of (channels, samples) audio after the last 50 ms block louder than `below_db` dBFS RMS
    (keeping that block and one more, faded out)."""
    block = int(block_s * SAMPLE_RATE)
    n = audio.shape[1] // block
    if n == 0:
        return audio
    power = np.mean(np.square(audio[:, : n * block].reshape(audio.shape[0], n, block), dtype=np.float64), axis=(0, 2))
    loud = np.nonzero(10 * np.log10(power + 1e-30) > below_db)[0]
    end = min(audio.shape[1], (int(loud[-1]) + 2) * block) if loud.size else block
    out = audio[:, :end].copy()
    out[:, -block:] *= np.cos(np.linspace(0, np.pi / 2, block)) ** 2
    return out


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
