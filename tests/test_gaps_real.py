"""Gap detection on real music (tests/data, examples): dropouts are found to the sample, music's own quiet
(joined tracks, fades, quiet passages) never."""

import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from a2sb.detect import detect_gaps
from a2sb.restorer import Restorer

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100
TRACKS = ["overworld-typical", "menutheme-typical", "celtic-least-treble", "valley-least-treble"]
BORDER = 1 << 18  # the restore path's slices: dropouts across their borders must be found as well


def load(path) -> np.ndarray:
    """(2, n) float32: mono files doubled to stereo."""
    audio, rate = sf.read(ROOT / path, dtype="float32", always_2d=True)
    assert rate == RATE
    return np.repeat(audio.T, 2, axis=0) if audio.shape[1] == 1 else audio.T


def to_16_bit(audio: np.ndarray) -> np.ndarray:
    """What a 16-bit file holds (no dither: quiet endings become exact zeros, the hard case)."""
    return (np.round(np.clip(audio, -1, 1 - 2**-15) * 32768) / 32768).astype(np.float32)


def fade_out(audio: np.ndarray, seconds: float, shape: str = "linear") -> np.ndarray:
    n = int(seconds * RATE)
    ramp = np.linspace(1, 0, n)
    gain = {"linear": ramp, "cosine": np.sin(np.pi / 2 * ramp), "db": 10 ** (-60 * (1 - ramp) / 20)}[shape]
    out = audio.copy()
    out[:, -n:] *= gain
    return out


def silence(seconds: float) -> np.ndarray:
    return np.zeros((2, int(round(seconds * RATE))), np.float32)


def tracks() -> list[np.ndarray]:
    return [load(f"tests/data/{name}.flac") for name in TRACKS]


def as_samples(gaps):
    return [(round(s * RATE), round(e * RATE)) for s, e in gaps]


@pytest.mark.parametrize("pause", [0.0, 0.05, 0.5, 1.9, 3.0])
@pytest.mark.parametrize("shape", ["linear", "cosine", "db"])
def test_joined_tracks_have_no_gaps(pause, shape):
    """Tracks that fade out (1.5-4 s, three fade shapes), joined directly or with digital silence between
    them (from 50 ms to beyond the longest dropout): a track gap, not a dropout."""
    pieces = []
    for i, track in enumerate(tracks() + [load("examples/example.flac")]):
        pieces += [to_16_bit(fade_out(track, 1.5 + 0.8 * i, shape)), silence(pause)]
    assert detect_gaps(np.concatenate(pieces, axis=1), RATE) == []


def test_fades_and_quiet_passages_have_no_gaps():
    """Long fade-outs and fade-ins, and passages 50-60 dB down, all as 16 bit (their quietest moments are
    runs of exact zeros or of one held value), with digital silence after the fade-outs."""
    for i, track in enumerate(tracks()):
        n = track.shape[1]
        faded = to_16_bit(fade_out(track, 5.0, ["linear", "cosine", "db", "linear"][i]))
        fade_in = track * np.clip(np.arange(n) / (4.0 * RATE), 0, 1) ** 2
        quiet = track.copy()
        quiet[:, n // 4 : 3 * n // 4] *= 10 ** (-(50 + 3 * i) / 20)  # a quiet passage between loud music
        whisper = track * 10 ** (-60 / 20)  # a whole track 60 dB down
        audio = np.concatenate([faded, silence(0.3), to_16_bit(fade_in), to_16_bit(quiet), silence(1.0),
                                to_16_bit(whisper), silence(0.7), to_16_bit(quiet)], axis=1)
        assert detect_gaps(audio, RATE) == [], TRACKS[i]


def dropouts(n: int, count: int, seed: int) -> list[tuple[int, int]]:
    """`count` dropouts of 0.05-1.5 s at seeded random places at least 0.5 s apart, and at least one
    across each multiple of 2^18 samples: sorted (start, end) sample ranges."""
    rng = np.random.default_rng(seed)
    chosen: list[tuple[int, int]] = []

    def free(s, e):
        return s >= RATE and e <= n - RATE and all(e + RATE // 2 <= a or s >= b + RATE // 2 for a, b in chosen)

    for border in range(BORDER, n - RATE, BORDER):
        length = int(rng.uniform(0.05, 1.5) * RATE)
        s = border - int(rng.uniform(0.1, 0.9) * length)
        if free(s, s + length):
            chosen.append((s, s + length))
    while len(chosen) < count:
        length = int(rng.uniform(0.05, 1.5) * RATE)
        s = int(rng.integers(RATE, n - RATE - length))
        if free(s, s + length):
            chosen.append((s, s + length))
    return sorted(chosen)


@pytest.mark.parametrize("held", [False, True])
@pytest.mark.parametrize("seed", [1, 2])
def test_dropouts_found_to_the_sample(held, seed):
    """Dropouts of exact zeros or of the last sample held, in 34 s of real music joined without pauses (one
    track 30 dB down), followed by an 8 s passage 55 dB down and by tracks joined with digital silence:
    the dropouts are found exactly, nothing else."""
    music = tracks() + [load("examples/example.flac")]
    music[1] = to_16_bit(music[1] * 10 ** (-30 / 20))  # a soft track: dropouts in it are found as well
    audio = np.concatenate(music, axis=1)
    truth = dropouts(audio.shape[1], 12, seed)
    assert sum(s < k * BORDER < e for s, e in truth for k in range(1, 8)) >= 4
    expected = []
    for s, e in truth:
        value = audio[:, s - 1 : s].copy() if held else np.zeros((2, 1), np.float32)
        # the run of that value: a held sample repeats the last good one, and a neighbour of a dropout
        # that happens to have the value already (a 16-bit zero) belongs to it
        first, stop = s, e
        while (audio[:, first - 1] == value[:, 0]).all():
            first -= 1
        while (audio[:, stop] == value[:, 0]).all():
            stop += 1
        assert s - first <= 2 and stop - e <= 1
        audio[:, s:e] = value
        expected.append((first, stop))
    # music's own quiet after the damaged music: a quiet passage, a track fading out into digital
    # silence, then the next one
    quiet = to_16_bit(audio[:, 3 * RATE : 11 * RATE] * 10 ** (-55 / 20))
    ending = to_16_bit(fade_out(load("tests/data/menutheme-typical.flac"), 2.0))
    audio = np.concatenate([audio, quiet, ending, silence(0.4), load("tests/data/overworld-typical.flac")], axis=1)
    assert as_samples(detect_gaps(audio, RATE)) == expected


@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_sixty_joined_copies_have_no_gaps(pause):
    """The reported case: 60 copies of examples/example_lowpassed.flac (10 s, fading out at its end) joined,
    directly (13.6 ms of digital silence at each join) and with 0.3 s of digital silence: no gaps (the
    detector used to find 59 and fill them with music 58 dB louder than the fade tail)."""
    clip = load("examples/example_lowpassed.flac")
    joined = np.concatenate([clip, silence(pause)] * 59 + [clip], axis=1)
    assert detect_gaps(joined, RATE) == []
    # and a real dropout among them is still found to the sample
    s = 31 * (clip.shape[1] + silence(pause).shape[1]) + 123_457  # 2.8 s into the 32nd copy
    joined[:, s : s + RATE // 2] = 0
    assert as_samples(detect_gaps(joined, RATE)) == [(s, s + RATE // 2)]


def test_restore_leaves_sixty_joined_copies_alone():
    """Through the restore path (its analysis of long audio goes in 60 s chunks): no gap is found, so
    nothing is generated and the output is the input (it used to be 59 fills at about -10 dBFS)."""
    clip = load("examples/example_lowpassed.flac")
    joined = np.concatenate([clip, silence(0.3)] * 59 + [clip], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "nothing to restore"
        restored, rate = Restorer(model="preset:tiny").restore_audio(joined.T, RATE, cutoff=None, gaps="auto")
    assert rate == RATE and np.array_equal(restored.T, joined)
